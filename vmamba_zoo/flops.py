"""FLOP counting the way the official vision-Mamba repos count, so paper numbers reproduce.

fvcore's ``FlopCountAnalysis`` (one fused multiply-add = one flop, i.e. MACs — the papers' "FLOPs") with
handles for the zoo's ops:

* selective scan: traced as one ``prim::PythonOp.SelectiveScanFn`` node (see ``vmamba_zoo.ops``); counted with
  ``9 * B * L * D * N + B * D * L`` (state-spaces/mamba issue #110; MzeroMiko/VMamba
  ``classification/models/csms6s.py`` ``flops_selective_scan_fn`` with_D=True, with_Z=False), where
  u is (B, D, L) and A is (D, N).
* element-wise activations and the scan's gathers are ignored, as the official ``VSSM.flops()`` ignores
  silu/neg/exp/flip and leaves CrossScan/CrossMerge uncounted.
"""
from math import prod
from typing import Sequence

import torch
from torch import nn

__all__ = ['count_flops', 'count_params', 'selective_scan_flop_jit', 'register_flop_handle']


def matmul_flop_jit(inputs, outputs) -> int:
    """MACs of a (broadcasting) matmul: batch * M * K * N. fvcore's own handle drops the batch dims of the second
    operand, which under-counts ``weight (K, C, D) @ x (B, K, D, L)``."""
    inner = inputs[0].type().sizes()[-1]
    return int(prod(outputs[0].type().sizes()) * inner)


def selective_scan_flop_jit(inputs, outputs) -> int:
    batch, dim, length = inputs[0].type().sizes()
    d_state = inputs[2].type().sizes()[1]
    return 9 * batch * length * dim * d_state + batch * dim * length


_IGNORED = (
    'aten::silu', 'aten::neg', 'aten::exp', 'aten::flip', 'aten::gelu', 'aten::softplus', 'aten::sigmoid',
    'aten::index_select', 'aten::gather', 'aten::mul', 'aten::add', 'aten::sub', 'aten::div',
)


# handles registered by other ops (e.g. ``prim::PythonOp.<TheirAutogradFn>``), next to the op they count
_EXTRA_HANDLES = {}


def register_flop_handle(op_name: str, handle) -> None:
    """Count a traced node ``op_name`` (e.g. ``'prim::PythonOp.NonCausalSSDFn'``) with ``handle(inputs,
    outputs) -> int`` (fvcore's jit-handle signature); ``None`` ignores it. Ops call this where they are defined, so
    a new op needs no edit here."""
    _EXTRA_HANDLES[op_name] = handle


def _op_handles():
    from fvcore.nn.jit_handles import elementwise_flop_counter

    handles = {name: None for name in _IGNORED}
    handles['prim::PythonOp.SelectiveScanFn'] = selective_scan_flop_jit
    # timm's NHWC global pool is a mean; count it like fvcore counts adaptive_avg_pool2d (one per input element)
    handles['aten::matmul'] = matmul_flop_jit
    handles['aten::mean'] = elementwise_flop_counter(1, 0)
    handles.update(_EXTRA_HANDLES)
    return handles


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_size: Sequence[int] = (3, 224, 224), batch_size: int = 1,
                return_unsupported: bool = False):
    """FLOPs (MACs) of one forward pass at ``input_size`` (C, H, W), head included.

    Returns the total as an int; with ``return_unsupported=True`` returns (total, {op: count}) so callers can see
    which traced ops were not counted.
    """
    from fvcore.nn import FlopCountAnalysis

    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        x = torch.randn(batch_size, *input_size, device=device)
        analysis = FlopCountAnalysis(model, (x,)).set_op_handle(**_op_handles())
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings('none')
        total = int(analysis.total())
        unsupported = dict(analysis.unsupported_ops())
    finally:
        model.train(was_training)
    return (total, unsupported) if return_unsupported else total
