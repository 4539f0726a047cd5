"""LayerNorm over the last dimension: one signature, several backends, one public function.

``layer_norm(x, weight, bias, eps=1e-5, out_dtype=None, backend=None)``

* x: (..., N), normalised over its last dim; weight, bias: (N,) or None. Statistics in fp32 (float64 for float64
  inputs); the result has ``out_dtype`` (default x's dtype).
* Backends (``available_backends()``): ``naive`` (the formula written out, the truth), ``torch``
  (``F.layer_norm``: the default off CUDA, for smaller CUDA maps, float64 and rows wider than the kernel's limit) and
  ``triton`` (forward + backward kernels, several rows per program: the default for CUDA maps of at least 2**25
  elements when Triton is installed; ``VMAMBA_ZOO_LAYER_NORM_TRITON_MIN`` moves that threshold, see below).
  ``backend=`` or ``VMAMBA_ZOO_LAYER_NORM_BACKEND`` pins one.

Models use it through ``vmamba_zoo.layers.LayerNorm`` (a drop-in ``nn.LayerNorm``: same parameters and keys).
"""
import os
from typing import Callable, Optional

import torch

from .._dispatch import BackendRegistry
from ..selective_scan import triton_available
from .naive import layer_norm_naive
from .torch_native import layer_norm_torch

__all__ = ['layer_norm', 'layer_norm_naive', 'layer_norm_torch', 'available_backends', 'ENV_BACKEND',
           'ENV_TRITON_MIN']

ENV_BACKEND = 'VMAMBA_ZOO_LAYER_NORM_BACKEND'


def _layer_norm_triton(*args, **kwargs):
    from .triton import layer_norm_triton  # imported on first use: importing triton costs ~0.5 s
    return layer_norm_triton(*args, **kwargs)


ENV_TRITON_MIN = 'VMAMBA_ZOO_LAYER_NORM_TRITON_MIN'
# Smallest map (elements) the CUDA dispatch sends to Triton. ATen's LayerNorm is a C++ autograd node (a few us of
# host time per call) while the Triton path is a Python autograd.Function plus Triton launches (0.2-0.4 ms of
# host time per fwd+bwd under cProfile on the H200 machine, run 9). On small maps ATen's kernels cost little GPU
# time and an eager training step is host-bound, so only large maps (vmamba_tiny's stem and stage 1 at batch 128:
# 38.5M-77M elements; at stage 1, 401k x 96, ATen 1.21 ms fwd+bwd vs Triton 0.41 ms, run 9) go to Triton.
# Measured in model_cards/gpu_kernels.md (run 10: training 1492 img/s with every map on Triton, 1583 with
# none, 1785 with this threshold).
_TRITON_MIN_ELEMENTS = 1 << 25


def _triton_min_elements() -> int:
    pinned = os.environ.get(ENV_TRITON_MIN)
    return int(pinned) if pinned else _TRITON_MIN_ELEMENTS


def _triton_accepts(x: torch.Tensor) -> bool:
    within_limit = x.shape[-1] <= 16384  # triton.MAX_FEATURES, without importing triton to ask
    return (x.is_cuda and triton_available() and within_limit and x.numel() >= _triton_min_elements()
            and x.dtype in (torch.float32, torch.float16, torch.bfloat16) and not torch.jit.is_tracing())


_REGISTRY = BackendRegistry('layer_norm', ENV_BACKEND, {'naive': layer_norm_naive, 'torch': layer_norm_torch},
                            default=layer_norm_torch)
_REGISTRY.register('triton', _layer_norm_triton, device_types=('cuda',), accepts=_triton_accepts)


def available_backends():
    return _REGISTRY.names()


def _resolve_backend(backend: Optional[str], x: torch.Tensor) -> Callable:
    return _REGISTRY.resolve(backend, x.device.type, x)


def layer_norm(x: torch.Tensor, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor], eps: float = 1e-5,
               out_dtype: Optional[torch.dtype] = None, backend: Optional[str] = None) -> torch.Tensor:
    """LayerNorm of x over its last dim, result in ``out_dtype`` (default x's dtype); see the module docstring.
    Every backend checks its inputs (``common.check_inputs``)."""
    return _resolve_backend(backend, x)(x, weight, bias, eps, out_dtype)
