"""Structure-aware state fusion (Spatial-Mamba): a selective scan whose hidden states are fused spatially by
dilated depth-wise convolutions before C reads them out. One signature, several backends, one public function.

``state_fusion_scan(u, delta, A, B, C, weight, size, D=None, delta_bias=None, delta_softplus=False,
dilations=(1, 3, 5), order=None, backend=None)``

* u, delta: (batch, K*D, L) with L = H*W; A: (K*D, N); B, C: (batch, K, N, L) or (batch, N, L); D, delta_bias:
  (K*D,) — as ``selective_scan`` (no z: the gate of Spatial-Mamba comes after its out_norm).
* weight: (len(dilations), K*D, kh, kw) odd-sized depth-wise kernels, one per dilation (Spatial-Mamba: 3x3 at
  dilations 1, 3, 5, each already scaled by its ``alpha``); applied with a replicate border to every one of a
  channel's N state maps.
* size: (H, W). order: None when step t is pixel t (the row-major scan), else an int64 (K, L) tensor: step s of
  direction k is pixel ``order[k, s]`` (a permutation per row; a scan strategy's ``ScanIndex.orders``).
* Returns y (batch, K*D, L) in u's dtype, in step order: y_t = <C_t, fused h at t's pixel> + D u_t.

Backends (``available_backends()``): ``naive`` (sequential reference, the truth), ``chunked`` (plain PyTorch:
chunked scan + conv2d, the fallback anywhere and the CPU path for calls autograd records), ``cpp`` (the same
fusion with the states from the C++ CPU scan of ``kernels/cpu``, ``cpu.py``: the CPU default when that kernel
builds) and ``triton`` (the same fusion with the states and their backward from Triton kernels, ``triton.py``:
the CUDA default for fp32/fp16/bf16 when Triton is installed; imported on first use). Further kernels (e.g. one
that fuses the read-out and never writes all states) register themselves with ``register_backend``;
``VMAMBA_ZOO_STATE_FUSION_BACKEND`` pins one.

Under ``torch.jit.trace`` the call is one ``prim::PythonOp.StateFusionScanFn`` node, counted by
``vmamba_zoo.flops`` with the official accounting (``state_fusion_flop_jit``).
"""
from typing import Callable, Optional, Tuple

import torch

from ...flops import register_flop_handle
from .._dispatch import BackendRegistry
from ..selective_scan import triton_available
from ..selective_scan.cpu import cpu_accepts
from .chunked import fuse_states, state_fusion_scan_chunked
from .common import check_inputs
from .cpu import state_fusion_scan_cpu
from .naive import state_fusion_scan_naive

__all__ = ['state_fusion_scan', 'state_fusion_scan_naive', 'state_fusion_scan_chunked', 'state_fusion_scan_cpu',
           'fuse_states',
           'register_backend', 'available_backends', 'StateFusionScanFn', 'state_fusion_flop_jit']

ENV_BACKEND = 'VMAMBA_ZOO_STATE_FUSION_BACKEND'

_REGISTRY = BackendRegistry('state_fusion_scan', ENV_BACKEND,
                            {'naive': state_fusion_scan_naive, 'chunked': state_fusion_scan_chunked},
                            default=state_fusion_scan_chunked)


def register_backend(name: str, fn: Callable, device_types: Tuple[str, ...] = (),
                     accepts: Optional[Callable[..., bool]] = None) -> None:
    """Add a backend with the ``state_fusion_scan`` signature, preferred on ``device_types`` for the inputs where
    ``accepts(u, A, weight)`` is true (default: always)."""
    _REGISTRY.register(name, fn, device_types, accepts)


def available_backends():
    return _REGISTRY.names()


# the C++ state scan on CPU (inference; recorded calls run the chunked scan inside it, same gradients)
register_backend('cpp', state_fusion_scan_cpu, device_types=('cpu',),
                 accepts=lambda u, A, weight: cpu_accepts(u, u, A, None, None))


def _triton_backend(*args, **kwargs):
    from .triton import state_fusion_scan_triton  # imported on first use: importing triton costs ~0.5 s
    return state_fusion_scan_triton(*args, **kwargs)


