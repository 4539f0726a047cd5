"""The SS2D scan core with the fused 2D-scan kernel: no re-ordered copies of the map are ever written.

The per-direction projections are pointwise in the pixel, so they commute with re-ordering: x_proj runs once on
the map in pixel order (one GEMM for all K directions), dt_proj per direction on its R-channel slice, and the
selective-scan kernel reads x, delta, B and C through the strategy's order table and adds the K outputs into
one map (``selective_scan_fused_triton``). Same results as ``naive.py`` up to fp32 summation order.
"""
from typing import Optional, Union

import torch

from ...scans import ScanStrategy, get_scan
from ..selective_scan.triton import selective_scan_fused_triton
from .projection import project_pixels

__all__ = ['selective_scan_2d_fused', 'project_pixels']


def selective_scan_2d_fused(x: torch.Tensor, strategy: Union[str, ScanStrategy], x_proj_weight: torch.Tensor,
                            dt_projs_weight: torch.Tensor, A: torch.Tensor, D: Optional[torch.Tensor] = None,
                            delta_bias: Optional[torch.Tensor] = None, delta_softplus: bool = False) -> torch.Tensor:
    """Same signature and results as ``selective_scan_2d_naive`` (without ``scan_backend``), for CUDA tensors."""
    strategy = strategy if isinstance(strategy, ScanStrategy) else get_scan(strategy)
    index = strategy.index(x.shape[2], x.shape[3], x.device)
    dts, Bs, Cs = project_pixels(x, x_proj_weight, dt_projs_weight, A.shape[1])
    return selective_scan_fused_triton(x, dts, A, Bs, Cs, index, D=D, delta_bias=delta_bias,
                                       delta_softplus=delta_softplus)
