"""The per-direction projections of SS2D evaluated once per pixel, shared by the fused 2D-scan kernels.

x_proj and dt_proj are pointwise in the pixel, so they commute with the scan's re-ordering: both fused paths
(Triton on CUDA, C++ on CPU) run them on the map in pixel order and let the kernel read the results through the
strategy's order table.
"""
import torch
import torch.nn.functional as F

__all__ = ['project_pixels']


def _round_up(n: int, multiple: int = 8) -> int:
    return -(-n // multiple) * multiple


def project_pixels(x: torch.Tensor, x_proj_weight: torch.Tensor, dt_projs_weight: torch.Tensor, d_state: int):
    """Per-direction x_proj and dt_proj on the map in pixel order: x (B, D, H, W) -> delta (B, K, D, H*W),
    B and C (B, K, N, H*W), as strided views (delta: D contiguous per pixel; B/C: views of the x_proj output).

    Each direction's x_proj rows are zero-padded to a multiple of 8 and dt_proj reads the first multiple-of-8
    columns of them (the extra columns meet zero weights), so both GEMMs see 16-byte aligned rows: with VMamba-T's
    dt rank 6 the unpadded (B*H*W, 6) operand sent cuBLAS to an align-1 kernel that took ~9 ms per stage-1 block
    backward on an H200 (bf16, batch 128).
    """
    B, dim, H, W = x.shape
    HW = H * W
    K, P, _ = x_proj_weight.shape
    R = dt_projs_weight.shape[2]
    P_pad = _round_up(P)
    R_pad = min(_round_up(R), P_pad)
    w_proj = F.pad(x_proj_weight, (0, 0, 0, P_pad - P)) if P_pad != P else x_proj_weight  # (K, P_pad, D)
    w_dt = F.pad(dt_projs_weight, (0, R_pad - R)) if R_pad != R else dt_projs_weight  # (K, D, R_pad)
    # (B*HW, D) rows: a view when x is channels-last (SS2D's conv output of an NHWC map is)
    rows = x.permute(0, 2, 3, 1).reshape(B * HW, dim)
    x_dbl = torch.matmul(rows, w_proj.reshape(K * P_pad, dim).t()).view(B * HW, K, P_pad)
    # dt_proj per direction: (K, B*HW, R_pad) @ (K, R_pad, D) -> (K, B*HW, D)
    dts = torch.bmm(x_dbl.permute(1, 0, 2)[..., :R_pad], w_dt.transpose(1, 2))
    dts = dts.view(K, B, HW, dim).permute(1, 0, 3, 2)  # (B, K, D, HW)
    x_dbl = x_dbl.view(B, HW, K, P_pad)
    Bs = x_dbl[..., R:R + d_state].permute(0, 2, 3, 1)  # (B, K, N, HW)
    Cs = x_dbl[..., R + d_state:P].permute(0, 2, 3, 1)
    return dts, Bs, Cs
