"""The SS2D scan core as plain PyTorch ops: the reference of the fused 2D-scan path and its CPU path.

``scan()`` gives the K re-ordered copies of the map, each direction's x_proj / dt_proj run on its copy, the
selective scan runs over the K*D sequences and ``merge()`` sums the directions back into the map. Data flow of
MzeroMiko/VMamba classification/models/vmamba.py ``SS2Dv2.forward_corev2`` (x_proj as a per-direction einsum,
dt_proj folded after it, A = -exp(A_logs), softplus on delta + dt bias), written as batched matmuls.
"""
from typing import Optional, Union

import torch

from ...scans import ScanStrategy, get_scan, merge, scan
from ..selective_scan import selective_scan

__all__ = ['selective_scan_2d_naive']


def selective_scan_2d_naive(x: torch.Tensor, strategy: Union[str, ScanStrategy], x_proj_weight: torch.Tensor,
                            dt_projs_weight: torch.Tensor, A: torch.Tensor, D: Optional[torch.Tensor] = None,
                            delta_bias: Optional[torch.Tensor] = None, delta_softplus: bool = False,
                            scan_backend: Optional[str] = None) -> torch.Tensor:
    """x (B, D, H, W) -> merged scan output (B, D, H, W) in x's dtype.

    x_proj_weight (K, R + 2N, D), dt_projs_weight (K, D, R), A (K*D, N), D and delta_bias (K*D,).
    ``scan_backend`` picks the selective-scan backend (None: its usual dispatch; 'naive': the exact truth).
    """
    strategy = strategy if isinstance(strategy, ScanStrategy) else get_scan(strategy)
    B, dim, H, W = x.shape
    K, N, R = x_proj_weight.shape[0], A.shape[1], dt_projs_weight.shape[2]
    xs = scan(x, strategy)  # (B, K, D, S)
    S = xs.shape[-1]
    # One linear map per direction as a batched matmul (same maths as the official grouped 1x1 conv1d of the
    # ``v05`` path; ~20x faster than grouped conv1d for dt_proj on CPU at stage-1 shapes).
    x_dbl = torch.matmul(x_proj_weight, xs)  # (B, K, R + 2N, S)
    dts, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=2)
    dts = torch.matmul(dt_projs_weight, dts).view(B, K * dim, S)
    ys = selective_scan(xs.reshape(B, K * dim, S), dts, A, Bs, Cs, D=D, delta_bias=delta_bias,
                        delta_softplus=delta_softplus, backend=scan_backend)
    return merge(ys.view(B, K, dim, S), strategy, (H, W))
