"""The per-direction projections of SS2D evaluated once per pixel, shared by the fused 2D-scan kernels.

x_proj and dt_proj are pointwise in the pixel, so they commute with the scan's re-ordering: both fused paths
(Triton on CUDA, C++ on CPU) run them on the map in pixel order and let the kernel read the results through the
strategy's order table. ``project_pixels`` is the autograd-recorded composition (the CPU path, tests);
``pad_projection_weights`` / ``project_rows`` / ``project_rows_backward`` are its pieces for the Triton path's
single autograd node, which runs them itself in both directions (fewer, larger host steps per block).
"""
import torch
import torch.nn.functional as F

__all__ = ['project_pixels', 'pad_projection_weights', 'project_rows', 'project_rows_backward', 'scan_operands']


def _round_up(n: int, multiple: int = 8) -> int:
    return -(-n // multiple) * multiple


def pad_projection_weights(x_proj_weight: torch.Tensor, dt_projs_weight: torch.Tensor):
    """x_proj_weight (K, P, D) -> (K, P_pad, D) and dt_projs_weight (K, D, R) -> (K, D, R_pad), zero-padded.

    Each direction's x_proj rows are zero-padded to a multiple of 8 and dt_proj reads the first multiple-of-8
    columns of them (the extra columns meet zero weights), so both GEMMs see 16-byte aligned rows: with VMamba-T's
    dt rank 6 the unpadded (B*H*W, 6) operand sent cuBLAS to an align-1 kernel that took ~9 ms per stage-1 block
    backward on an H200 (bf16, batch 128).
    """
    P, R = x_proj_weight.shape[1], dt_projs_weight.shape[2]
    P_pad = _round_up(P)
    R_pad = min(_round_up(R), P_pad)
    w_proj = F.pad(x_proj_weight, (0, 0, 0, P_pad - P)) if P_pad != P else x_proj_weight
    w_dt = F.pad(dt_projs_weight, (0, R_pad - R)) if R_pad != R else dt_projs_weight
    return w_proj, w_dt


def project_rows(rows: torch.Tensor, w_proj: torch.Tensor, w_dt: torch.Tensor):
    """rows (B*HW, D) pixel rows; padded weights from ``pad_projection_weights``.

    Returns x_dbl (B*HW, K, P_pad) (x_proj of every pixel for every direction; columns R:R+N are B, R+N:P are C)
    and dts (K, B*HW, D) (dt_proj of the first R_pad columns, per direction).
    """
    K, P_pad, dim = w_proj.shape
    R_pad = w_dt.shape[2]
    x_dbl = torch.matmul(rows, w_proj.reshape(K * P_pad, dim).t()).view(rows.shape[0], K, P_pad)
    dts = torch.bmm(x_dbl.permute(1, 0, 2)[..., :R_pad], w_dt.transpose(1, 2))
    return x_dbl, dts


def project_rows_backward(rows, w_proj, w_dt, x_dbl, ddts, dBC, R: int, P: int):
    """Gradients of ``project_rows`` given ddts (K, B*HW, D) and the gradients dBC (2, B, K, N, HW: dB and dC
    stacked, as the fused kernel's reduction returns them) of the B and C column blocks of x_dbl (any float dtype).

    Returns (d_rows (B*HW, D), d_w_proj (K, P, D), d_w_dt (K, D, R)) in the dtype of rows / the weights (the
    padding's rows and columns dropped: their weights are constants).
    """
    K, P_pad, dim = w_proj.shape
    R_pad = w_dt.shape[2]
    n_rows = rows.shape[0]
    _, batch, _, d_state, HW = dBC.shape
    d_x_dbl = torch.empty_like(x_dbl)  # (B*HW, K, P_pad)
    # dt path: columns >= R meet zero-padded dt weights, so only the first R columns get its gradient; the B and
    # C columns get theirs from the scan, the padding columns a zero (they meet zero x_proj rows below, and an
    # uninitialised NaN there would survive the multiplication)
    d_x_dbl[..., :R].copy_(torch.bmm(ddts, w_dt).permute(1, 0, 2)[..., :R])
    # columns R:R+N take dB, R+N:P dC: one copy of the stacked pair, (2, B, K, N, HW) -> (B, HW, K, 2, N)
    per_pixel = d_x_dbl.view(batch, HW, K, P_pad)
    per_pixel[..., R:P].view(batch, HW, K, 2, d_state).copy_(dBC.permute(1, 4, 2, 0, 3))
    if P_pad > P:
        d_x_dbl[..., P:].zero_()
    flat = d_x_dbl.view(n_rows, K * P_pad)
    d_rows = torch.matmul(flat, w_proj.reshape(K * P_pad, dim))
    d_w_proj = torch.matmul(flat.t(), rows).view(K, P_pad, dim)[:, :P]
    d_w_dt = torch.bmm(ddts.transpose(1, 2), x_dbl.permute(1, 0, 2)[..., :R_pad])[..., :R]
    return d_rows, d_w_proj, d_w_dt


def scan_operands(x_dbl: torch.Tensor, dts: torch.Tensor, batch: int, R: int, P: int, d_state: int):
    """The fused kernel's operands as strided views of ``project_rows``' outputs: delta (B, K, D, HW) (D contiguous
    per pixel) and B, C (B, K, N, HW) (column blocks R:R+N and R+N:P of x_dbl)."""
    K, n_rows, dim = dts.shape
    HW = n_rows // batch
    delta = dts.view(K, batch, HW, dim).permute(1, 0, 3, 2)
    per_pixel = x_dbl.view(batch, HW, K, x_dbl.shape[2])
    Bs = per_pixel[..., R:R + d_state].permute(0, 2, 3, 1)
    Cs = per_pixel[..., R + d_state:P].permute(0, 2, 3, 1)
    return delta, Bs, Cs


def project_pixels(x: torch.Tensor, x_proj_weight: torch.Tensor, dt_projs_weight: torch.Tensor, d_state: int):
    """Per-direction x_proj and dt_proj on the map in pixel order: x (B, D, H, W) -> delta (B, K, D, H*W),
    B and C (B, K, N, H*W), as strided views (delta: D contiguous per pixel; B/C: views of the x_proj output)."""
    B, dim, H, W = x.shape
    w_proj, w_dt = pad_projection_weights(x_proj_weight, dt_projs_weight)
    # (B*HW, D) rows: a view when x is channels-last (SS2D's conv output of an NHWC map is)
    x_dbl, dts = project_rows(x.permute(0, 2, 3, 1).reshape(B * H * W, dim), w_proj, w_dt)
    return scan_operands(x_dbl, dts, B, dt_projs_weight.shape[2], x_proj_weight.shape[1], d_state)
