"""The SS2D scan core with the fused 2D-scan kernel: no re-ordered copies of the map are ever written.

The per-direction projections are pointwise in the pixel, so they commute with re-ordering: x_proj runs once on
the map in pixel order (one GEMM for all K directions), dt_proj per direction on its R-channel slice, and the
selective-scan kernel reads x, delta, B and C through the strategy's order table and adds the K outputs into
one map (``fused_scan_forward``). Same results as ``naive.py`` up to fp32 summation order.

The whole core (weight padding, both projections, the scan) is one autograd node whose backward is written out
here (``project_rows_backward`` for the GEMMs): recorded op by op it was ~25 autograd nodes per block (views,
slices whose backward allocates and zero-fills the full x_proj output, pads, casts), and the host time of those
launches, not the GPU, bounded VMamba-T's eager training step on an H200 (run 19: 74 ms of host time for 62 ms of
kernels).
"""
from typing import Optional, Union

import torch

from ...scans import ScanStrategy, get_scan
from ..selective_scan.triton import fused_scan_backward, fused_scan_forward
from .projection import pad_projection_weights, project_pixels, project_rows, project_rows_backward, scan_operands

__all__ = ['selective_scan_2d_fused', 'project_pixels']


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype the projections' GEMMs run in: autocast's when it is on (as autocast would run the recorded
    matmuls), else the map's."""
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return x.dtype


class _SS2DCoreFusedTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, x_proj_weight, dt_projs_weight, A, D, delta_bias, delta_softplus, orders, complete,
                out_dtype):
        batch, dim, H, W = x.shape
        HW = H * W
        P = x_proj_weight.shape[1]
        R, d_state = dt_projs_weight.shape[2], A.shape[1]
        dtype = _compute_dtype(x)
        with torch.autocast(x.device.type, enabled=False):  # every cast is explicit below
            w_proj, w_dt = pad_projection_weights(x_proj_weight.to(dtype), dt_projs_weight.to(dtype))
            # (B*HW, D) pixel rows: a view of a channels-last map (SS2D's conv output of an NHWC map is one)
            rows = x.permute(0, 2, 3, 1).reshape(batch * HW, dim).to(dtype)
            x_dbl, dts = project_rows(rows, w_proj, w_dt)
            delta, Bs, Cs = scan_operands(x_dbl, dts, batch, R, P, d_state)
            xf = x.reshape(batch, dim, HW)  # the map the kernel gathers from: a view, channels-last or not
            A32 = A.float().contiguous()
            out, launch, chunk_states = fused_scan_forward(xf, delta, A32, Bs, Cs, D, delta_bias,
                                                           bool(delta_softplus), orders)
        ctx.save_for_backward(xf, rows, w_proj, w_dt, x_dbl, dts, A32, D, delta_bias, chunk_states)
        ctx.meta = (launch, bool(delta_softplus), complete, x.shape, x.dtype, R, P, d_state, A.dtype,
                    x_proj_weight.dtype, dt_projs_weight.dtype)
        return out.view(batch, H, W, dim).permute(0, 3, 1, 2).to(out_dtype)

    @staticmethod
    def backward(ctx, dy):
        xf, rows, w_proj, w_dt, x_dbl, dts, A32, D, delta_bias, chunk_states = ctx.saved_tensors
        launch, softplus, complete, x_shape, x_dtype, R, P, d_state, A_dtype, wp_dtype, wdt_dtype = ctx.meta
        batch, dim, H, W = x_shape
        HW = H * W
        K = w_proj.shape[0]
        delta, Bs, Cs = scan_operands(x_dbl, dts, batch, R, P, d_state)
        dx, ddelta, dA, dBC, dD, dbias = fused_scan_backward(
            launch, xf, delta, A32, Bs, Cs, D, delta_bias, softplus, chunk_states, dy.reshape(batch, dim, HW),
            complete)
        # ddelta keeps delta's strides (empty_like / zeros_like of a dense permutation): (K, B, HW, D) in memory
        ddts = ddelta.permute(1, 0, 3, 2).reshape(K, batch * HW, dim)
        d_rows, d_w_proj, d_w_dt = project_rows_backward(rows, w_proj, w_dt, x_dbl, ddts, dBC, R, P)
        dx = dx.view(batch * HW, dim).add_(d_rows)  # the scan's and the projections' paths, summed in fp32
        dx = dx.view(batch, H, W, dim).permute(0, 3, 1, 2).to(x_dtype)
        return (dx, d_w_proj.to(wp_dtype), d_w_dt.to(wdt_dtype),
                dA.to(A_dtype),
                None if dD is None else dD.to(D.dtype),
                None if dbias is None else dbias.to(delta_bias.dtype),
                None, None, None, None)


def selective_scan_2d_fused(x: torch.Tensor, strategy: Union[str, ScanStrategy], x_proj_weight: torch.Tensor,
                            dt_projs_weight: torch.Tensor, A: torch.Tensor, D: Optional[torch.Tensor] = None,
                            delta_bias: Optional[torch.Tensor] = None, delta_softplus: bool = False,
                            out_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Same signature and results as ``selective_scan_2d_naive`` (without ``scan_backend``), for CUDA tensors.

    Returns (B, D, H, W) in ``out_dtype`` (default: x's), channels-last in memory; the K directions are summed
    in fp32, so ``out_dtype=torch.float32`` hands that sum on without a rounding (and without a cast pass).
    """
    strategy = strategy if isinstance(strategy, ScanStrategy) else get_scan(strategy)
    index = strategy.index(x.shape[2], x.shape[3], x.device)
    return _SS2DCoreFusedTriton.apply(x, x_proj_weight, dt_projs_weight, A, D, delta_bias, delta_softplus,
                                      index.orders_int32, index.complete, out_dtype or x.dtype)
