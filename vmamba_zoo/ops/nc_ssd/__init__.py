"""VSSD's non-causal state-space duality (NC-SSD) op: one signature, several backends, one public function.

``nc_ssd(x, dt, A, B, C, D=None, backend=None)``

* x: (batch, L, nheads, headdim) -- Mamba2's ``b l h p`` layout, so SSD kernels can slot in; dt: (batch, L, nheads)
  (already softplus-ed); A, D: (nheads,); B, C: (batch, L, ngroups, d_state), head h reads group h % ngroups.
* y[l, h] = sum over all tokens m of <C[l], B[m]> * dt[m, h] * A[h] * x[m, h] + D[h] * x[l, h]
  (see ``naive.py``). VSSD passes A = exp(A_log) (its ``SSD_POSITIVE_DA``: every token's weight is positive).
* fp32 accumulation (float64 for float64 inputs); the output has x's dtype.

Backends (``available_backends()``): ``naive`` (quadratic reference, the truth), ``matmul`` (the global-state
form, plain PyTorch, the default on CPU and the fallback anywhere) and ``triton`` (forward + backward Triton
kernels of the global-state form, ``triton.py``: the default for CUDA tensors when Triton is installed, for
fp32/fp16/bf16 inputs with d_state <= 256). ``backend=None`` picks the first registered backend for the input's
device that accepts the inputs; ``VMAMBA_ZOO_NC_SSD_BACKEND`` pins one everywhere. Further kernels register
themselves with ``register_backend``; models need no change.

Under ``torch.jit.trace`` (fvcore FLOP counting) the call is one ``prim::PythonOp.NonCausalSSDFn`` node, counted
by ``nc_ssd_flop_jit`` the way the official ``VMAMBA2.flops()`` counts it.
"""
from typing import Callable, Optional, Tuple

import torch

from ...flops import register_flop_handle
from .._dispatch import BackendRegistry
from ..selective_scan import triton_available
from .common import check_inputs
from .matmul import nc_ssd_matmul
from .naive import nc_ssd_naive

__all__ = ['nc_ssd', 'nc_ssd_naive', 'nc_ssd_matmul', 'register_backend', 'available_backends', 'triton_available',
           'NonCausalSSDFn', 'nc_ssd_flop_jit', 'ENV_BACKEND']

ENV_BACKEND = 'VMAMBA_ZOO_NC_SSD_BACKEND'

_REGISTRY = BackendRegistry('nc_ssd', ENV_BACKEND, {'naive': nc_ssd_naive, 'matmul': nc_ssd_matmul},
                            default=nc_ssd_matmul)
_BACKENDS = _REGISTRY.backends  # name -> function (the registry's own dict)


def register_backend(name: str, fn: Callable, device_types: Tuple[str, ...] = (),
                     accepts: Optional[Callable[..., bool]] = None) -> None:
    """Add a backend with the nc_ssd signature. It becomes the preferred path on ``device_types`` for inputs
    where ``accepts(x, dt, A, B, C)`` is true (default: always)."""
    _REGISTRY.register(name, fn, device_types, accepts)


def available_backends():
    return _REGISTRY.names()


def _triton_backend(x, dt, A, B, C, D=None):
    from .triton import nc_ssd_triton  # imported on first use: importing triton costs ~0.5 s
    return nc_ssd_triton(x, dt, A, B, C, D=D)


def _triton_accepts(x, dt, A, B, C) -> bool:
    if not (x.is_cuda and triton_available()):
        return False
    from .triton import triton_accepts  # only reached for CUDA inputs, which then run the kernels anyway
    return triton_accepts(x, dt, A, B, C)


register_backend('triton', _triton_backend, device_types=('cuda',), accepts=_triton_accepts)


def _resolve_backend(backend: Optional[str], x, dt, A, B, C) -> Callable:
    return _REGISTRY.resolve(backend, x.device.type, x, dt, A, B, C)


class NonCausalSSDFn(torch.autograd.Function):
    """Wraps a backend as one graph node. Used while tracing (so FLOP counters see the op); its backward
    recomputes the forward under autograd."""

    @staticmethod
    def forward(ctx, x, dt, A, B, C, D, backend_fn):
        ctx.save_for_backward(x, dt, A, B, C, D)
        ctx.backend_fn = backend_fn
        return backend_fn(x, dt, A, B, C, D=D)

    @staticmethod
    def backward(ctx, grad_out):
        inputs = ctx.saved_tensors
        with torch.enable_grad():
            leaves = [None if t is None else t.detach().requires_grad_(needs)
                      for t, needs in zip(inputs, ctx.needs_input_grad)]
            out = ctx.backend_fn(*leaves[:5], D=leaves[5])
            wanted = [t for t in leaves if t is not None and t.requires_grad]
            grads = iter(torch.autograd.grad(out, wanted, grad_out, allow_unused=True))
        return tuple(next(grads) if t is not None and t.requires_grad else None for t in leaves) + (None,)


def nc_ssd_flop_jit(inputs, outputs) -> int:
    """FLOPs (MACs) of one nc_ssd call as the official ``VMAMBA2.flops()`` counts them: ``2 * batch * L *
    ngroups * d_state * headdim``.

    The official code computes ``K^T (batch, 1, N, L) @ V (batch, nheads, L, P)`` and ``Q (batch, 1, L, N) @ KV``
    and counts them with fvcore's default matmul handle, ``prod(first operand) * last dim of the second``, which
    drops the broadcast head dimension. The true multiply-adds are ``nheads`` times more
    (``2 * batch * L * ngroups * d_state * nheads * headdim``, see ``nc_ssd_true_macs``); counting as the official
    repo does is what reproduces its published FLOPs (VSSD-T 4.47G). The element-wise weighting and D skip are not
    counted, as there.
    """
    batch, length, _, headdim = inputs[0].type().sizes()
    _, _, ngroups, d_state = inputs[3].type().sizes()
    return 2 * batch * length * ngroups * d_state * headdim


def nc_ssd_true_macs(batch: int, length: int, nheads: int, headdim: int, ngroups: int, d_state: int) -> int:
    """Multiply-adds the global-state form really does (the two matmuls), for comparison with the official count."""
    return 2 * batch * length * d_state * nheads * headdim


register_flop_handle('prim::PythonOp.NonCausalSSDFn', nc_ssd_flop_jit)


def nc_ssd(x, dt, A, B, C, D=None, backend: Optional[str] = None):
    """Non-causal SSD over (batch, L, nheads, headdim) tokens; see the module docstring for shapes."""
    check_inputs(x, dt, A, B, C, D)
    fn = _resolve_backend(backend, x, dt, A, B, C)
    if torch.jit.is_tracing():
        return NonCausalSSDFn.apply(x, dt, A, B, C, D, fn)
    return fn(x, dt, A, B, C, D=D)
