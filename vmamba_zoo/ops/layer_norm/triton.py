"""LayerNorm over the last dimension in Triton: forward and backward kernels for CUDA tensors (contract of
``naive.py``), several rows per program.

Why a kernel of our own: on channels-last vision maps the normalised dim is small (96..768) and the rows are
many (batch 128 at 56x56: 401k rows of 96). ATen's LayerNorm kernels give each row its own thread block, so at
N = 96 most of a block idles; in the vmamba_tiny training step they took 18.7 of 79.7 ms of kernel time, ~6x what
their bytes need at HBM speed (model_cards/gpu_kernels.md, run 6 profile). Here one program normalises
``BLOCK_M`` rows at once, (BLOCK_M, BLOCK_N) in registers, with statistics in fp32.

* Forward: mean and biased variance per row, y = (x - mean) * rstd * w + b, stored in ``out_dtype`` (under
  autocast the autocast dtype: the consumer, a Linear / conv, would cast it to that anyway; see layers/norm.py).
  Nothing but the input is saved: the backward recomputes the statistics from x it must read regardless.
* Backward: one program per row block computes dx = rstd * (w dy - mean(w dy xhat) xhat - mean(w dy)) for its
  rows and writes its fp32 column sums of dy xhat and dy as two partial rows; the host sums the (row blocks, 2, N)
  partials into dw, db in one reduction (no atomics; 2/BLOCK_M of the map's size).

Checked against ``naive.py`` by ``tests/ops/test_layer_norm.py`` on the GPU and, on CPU, under Triton's
interpreter (``TRITON_INTERPRET=1``).
"""
import os
from typing import Optional

import torch
import triton
import triton.language as tl

from .common import check_inputs

__all__ = ['layer_norm_triton', 'MAX_FEATURES']

# one row block must fit in registers; wider rows (none in the zoo: the widest is 4 * 768 = 3072 in
# EfficientVMamba's patch merging) take the ATen path
MAX_FEATURES = 16384

ENV_BLOCKS = 'VMAMBA_ZOO_LAYER_NORM_BLOCKS'  # "BLOCK_M,num_warps": one launch shape for every call (tuning)


