"""The selective-scan op: one signature, several backends, one public function that picks among them.

``selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
return_last_state=False, backend=None, return_states=False)``

* u, delta, z: (batch, K*D, L); A: (K*D, N); B, C: (batch, K, N, L) grouped per scan direction (VMamba) or
  (batch, N, L) shared by all channels (Mamba/Vim); D, delta_bias: (K*D,).
* State and accumulation in fp32 (float64 for float64 inputs); the output has u's dtype.
* ``return_states=True`` (with C, D, z None) returns every hidden state h_t, (batch, K*D, N, L) in the compute
  dtype, for ops that transform the states before reading them out (Spatial-Mamba's state fusion). Only backends
  registered with ``states=True`` run this mode (``naive``, ``chunked``, ``cpp``); the dispatch skips the others.

Backends (``available_backends()``): ``naive`` (sequential reference, the truth), ``chunked`` (plain PyTorch,
the CPU training path and the fallback anywhere), ``cpp`` (the C++ CPU kernel of ``kernels/cpu``, built on first
use: the CPU inference path, see ``cpu.py``), ``triton`` (forward + backward kernels, the default for CUDA tensors
when Triton is installed) and ``cuda`` (the CUDA C++ kernels of ``kernels/``, built on first use, see ``cuda.py``;
the CUDA default for fp32 and bf16 inputs with d_state 1, where it was measured faster, pinned-only otherwise).
``backend=None`` picks the first registered backend for the input's device that accepts the inputs; the
environment variable ``VMAMBA_ZOO_SCAN_BACKEND`` forces one everywhere (e.g. ``naive`` when debugging a model).
Further kernels register themselves with ``register_backend``; models need no change.

Under ``torch.jit.trace`` (fvcore FLOP counting) the call is wrapped in the autograd function ``SelectiveScanFn``
so the trace holds one ``prim::PythonOp.SelectiveScanFn`` node that ``vmamba_zoo.flops`` counts.
"""
import functools
import importlib.util
from typing import Callable, Optional, Tuple

import torch

from .._dispatch import BackendRegistry
from .chunked import selective_scan_chunked
from .common import check_inputs
from .cpu import cpu_accepts, selective_scan_cpu
from .naive import selective_scan_naive

__all__ = ['selective_scan', 'selective_scan_naive', 'selective_scan_chunked', 'selective_scan_cpu', 'register_backend',
           'available_backends', 'SelectiveScanFn']

ENV_BACKEND = 'VMAMBA_ZOO_SCAN_BACKEND'

_REGISTRY = BackendRegistry('selective_scan', ENV_BACKEND,
                            {'naive': selective_scan_naive, 'chunked': selective_scan_chunked},
                            default=selective_scan_chunked)
# backends that implement ``return_states=True``
_STATES_BACKENDS = {'naive', 'chunked'}


def register_backend(name: str, fn: Callable, device_types: Tuple[str, ...] = (),
                     accepts: Optional[Callable[..., bool]] = None, states: bool = False) -> None:
    """Add a backend with the selective_scan signature. It becomes the preferred path on ``device_types`` for
    inputs where ``accepts(u, delta, A, B, C)`` is true (default: always). ``states=True``: it also takes
    ``return_states=True``."""
    _REGISTRY.register(name, fn, device_types, accepts)
    if states:
        _STATES_BACKENDS.add(name)


def available_backends():
    return _REGISTRY.names()


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


def _cuda_backend(*args, **kwargs):
    from .cuda import selective_scan_cuda  # builds kernels/selective_scan on first use (torch cpp_extension)
    return selective_scan_cuda(*args, **kwargs)


def _cuda_auto_accepts(u, delta, A, B, C) -> bool:
    """The measured rule for the automatic 'cuda' choice: fp32 or bf16 CUDA inputs with d_state 1, once the
    extension is built (its first such call builds it, ~35 s once per machine; no toolchain or a failed build: one
    warning, and Triton runs)."""
    if not (u.is_cuda and u.dtype in (torch.float32, torch.bfloat16) and A.shape[1] == 1):
        return False
    from .cuda import cuda_accepts
    return cuda_accepts(u, delta, A, B, C)


# 'cuda': the zoo's CUDA C++ kernels, JIT-built from kernels/ when a CUDA toolchain is present. Chosen
# automatically only for fp32 / bf16 with d_state 1 (``_cuda_auto_accepts``): on an H200 (model_cards/gpu_kernels.md,
# run 25c) its d_state-1 kernels (single_state.cu) ran fwd+bwd 1.83 / 1.71 / 1.39x the Triton kernels at VMamba-T
# stages 1-3 in fp32 and 1.77 / 1.60 / 1.49x in bf16; the bf16 forward alone (inference) 1.40 / 1.15 / 0.83x, about
# Triton's time summed over VMamba-T's blocks. fp16 was not measured and stays on Triton; d_state > 1 runs the
# older lane-per-row kernels (at N = 1 they took 2.5x Triton's time, run 22a). Everything else stays triton ->
# chunked unless pinned (backend='cuda' or VMAMBA_ZOO_SCAN_BACKEND=cuda; =triton keeps Triton for fp32 / bf16 too).
register_backend('cuda', _cuda_backend, device_types=('cuda',), accepts=_cuda_auto_accepts)


# 'cpp': the zoo's C++ CPU kernel (kernels/cpu, built on first use, cpu.py). Preferred on CPU for calls autograd
# does not record (inference); recorded calls and float64 run 'chunked', so gradients stay exact.
register_backend('cpp', selective_scan_cpu, device_types=('cpu',), accepts=cpu_accepts, states=True)


def _resolve_backend(backend: Optional[str], u, delta, A, B, C, return_states: bool = False) -> Callable:
    if return_states:
        name = _REGISTRY.pinned(backend)
        if name is not None and name not in _STATES_BACKENDS:
            if backend is not None:
                raise ValueError(f"selective_scan: backend {name!r} cannot return the hidden states; "
                                 f"backends that can: {', '.join(sorted(_STATES_BACKENDS))}")
            name = None  # the environment pins a backend for every call; this mode falls back to the dispatch
        if name is not None:
            return _REGISTRY.backends[name]
        skip = set(_REGISTRY.backends) - _STATES_BACKENDS
        return _REGISTRY.preferred(u.device.type, u, delta, A, B, C, skip=skip)
    return _REGISTRY.resolve(backend, u.device.type, u, delta, A, B, C)


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
                   return_last_state=False, backend: Optional[str] = None, return_states: bool = False):
    """Selective scan (Mamba S6) over (batch, K*D, L) sequences; see the module docstring for shapes."""
    check_inputs(u, delta, A, B, C, D, z, delta_bias, return_states=return_states)
    fn = _resolve_backend(backend, u, delta, A, B, C, return_states)
    if return_states:  # never traced as one node: the ops built on it (ops/state_fusion) wrap themselves
        return fn(u, delta, A, B, None, delta_bias=delta_bias, delta_softplus=delta_softplus,
                  return_last_state=return_last_state, return_states=True)
    if torch.jit.is_tracing() and not return_last_state:
        return SelectiveScanFn.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus, fn)
    return fn(u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus,
              return_last_state=return_last_state)
