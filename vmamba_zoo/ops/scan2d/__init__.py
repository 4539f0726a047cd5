"""The SS2D scan core: scan a map into K directions, project, selective-scan, merge back. One public function.

``selective_scan_2d(x, strategy, x_proj_weight, dt_projs_weight, A, D=None, delta_bias=None,
delta_softplus=False, backend=None)`` -> (B, D, H, W)

Paths: ``plain`` (``naive.py``: ``scan()`` -> projections -> ``selective_scan()`` -> ``merge()``, every device,
and the path traced for FLOP counting) and ``fused`` (``triton.py``: one Triton kernel per pass that reads the
strategy's index maps inside the kernel, so the K re-ordered copies of the map are never written).

Dispatch: ``backend=`` or the environment variable ``VMAMBA_ZOO_SCAN2D_BACKEND`` ('fused' or 'plain') pins a
path; otherwise ``fused`` runs for CUDA inputs when Triton is installed, the state is at most 256 wide, the dtype
is fp32/fp16/bf16 and the call is not being traced, and ``plain`` everywhere else. Pinning a selective-scan
backend with ``VMAMBA_ZOO_SCAN_BACKEND`` also selects ``plain`` (so that backend really runs).
"""
import os
from typing import Optional, Union

import torch

from ...scans import ScanStrategy, get_scan
from ..selective_scan import ENV_BACKEND as ENV_SCAN_BACKEND
from ..selective_scan import triton_available
from .naive import selective_scan_2d_naive

__all__ = ['selective_scan_2d', 'selective_scan_2d_naive', 'ENV_BACKEND', 'BACKENDS']

ENV_BACKEND = 'VMAMBA_ZOO_SCAN2D_BACKEND'
BACKENDS = ('plain', 'fused')


def _fused_accepts(x: torch.Tensor, A: torch.Tensor) -> bool:
    return (x.is_cuda and triton_available() and A.shape[1] <= 256 and not torch.jit.is_tracing()
            and x.dtype in (torch.float32, torch.float16, torch.bfloat16) and not os.environ.get(ENV_SCAN_BACKEND))


def selective_scan_2d(x: torch.Tensor, strategy: Union[str, ScanStrategy], x_proj_weight: torch.Tensor,
                      dt_projs_weight: torch.Tensor, A: torch.Tensor, D: Optional[torch.Tensor] = None,
                      delta_bias: Optional[torch.Tensor] = None, delta_softplus: bool = False,
                      backend: Optional[str] = None) -> torch.Tensor:
    """x (B, D, H, W) -> merged scan output (B, D, H, W) in x's dtype; x_proj_weight (K, R + 2N, D),
    dt_projs_weight (K, D, R), A (K*D, N), D and delta_bias (K*D,). See the module docstring for the paths."""
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
        name = 'fused' if _fused_accepts(x, A) else 'plain'
    if name == 'plain':
        return selective_scan_2d_naive(x, strategy, x_proj_weight, dt_projs_weight, A, D=D,
                                       delta_bias=delta_bias, delta_softplus=delta_softplus)
    if name == 'fused':
        from .triton import selective_scan_2d_fused  # imported on first use: importing triton costs ~0.5 s
        return selective_scan_2d_fused(x, strategy, x_proj_weight, dt_projs_weight, A, D=D,
                                       delta_bias=delta_bias, delta_softplus=delta_softplus)
    raise ValueError(f"selective_scan_2d: unknown backend {name!r}; known: {', '.join(BACKENDS)}")