def _launch_shape(features: int):
    block_n = triton.next_power_of_2(features)
    pinned = os.environ.get(ENV_BLOCKS)
    if pinned:
        block_m, num_warps = (int(v) for v in pinned.split(','))
        return block_m, block_n, num_warps
    # ~2K elements per program at 4 warps: the fastest forward of the (BLOCK_M, num_warps) sweep at vmamba_tiny's
    # stage-1 shape (401k x 96: BLOCK_M 16, 0.060 ms vs 0.080 at BLOCK_M 32; H200, tools/bench_gpu.py --section
    # norms); at the smaller stages every candidate was within the ~0.03 ms launch floor
    block_m = max(1, min(64, 2048 // block_n))
    num_warps = 4 if block_n <= 2048 else 8 if block_n <= 8192 else 16
    return block_m, block_n, num_warps


@triton.jit
def _layer_norm_fwd_kernel(x_ptr, w_ptr, b_ptr, y_ptr, rows, features, stride_x, stride_y, eps,
                           HAS_WEIGHT: tl.constexpr, HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr,
                           BLOCK_N: tl.constexpr):
    pid = tl.program_id(0)
    row = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    col = tl.arange(0, BLOCK_N)
    row_mask = row < rows
    col_mask = col < features
    mask = row_mask[:, None] & col_mask[None, :]
    row64 = row.to(tl.int64)
    x = tl.load(x_ptr + row64[:, None] * stride_x + col[None, :], mask=mask, other=0.).to(tl.float32)
    mean = tl.sum(x, axis=1) / features
    centred = tl.where(mask, x - mean[:, None], 0.)
    var = tl.sum(centred * centred, axis=1) / features
    rstd = 1. / tl.sqrt(var + eps)
    y = centred * rstd[:, None]
    if HAS_WEIGHT:
        y = y * tl.load(w_ptr + col, mask=col_mask, other=0.).to(tl.float32)[None, :]
    if HAS_BIAS:
        y = y + tl.load(b_ptr + col, mask=col_mask, other=0.).to(tl.float32)[None, :]
    tl.store(y_ptr + row64[:, None] * stride_y + col[None, :], y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _layer_norm_bwd_kernel(x_ptr, w_ptr, dy_ptr, dx_ptr, partial_ptr, rows, features, stride_x, stride_dy,
                           stride_dx, eps, HAS_WEIGHT: tl.constexpr, NEED_DW: tl.constexpr, NEED_DB: tl.constexpr,
                           NEED_DX: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    pid = tl.program_id(0)
    row = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    col = tl.arange(0, BLOCK_N)
    col_mask = col < features
    mask = (row < rows)[:, None] & col_mask[None, :]
    row64 = row.to(tl.int64)
    x = tl.load(x_ptr + row64[:, None] * stride_x + col[None, :], mask=mask, other=0.).to(tl.float32)
    dy = tl.load(dy_ptr + row64[:, None] * stride_dy + col[None, :], mask=mask, other=0.).to(tl.float32)
    mean = tl.sum(x, axis=1) / features
    centred = tl.where(mask, x - mean[:, None], 0.)
    rstd = 1. / tl.sqrt(tl.sum(centred * centred, axis=1) / features + eps)
    xhat = centred * rstd[:, None]
    # this block's partial column sums, rows (block, 0, :) and (block, 1, :) of one buffer: the host adds the
    # (row blocks, 2, N) partials in one reduction
    if NEED_DW:
        tl.store(partial_ptr + pid * 2 * features + col, tl.sum(dy * xhat, axis=0), mask=col_mask)
    if NEED_DB:
        tl.store(partial_ptr + pid * 2 * features + features + col, tl.sum(dy, axis=0), mask=col_mask)
    if NEED_DX:
        if HAS_WEIGHT:
            wdy = dy * tl.load(w_ptr + col, mask=col_mask, other=0.).to(tl.float32)[None, :]
        else:
            wdy = dy
        c_xhat = tl.sum(wdy * xhat, axis=1) / features
        c_one = tl.sum(wdy, axis=1) / features
        dx = (wdy - xhat * c_xhat[:, None] - c_one[:, None]) * rstd[:, None]
        tl.store(dx_ptr + row64[:, None] * stride_dx + col[None, :], dx.to(dx_ptr.dtype.element_ty), mask=mask)


def _as_rows(t: torch.Tensor, features: int) -> torch.Tensor:
    rows = t.reshape(-1, features)
    return rows if rows.stride(-1) == 1 else rows.contiguous()


class LayerNormFn(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x, weight, bias, eps, out_dtype):
        features = x.shape[-1]
        x_rows = _as_rows(x, features)
        rows = x_rows.shape[0]
        y = torch.empty((rows, features), dtype=out_dtype, device=x.device)
        block_m, block_n, num_warps = _launch_shape(features)
        if rows:
            _layer_norm_fwd_kernel[(triton.cdiv(rows, block_m),)](
                x_rows, weight if weight is not None else x_rows, bias if bias is not None else x_rows, y, rows,
                features, x_rows.stride(0), y.stride(0), eps, HAS_WEIGHT=weight is not None,
                HAS_BIAS=bias is not None, BLOCK_M=block_m, BLOCK_N=block_n, num_warps=num_warps)
        ctx.save_for_backward(x_rows, weight)
        ctx.x_shape, ctx.x_dtype, ctx.eps = x.shape, x.dtype, eps
        ctx.bias_dtype = None if bias is None else bias.dtype
        return y.view(x.shape)

    @staticmethod
    def backward(ctx, dy):
        x_rows, weight = ctx.saved_tensors
        rows, features = x_rows.shape
        need_dx, need_dw, need_db = ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        dy_rows = _as_rows(dy, features)
        block_m, block_n, num_warps = _launch_shape(features)
        programs = triton.cdiv(rows, block_m)
        dx = torch.empty((rows, features), dtype=ctx.x_dtype, device=x_rows.device) if need_dx else None
        partial = None
        if need_dw or need_db:  # zeros only when there are no rows: each block writes its own partial rows
            partial = (torch.empty if rows else torch.zeros)((max(programs, 1), 2, features), dtype=torch.float32,
                                                             device=x_rows.device)
        if rows:
            _layer_norm_bwd_kernel[(programs,)](
                x_rows, weight if weight is not None else x_rows, dy_rows, dx if need_dx else x_rows,
                partial if partial is not None else x_rows, rows, features, x_rows.stride(0), dy_rows.stride(0),
                dx.stride(0) if need_dx else 0, ctx.eps, HAS_WEIGHT=weight is not None, NEED_DW=need_dw,
                NEED_DB=need_db, NEED_DX=need_dx, BLOCK_M=block_m, BLOCK_N=block_n, num_warps=num_warps)
        sums = partial.sum(0) if partial is not None else None  # (2, N): dw, db
        dweight = sums[0].to(weight.dtype) if need_dw else None
        dbias = sums[1].to(ctx.bias_dtype) if need_db else None
        return (dx.view(ctx.x_shape) if need_dx else None), dweight, dbias, None, None


def layer_norm_triton(x: torch.Tensor, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor],
                      eps: float = 1e-5, out_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """See ``vmamba_zoo.ops.layer_norm.layer_norm``."""
    features = check_inputs(x, weight, bias)
    if features > MAX_FEATURES:
        raise ValueError(f'layer_norm_triton: at most {MAX_FEATURES} features per row, got {features}')
    if x.dtype == torch.float64:
        raise ValueError('layer_norm_triton: float64 is not supported (use the naive or torch backend)')
    return LayerNormFn.apply(x, weight, bias, float(eps), out_dtype or x.dtype)
