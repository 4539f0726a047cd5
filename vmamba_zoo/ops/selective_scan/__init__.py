"""The selective-scan op: one signature, several backends, one public function that picks among them.

``selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
return_last_state=False, backend=None)``

* u, delta, z: (batch, K*D, L); A: (K*D, N); B, C: (batch, K, N, L) grouped per scan direction (VMamba) or
  (batch, N, L) shared by all channels (Mamba/Vim); D, delta_bias: (K*D,).
* State and accumulation in fp32 (float64 for float64 inputs); the output has u's dtype.

Backends (``available_backends()``): ``naive`` (sequential reference, the truth), ``chunked`` (plain PyTorch,
the CPU path and the fallback anywhere) and ``triton`` (forward + backward kernels, the default for CUDA tensors
when Triton is installed). ``backend=None`` picks the first registered backend for the input's device that accepts
the inputs; the environment variable ``VMAMBA_ZOO_SCAN_BACKEND`` forces one everywhere (e.g. ``naive`` when
debugging a model). Further kernels register themselves with ``register_backend``; models need no change.

Under ``torch.jit.trace`` (fvcore FLOP counting) the call is wrapped in the autograd function ``SelectiveScanFn``
so the trace holds one ``prim::PythonOp.SelectiveScanFn`` node that ``vmamba_zoo.flops`` counts.
"""
import functools
import importlib.util
import os
from typing import Callable, Dict, Optional, Tuple

import torch

from .chunked import selective_scan_chunked
from .common import check_inputs
from .naive import selective_scan_naive

__all__ = ['selective_scan', 'selective_scan_naive', 'selective_scan_chunked', 'register_backend',
           'available_backends', 'SelectiveScanFn']

ENV_BACKEND = 'VMAMBA_ZOO_SCAN_BACKEND'

_BACKENDS: Dict[str, Callable] = {'naive': selective_scan_naive, 'chunked': selective_scan_chunked}
# device type -> backend names in order of preference; the first whose predicate accepts the inputs runs
_PREFERENCE: Dict[str, list] = {}
_ACCEPTS: Dict[str, Callable[..., bool]] = {}


def register_backend(name: str, fn: Callable, device_types: Tuple[str, ...] = (),
                     accepts: Optional[Callable[..., bool]] = None) -> None:
    """Add a backend with the selective_scan signature. It becomes the preferred path on ``device_types`` for
    inputs where ``accepts(u, delta, A, B, C)`` is true (default: always)."""
    _BACKENDS[name] = fn
    if accepts is not None:
        _ACCEPTS[name] = accepts
    for device_type in device_types:
        _PREFERENCE.setdefault(device_type, []).insert(0, name)


def available_backends():
    return sorted(_BACKENDS)


@functools.lru_cache(maxsize=None)
def triton_available() -> bool:
    return importlib.util.find_spec('triton') is not None


def _triton_backend(*args, **kwargs):
    from .triton import selective_scan_triton  # imported on first use: importing triton costs ~0.5 s
    return selective_scan_triton(*args, **kwargs)


def _triton_accepts(u, delta, A, B, C) -> bool:
    return (u.is_cuda and triton_available() and A.shape[1] <= 256
            and u.dtype in (torch.float32, torch.float16, torch.bfloat16))


register_backend('triton', _triton_backend, device_types=('cuda',), accepts=_triton_accepts)


def _resolve_backend(backend: Optional[str], u, delta, A, B, C) -> Callable:
    name = backend or os.environ.get(ENV_BACKEND) or None
    if name is not None:
        if name not in _BACKENDS:
            raise ValueError(f"selective_scan: unknown backend {name!r}; known: {', '.join(available_backends())}")
        return _BACKENDS[name]
    for candidate in _PREFERENCE.get(u.device.type, []):
        if _ACCEPTS.get(candidate, lambda *a: True)(u, delta, A, B, C):
            return _BACKENDS[candidate]
    return selective_scan_chunked


class SelectiveScanFn(torch.autograd.Function):
    """Wraps a backend as one graph node. Used while tracing (so FLOP counters see the op); its backward
    recomputes the forward under autograd."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, backend_fn):
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias)
        ctx.delta_softplus, ctx.backend_fn = delta_softplus, backend_fn
        return backend_fn(u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus)

    @staticmethod
    def backward(ctx, grad_out):
        inputs = ctx.saved_tensors
        with torch.enable_grad():
            leaves = [None if t is None else t.detach().requires_grad_(needs)
                      for t, needs in zip(inputs, ctx.needs_input_grad)]
            u, delta, A, B, C, D, z, delta_bias = leaves
            out = ctx.backend_fn(u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias,
                                 delta_softplus=ctx.delta_softplus)
            wanted = [t for t in leaves if t is not None and t.requires_grad]
            grads = iter(torch.autograd.grad(out, wanted, grad_out, allow_unused=True))
        return tuple(next(grads) if t is not None and t.requires_grad else None for t in leaves) + (None, None)


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False, backend: Optional[str] = None):
    """Selective scan (Mamba S6) over (batch, K*D, L) sequences; see the module docstring for shapes."""
    check_inputs(u, delta, A, B, C, D, z, delta_bias)
    fn = _resolve_backend(backend, u, delta, A, B, C)
    if torch.jit.is_tracing() and not return_last_state:
        return SelectiveScanFn.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus, fn)
    return fn(u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus,
              return_last_state=return_last_state)