def _triton_accepts(u, A, weight) -> bool:
    # the kernels keep fp32 state: float64 (gradcheck) stays on 'chunked', which computes in float64. N <= 256
    # as the selective-scan kernels (``_MAX_D_STATE``): a (BLOCK_D, N, BLOCK_L) register tile per program
    return (u.is_cuda and triton_available() and A.shape[1] <= 256
            and u.dtype in (torch.float32, torch.float16, torch.bfloat16)
            and torch.float64 not in (A.dtype, weight.dtype))


# the Triton state scan on CUDA (forward and backward kernels; fusion and read-out as 'chunked')
register_backend('triton', _triton_backend, device_types=('cuda',), accepts=_triton_accepts)


def _pick(backend: Optional[str], u, A, weight) -> Callable:
    return _REGISTRY.resolve(backend, u.device.type, u, A, weight)


class StateFusionScanFn(torch.autograd.Function):
    """One graph node for tracing (FLOP counting); backward re-runs the backend under autograd.

    ``tensors`` are (u, delta, A, B, C, weight, D, delta_bias, order): the first six always present, so the FLOP
    handle finds u, A and weight at inputs 0, 2 and 5."""

    @staticmethod
    def forward(ctx, fn, options, *tensors):
        ctx.fn, ctx.options = fn, options
        ctx.save_for_backward(*tensors)
        return fn(*tensors[:6], **options, **dict(zip(('D', 'delta_bias', 'order'), tensors[6:])))

    @staticmethod
    def backward(ctx, grad_out):
        needs = ctx.needs_input_grad[2:]
        with torch.enable_grad():
            leaves = [t if t is None else t.detach().requires_grad_(n and t.is_floating_point())
                      for t, n in zip(ctx.saved_tensors, needs)]
            out = ctx.fn(*leaves[:6], **ctx.options, **dict(zip(('D', 'delta_bias', 'order'), leaves[6:])))
            wanted = [t for t in leaves if t is not None and t.requires_grad]
            grads = iter(torch.autograd.grad(out, wanted, grad_out, allow_unused=True))
        return (None, None) + tuple(next(grads) if t is not None and t.requires_grad else None for t in leaves)


def state_fusion_scan(u, delta, A, B, C, weight, size, D=None, delta_bias=None, delta_softplus=False,
                      dilations=(1, 3, 5), order: Optional[torch.Tensor] = None, backend: Optional[str] = None):
    """Selective scan with structure-aware state fusion; see the module docstring for shapes."""
    check_inputs(u, delta, A, B, C, weight, size, D, delta_bias, dilations, order)
    fn = _pick(backend, u, A, weight)
    options = dict(size=tuple(int(s) for s in size), delta_softplus=delta_softplus,
                   dilations=tuple(int(d) for d in dilations))
    if torch.jit.is_tracing():
        return StateFusionScanFn.apply(fn, options, u, delta, A, B, C, weight, D, delta_bias, order)
    return fn(u, delta, A, B, C, weight, D=D, delta_bias=delta_bias, order=order, **options)


def state_fusion_flop_jit(inputs, outputs) -> int:
    """The official count (EdwardChasel/Spatial-Mamba ``classification/models/utils.py``
    ``selective_scan_state_flop_jit`` + fvcore's conv count of ``StateFusion``'s training-mode convs, which its
    ``SpatialMamba.flops()`` traces): 7*B*L*D*N for the state scan (``flops_selective_scan_fn`` with_C=False,
    with_D=False) plus kh*kw MACs per state per dilation for the fusion. The read-out ``h*C + D*u`` is
    element-wise, which fvcore does not count there either."""
    batch, dim, length = inputs[0].type().sizes()
    d_state = inputs[2].type().sizes()[1]
    n_dil, _, kh, kw = inputs[5].type().sizes()
    return 7 * batch * length * dim * d_state + n_dil * kh * kw * batch * dim * d_state * length


register_flop_handle('prim::PythonOp.StateFusionScanFn', state_fusion_flop_jit)
