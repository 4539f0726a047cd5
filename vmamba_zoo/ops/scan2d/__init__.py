"""The SS2D scan core: scan a map into K directions, project, selective-scan, merge back. One public function.

``selective_scan_2d(x, strategy, x_proj_weight, dt_projs_weight, A, D=None, delta_bias=None,
delta_softplus=False, backend=None, out_dtype=None)`` -> (B, D, H, W) in ``out_dtype`` (default: x's dtype)

Paths: ``plain`` (``naive.py``: ``scan()`` -> projections -> ``selective_scan()`` -> ``merge()``, every device,
and the path traced for FLOP counting), ``fused`` (``triton.py``: one Triton kernel per pass that reads the
strategy's index maps inside the kernel, so the K re-ordered copies of the map are never written; forward and
backward) and ``fused_cpu`` (``cpu.py``: the same idea as a C++ CPU kernel, forward only, built on first use).

Dispatch: ``backend=`` or the environment variable ``VMAMBA_ZOO_SCAN2D_BACKEND`` ('plain', 'fused' or
'fused_cpu') pins a path; otherwise ``fused`` runs for CUDA inputs when Triton is installed, the state is at most
256 wide, the dtype is fp32/fp16/bf16 and the call is not being traced; ``fused_cpu`` runs for CPU inputs of
those dtypes when autograd does not record the call (inference) and the C++ kernels build
(``vmamba_zoo.ops.selective_scan.cpu``); ``plain`` everywhere else. Calls recorded by autograd never run
``fused_cpu`` (it has no backward): pinned, they run ``plain``, which gives the same results. Pinning a
selective-scan backend with ``VMAMBA_ZOO_SCAN_BACKEND`` also selects ``plain`` (so that backend really runs).
"""
import os
from typing import Optional, Union

import torch

from ...scans import ScanStrategy, get_scan
from ..selective_scan import ENV_BACKEND as ENV_SCAN_BACKEND
from ..selective_scan import triton_available
from ..selective_scan.cpu import cpu_backend_available, needs_autograd
from .naive import selective_scan_2d_naive

__all__ = ['selective_scan_2d', 'selective_scan_2d_naive', 'ENV_BACKEND', 'BACKENDS']

ENV_BACKEND = 'VMAMBA_ZOO_SCAN2D_BACKEND'
BACKENDS = ('plain', 'fused', 'fused_cpu')
_FUSED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _automatic_backend(x: torch.Tensor, A: torch.Tensor, weights) -> str:
    if torch.jit.is_tracing() or os.environ.get(ENV_SCAN_BACKEND) or x.dtype not in _FUSED_DTYPES:
        return 'plain'
    if x.is_cuda and triton_available() and A.shape[1] <= 256:
        return 'fused'
    if x.device.type == 'cpu' and not needs_autograd(x, A, *weights) and cpu_backend_available():
        return 'fused_cpu'
    return 'plain'


def selective_scan_2d(x: torch.Tensor, strategy: Union[str, ScanStrategy], x_proj_weight: torch.Tensor,
                      dt_projs_weight: torch.Tensor, A: torch.Tensor, D: Optional[torch.Tensor] = None,
                      delta_bias: Optional[torch.Tensor] = None, delta_softplus: bool = False,
                      backend: Optional[str] = None, out_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """x (B, D, H, W) -> merged scan output (B, D, H, W) in ``out_dtype`` (default: x's dtype); x_proj_weight
    (K, R + 2N, D), dt_projs_weight (K, D, R), A (K*D, N), D and delta_bias (K*D,). See the module docstring for
    the paths. ``out_dtype=torch.float32`` lets the fused path hand on its fp32 sum of the K directions unrounded
    (what a LayerNorm after it wants); the other paths cast their result."""
    strategy = strategy if isinstance(strategy, ScanStrategy) else get_scan(strategy)
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f'selective_scan_2d expects x of shape (B, D, H, W); got {shape}')
    K, dim = strategy.num_directions, x.shape[1]
    if x_proj_weight.dim() != 3 or x_proj_weight.shape[0] != K or x_proj_weight.shape[2] != dim:
        raise ValueError(f"selective_scan_2d: x_proj_weight must be (K={K}, R + 2N, D={dim}) for scan "
                         f"'{strategy.name}', got {tuple(x_proj_weight.shape)}")
    if dt_projs_weight.dim() != 3 or dt_projs_weight.shape[:2] != (K, dim):
        raise ValueError(f'selective_scan_2d: dt_projs_weight must be (K={K}, D={dim}, R), '
                         f'got {tuple(dt_projs_weight.shape)}')
    R, N = dt_projs_weight.shape[2], A.shape[-1]
    if x_proj_weight.shape[1] != R + 2 * N or tuple(A.shape) != (K * dim, N):
        raise ValueError(f'selective_scan_2d: x_proj_weight {tuple(x_proj_weight.shape)} must have R + 2N = '
                         f'{R} + 2*{N} rows for A {tuple(A.shape)} (K*D, N) and dt rank R={R}')
    name = backend or os.environ.get(ENV_BACKEND) or None
    if name is None:
        name = _automatic_backend(x, A, (x_proj_weight, dt_projs_weight, D, delta_bias))
    if name == 'fused_cpu' and needs_autograd(x, x_proj_weight, dt_projs_weight, A, D, delta_bias):
        name = 'plain'  # the C++ kernel is forward-only; plain gives the same results with gradients
    if out_dtype is not None and not (isinstance(out_dtype, torch.dtype) and out_dtype.is_floating_point):
        raise ValueError(f'selective_scan_2d: out_dtype must be a floating torch.dtype, got {out_dtype!r}')
    if name == 'plain':
        out = selective_scan_2d_naive(x, strategy, x_proj_weight, dt_projs_weight, A, D=D,
                                      delta_bias=delta_bias, delta_softplus=delta_softplus)
        return out if out_dtype is None else out.to(out_dtype)
    if name == 'fused':
        from .triton import selective_scan_2d_fused  # imported on first use: importing triton costs ~0.5 s
        return selective_scan_2d_fused(x, strategy, x_proj_weight, dt_projs_weight, A, D=D,
                                       delta_bias=delta_bias, delta_softplus=delta_softplus, out_dtype=out_dtype)
    if name == 'fused_cpu':
        from .cpu import selective_scan_2d_fused_cpu
        out = selective_scan_2d_fused_cpu(x, strategy, x_proj_weight, dt_projs_weight, A, D=D,
                                          delta_bias=delta_bias, delta_softplus=delta_softplus)
        return out if out_dtype is None else out.to(out_dtype)
    raise ValueError(f"selective_scan_2d: unknown backend {name!r}; known: {', '.join(BACKENDS)}")
