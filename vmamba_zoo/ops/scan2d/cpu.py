"""The SS2D scan core with the fused C++ CPU kernel (``kernels/cpu/scan_cpu.cpp``): inference on CPU.

Same data flow as the Triton fused path (``triton.py``): x_proj / dt_proj run once per pixel
(``projection.project_pixels``), the kernel visits the pixels of the (B, D, H, W) map in each direction's order
(the strategy's ``ScanIndex.orders``) and adds the K directions' outputs into one channels-last map. Forward only;
the dispatch in ``__init__.py`` sends calls that autograd records to the plain path. Same results as
``naive.py`` up to fp32 rounding (the K outputs are summed in direction order, so it is deterministic).
"""
from typing import Optional, Union

import torch

from ...scans import ScanStrategy, get_scan
from ..selective_scan.cpu import load_cpu_extension
from .projection import project_pixels

__all__ = ['selective_scan_2d_fused_cpu']


def selective_scan_2d_fused_cpu(x: torch.Tensor, strategy: Union[str, ScanStrategy], x_proj_weight: torch.Tensor,
                                dt_projs_weight: torch.Tensor, A: torch.Tensor, D: Optional[torch.Tensor] = None,
                                delta_bias: Optional[torch.Tensor] = None,
                                delta_softplus: bool = False) -> torch.Tensor:
    """Same signature and results as ``selective_scan_2d_naive`` (without ``scan_backend``), for CPU tensors,
    without autograd. Returns (B, D, H, W) in x's dtype, channels-last in memory."""
    strategy = strategy if isinstance(strategy, ScanStrategy) else get_scan(strategy)
    if x.device.type != 'cpu':
        raise ValueError(f'selective_scan_2d (fused_cpu): CPU tensors expected, got {x.device}')
    batch, dim, H, W = x.shape
    index = strategy.index(H, W, 'cpu')
    x32 = x.float()  # fp32 compute whatever the map's dtype (as the plain path under autocast on CPU)
    if H > 1 and x32.stride(2) != W * x32.stride(3):  # the kernel walks H and W as one pixel index
        x32 = x32.contiguous(memory_format=torch.channels_last)
    dts, Bs, Cs = project_pixels(x32, x_proj_weight.float(), dt_projs_weight.float(), A.shape[1])
    out = load_cpu_extension().scan2d_fused_fwd(
        x32, dts.float(), A.float().contiguous(), Bs.float(), Cs.float(), index.orders,
        None if D is None else D.float().contiguous(),
        None if delta_bias is None else delta_bias.float().contiguous(), bool(delta_softplus))
    return out.view(batch, H, W, dim).permute(0, 3, 1, 2).to(x.dtype)
