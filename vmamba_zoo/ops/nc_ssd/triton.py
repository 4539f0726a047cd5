"""Non-causal SSD in Triton: forward and backward kernels of the global-state form, for CUDA tensors.

Same contract and result as ``naive.py`` / ``matmul.py``. With w = dt * A (batch, L, nheads) and g = h % ngroups:

    state[b, h] = B[b, :, g]^T (w x)[b, :, h]          (d_state, headdim), fp32, reduced over all L tokens
    y[b, :, h]  = C[b, :, g] @ state[b, h] + D[h] x[b, :, h]

Forward, two kernels (the state needs the whole sequence before any token can read it):

* ``_state_kernel``: one program per (image, head, d_state block, headdim block, L split); it walks its share of
  the tokens in ``BLOCK_L`` blocks and accumulates ``tl.dot(B_blk^T, w x_blk)`` in fp32 registers. When
  batch * heads programs are too few to fill the GPU the tokens are split across programs that write fp32
  partial states, summed on the host (deterministic, unlike atomics).
* ``_output_kernel``: one program per (image, head, L block, headdim block): ``tl.dot(C_blk, state)`` plus the
  D skip, written once in x's dtype.

Backward, two kernels:

* ``dstate = C^T dy`` is the forward's state reduction with (C, dy) in place of (B, w x): the same kernel.
* ``_bwd_kernel``: one program per (image, group, L block) holds B's block, loops over the group's heads and
  headdim blocks and computes ``d(wx) = B dstate``, ``dx = w d(wx) + D dy``, ``dw = sum_p x d(wx)``
  (-> ``ddt = dw A``, partial sums of ``dA = sum dw dt`` and ``dD = sum dy x``), and accumulates over the heads
  of the group ``dC = dy state^T`` and ``dB = (w x) dstate^T``, so dB/dC are written once, in their own dtype.

Versus ``matmul.py`` (cuBLAS bmm + separate elementwise passes + permute copies + fp32 up-casts of 16-bit inputs),
every input is read in its own dtype and strides (VSSD hands in channel-first views whose token axis has unit
stride; no copy is made), the dt * A weighting and the D skip are fused into the contractions, and only the small
fp32 states (batch, nheads, d_state, headdim) go through memory between kernels.

Precision. Accumulation is fp32 always. The ``tl.dot`` operands:

* bf16/fp16 inputs (x, B, C of one 16-bit dtype): the operands are in that dtype, as mamba_ssm's SSD kernels do
  (``ssd_chunk_scan.py`` casts its fp32 intermediates, e.g. ``prev_states.to(C_ptr.dtype.element_ty)``, before
  ``tl.dot``). The raw inputs are exact; the fp32 intermediates w*x, state, dstate are rounded to the input dtype
  (relative 2^-8 for bf16), the same order as the rounding of the bf16 output itself.
* otherwise fp32 operands, with ``input_precision='tf32x3'`` (three TF32 tensor-core products, error ~fp32; the
  plain fp32 path of cuBLAS that ``matmul.py`` uses is exact fp32 since PyTorch's default is
  ``torch.backends.cuda.matmul.allow_tf32 = False``), or ``'tf32'`` when the user set that flag (the same
  accuracy trade as cuBLAS then). ``VMAMBA_ZOO_NC_SSD_FP32_PRECISION`` (``ieee``/``tf32x3``/``tf32``) overrides.

Launch sizes come from ``_config`` (defaults set for VSSD's shapes, not yet tuned on a GPU);
``VMAMBA_ZOO_NC_SSD_BLOCKS="state_L,out_L,bwd_L,warps"`` overrides them (``tools/bench_gpu_nc_ssd.py --sweep``).

float64 is not accepted (``TypeError``): gradcheck runs on ``naive``/``matmul``. Any headdim and L are handled
with masks (tiles are padded to powers of two >= 16, ``tl.dot``'s minimum); d_state is at most 256 (the backward
holds a (BLOCK_L, d_state) block of dB and dC in registers).

Correctness is checked against ``naive.py`` by ``tests/ops/test_nc_ssd_triton.py``: on CUDA (``-m gpu``) and, on
CPU, under Triton's interpreter (``TRITON_INTERPRET=1``) at small sizes.
"""
import functools
import os
from typing import NamedTuple

import torch
import triton
import triton.language as tl

from .common import check_inputs

__all__ = ['nc_ssd_triton', 'triton_accepts', 'MAX_D_STATE', 'ENV_BLOCKS', 'ENV_FP32_PRECISION']

MAX_D_STATE = 256
ENV_BLOCKS = 'VMAMBA_ZOO_NC_SSD_BLOCKS'  # "state_L,out_L,bwd_L,warps": launch override for tuning (bench)
ENV_FP32_PRECISION = 'VMAMBA_ZOO_NC_SSD_FP32_PRECISION'
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_TL_DTYPES = {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16}


@triton.jit
def _state_kernel(
    k_ptr, v_ptr, dt_ptr, A_ptr, out_ptr,
    L, H, G, P, N, l_per_split,
    s_kb, s_kl, s_kg, s_kn,
    s_vb, s_vl, s_vh, s_vp,
    s_db, s_dl, s_dh,
    s_os, s_ob, s_oh, s_on, s_op,
    WEIGHTED: tl.constexpr, BLOCK_L: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_P: tl.constexpr,
    DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr,
):
    """out[split, b, h] (N, P) = sum over the split's tokens l of k[b, l, g]^T (v[b, l, h] * (dt[b, l, h] A[h] if
    WEIGHTED)). Forward: (k, v) = (B, x), WEIGHTED; backward: (C, dy) -> dstate."""
    pid_bh = tl.program_id(0)
    pid_np = tl.program_id(1)
    pid_s = tl.program_id(2)
    b = (pid_bh // H).to(tl.int64)
    h = pid_bh % H
    g = h % G
    n_pblocks = tl.cdiv(P, BLOCK_P)
    offs_n = (pid_np // n_pblocks) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_p = (pid_np % n_pblocks) * BLOCK_P + tl.arange(0, BLOCK_P)
    mask_n = offs_n < N
    mask_p = offs_p < P
    k_base = k_ptr + b * s_kb + g * s_kg + offs_n[:, None] * s_kn
    v_base = v_ptr + b * s_vb + h * s_vh + offs_p[None, :] * s_vp
    if WEIGHTED:
        a = tl.load(A_ptr + h).to(tl.float32)
    l_start = pid_s * l_per_split
    l_end = tl.minimum(l_start + l_per_split, L)
    acc = tl.zeros((BLOCK_N, BLOCK_P), dtype=tl.float32)
    for l0 in range(l_start, l_end, BLOCK_L):
        offs_l = l0 + tl.arange(0, BLOCK_L)
        mask_l = offs_l < l_end
        kt = tl.load(k_base + offs_l[None, :] * s_kl, mask=mask_n[:, None] & mask_l[None, :], other=0.0)
        v = tl.load(v_base + offs_l[:, None] * s_vl, mask=mask_l[:, None] & mask_p[None, :], other=0.0)
        if WEIGHTED:
            dt = tl.load(dt_ptr + b * s_db + offs_l * s_dl + h * s_dh, mask=mask_l, other=0.0).to(tl.float32)
            v = v.to(tl.float32) * (dt * a)[:, None]
        acc = tl.dot(kt.to(DOT_DTYPE), v.to(DOT_DTYPE), acc, input_precision=PRECISION)
    out = out_ptr + pid_s.to(tl.int64) * s_os + b * s_ob + h * s_oh + offs_n[:, None] * s_on + offs_p[None, :] * s_op
    tl.store(out, acc, mask=mask_n[:, None] & mask_p[None, :])


@triton.jit
def _output_kernel(
    c_ptr, state_ptr, x_ptr, D_ptr, y_ptr,
    L, H, G, P, N,
    s_cb, s_cl, s_cg, s_cn,
    s_sb, s_sh, s_sn, s_sp,
    s_xb, s_xl, s_xh, s_xp,
    s_yb, s_yl, s_yh, s_yp,
    HAS_D: tl.constexpr, BLOCK_L: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_P: tl.constexpr,
    DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr,
):
    """y[b, l_blk, h, p_blk] = C[b, l_blk, g] @ state[b, h][:, p_blk] + D[h] x[b, l_blk, h, p_blk]."""
    pid_bh = tl.program_id(0)
    pid_l = tl.program_id(1)
    pid_p = tl.program_id(2)
    b = (pid_bh // H).to(tl.int64)
    h = pid_bh % H
    g = h % G
    offs_l = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)
    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    mask_l = offs_l < L
    mask_p = offs_p < P
    c_base = c_ptr + b * s_cb + g * s_cg + offs_l[:, None] * s_cl
    s_base = state_ptr + b * s_sb + h * s_sh + offs_p[None, :] * s_sp
    acc = tl.zeros((BLOCK_L, BLOCK_P), dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        mask_n = offs_n < N
        c = tl.load(c_base + offs_n[None, :] * s_cn, mask=mask_l[:, None] & mask_n[None, :], other=0.0)
        s = tl.load(s_base + offs_n[:, None] * s_sn, mask=mask_n[:, None] & mask_p[None, :], other=0.0)
        acc = tl.dot(c.to(DOT_DTYPE), s.to(DOT_DTYPE), acc, input_precision=PRECISION)
    mask = mask_l[:, None] & mask_p[None, :]
    if HAS_D:
        x = tl.load(x_ptr + b * s_xb + h * s_xh + offs_l[:, None] * s_xl + offs_p[None, :] * s_xp, mask=mask,
                    other=0.0)
        acc += tl.load(D_ptr + h).to(tl.float32) * x.to(tl.float32)
    y = y_ptr + b * s_yb + h * s_yh + offs_l[:, None] * s_yl + offs_p[None, :] * s_yp
    tl.store(y, acc.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _bwd_kernel(
    x_ptr, dt_ptr, A_ptr, B_ptr, D_ptr, dy_ptr, state_ptr, dstate_ptr,
    dx_ptr, ddt_ptr, dB_ptr, dC_ptr, dA_part_ptr, dD_part_ptr,
    L, H, G, P, N, n_lblocks,
    s_xb, s_xl, s_xh, s_xp,
    s_db, s_dl, s_dh,
    s_Bb, s_Bl, s_Bg, s_Bn,
    s_gb, s_gl, s_gh, s_gp,
    s_sb, s_sh, s_sn, s_sp,
    s_dxb, s_dxl, s_dxh, s_dxp,
    s_ddb, s_ddl, s_ddh,
    s_bcb, s_bcl, s_bcg, s_bcn,
    HAS_D: tl.constexpr, BLOCK_L: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_P: tl.constexpr,
    DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr,
):
    """One (image b, group g, block of BLOCK_L tokens): dx, ddt of the group's heads; dB, dC of the group (summed
    over its heads here, so written once); per-block partial sums of dA and dD (summed on the host).
    state / dstate (b, h, N, P) fp32 share strides; dB / dC are contiguous (b, L, G, N) and share strides."""
    pid_bg = tl.program_id(0)
    pid_l = tl.program_id(1)
    b = (pid_bg // G).to(tl.int64)
    g = pid_bg % G
    offs_l = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)
    offs_n = tl.arange(0, BLOCK_N)
    mask_l = offs_l < L
    mask_n = offs_n < N
    mask_ln = mask_l[:, None] & mask_n[None, :]
    Bblk = tl.load(B_ptr + b * s_Bb + g * s_Bg + offs_l[:, None] * s_Bl + offs_n[None, :] * s_Bn, mask=mask_ln,
                   other=0.0).to(DOT_DTYPE)
    dB_acc = tl.zeros((BLOCK_L, BLOCK_N), dtype=tl.float32)
    dC_acc = tl.zeros((BLOCK_L, BLOCK_N), dtype=tl.float32)
    for i in range(0, H // G):
        h = i * G + g  # head h reads group h % G
        a = tl.load(A_ptr + h).to(tl.float32)
        dt = tl.load(dt_ptr + b * s_db + offs_l * s_dl + h * s_dh, mask=mask_l, other=0.0).to(tl.float32)
        w = dt * a
        if HAS_D:
            d_skip = tl.load(D_ptr + h).to(tl.float32)
        dw = tl.zeros((BLOCK_L,), dtype=tl.float32)
        dd = tl.zeros((BLOCK_L,), dtype=tl.float32)
        for p0 in range(0, P, BLOCK_P):
            offs_p = p0 + tl.arange(0, BLOCK_P)
            mask_p = offs_p < P
            mask_lp = mask_l[:, None] & mask_p[None, :]
            mask_np = mask_n[:, None] & mask_p[None, :]
            x = tl.load(x_ptr + b * s_xb + h * s_xh + offs_l[:, None] * s_xl + offs_p[None, :] * s_xp, mask=mask_lp,
                        other=0.0).to(tl.float32)
            dy = tl.load(dy_ptr + b * s_gb + h * s_gh + offs_l[:, None] * s_gl + offs_p[None, :] * s_gp,
                         mask=mask_lp, other=0.0)
            s_off = b * s_sb + h * s_sh + offs_n[:, None] * s_sn + offs_p[None, :] * s_sp
            state = tl.load(state_ptr + s_off, mask=mask_np, other=0.0)
            dstate = tl.load(dstate_ptr + s_off, mask=mask_np, other=0.0).to(DOT_DTYPE)
            dwx = tl.dot(Bblk, dstate, input_precision=PRECISION)  # (BLOCK_L, BLOCK_P): d(w x)
            dx = dwx * w[:, None]
            dyf = dy.to(tl.float32)
            if HAS_D:
                dx += d_skip * dyf
                dd += tl.sum(dyf * x, axis=1)
            dx_out = dx_ptr + b * s_dxb + h * s_dxh + offs_l[:, None] * s_dxl + offs_p[None, :] * s_dxp
            tl.store(dx_out, dx.to(dx_ptr.dtype.element_ty), mask=mask_lp)
            dw += tl.sum(x * dwx, axis=1)
            dC_acc = tl.dot(dy.to(DOT_DTYPE), tl.trans(state.to(DOT_DTYPE)), dC_acc, input_precision=PRECISION)
            wx = (x * w[:, None]).to(DOT_DTYPE)
            dB_acc = tl.dot(wx, tl.trans(dstate), dB_acc, input_precision=PRECISION)
        tl.store(ddt_ptr + b * s_ddb + offs_l * s_ddl + h * s_ddh, (dw * a).to(ddt_ptr.dtype.element_ty), mask=mask_l)
        part = (b * n_lblocks + pid_l) * H + h  # (batch, n_lblocks, H) fp32 partial sums
        tl.store(dA_part_ptr + part, tl.sum(dw * dt, axis=0))
        if HAS_D:
            tl.store(dD_part_ptr + part, tl.sum(dd, axis=0))
    bc_off = b * s_bcb + g * s_bcg + offs_l[:, None] * s_bcl + offs_n[None, :] * s_bcn
    tl.store(dB_ptr + bc_off, dB_acc.to(dB_ptr.dtype.element_ty), mask=mask_ln)
    tl.store(dC_ptr + bc_off, dC_acc.to(dC_ptr.dtype.element_ty), mask=mask_ln)


class _Config(NamedTuple):
    state_l: int  # tokens per step of the state reductions (forward state, backward dstate)
    out_l: int  # tokens per output program
    bwd_l: int  # tokens per backward program
    warps: int
    block_n: int  # d_state tile of the state reductions and the output kernel
    block_p: int  # headdim tile
    bwd_block_n: int  # the whole d_state (dB/dC blocks stay in registers)
    bwd_block_p: int  # headdim tile of the backward (narrower for large d_state: (d_state, tile) state tiles)
    dot_dtype: object  # tl dtype of the tl.dot operands
    precision: str


def _tile(size: int, cap: int) -> int:
    # tl.dot needs every dimension >= 16
    return max(16, min(cap, triton.next_power_of_2(size)))


def _config(shapes, x, B, C) -> _Config:
    low = x.dtype in (torch.float16, torch.bfloat16) and x.dtype == B.dtype == C.dtype
    dot_dtype = _TL_DTYPES[x.dtype] if low else tl.float32
    precision = os.environ.get(ENV_FP32_PRECISION) or (
        'tf32' if torch.backends.cuda.matmul.allow_tf32 else 'tf32x3')
    if precision not in ('ieee', 'tf32', 'tf32x3'):
        raise ValueError(f'{ENV_FP32_PRECISION} must be ieee, tf32 or tf32x3; got {precision!r}')
    if low:
        precision = 'tf32'  # ignored for 16-bit operands; Triton's default, the setting every 16-bit dot compiles with
    if os.environ.get('TRITON_INTERPRET') == '1':
        precision = 'ieee'  # the interpreter multiplies with numpy whatever the setting
        if dot_dtype == tl.bfloat16:
            # Triton 3.8's interpreter multiplies bf16 tl.dot operands wrongly (errors ~1e10 on a 16x16 bf16
            # product, checked by hand); fp16 is right, so the CPU test exercises the 16-bit cast path in fp16
            dot_dtype = tl.float32
    block_n, block_p = _tile(shapes.d_state, 64), _tile(shapes.headdim, 64)
    bwd_block_n = _tile(shapes.d_state, MAX_D_STATE)
    # Defaults picked for VSSD's shapes (d_state 48/64, headdim 48/64) without GPU tuning: 64-token steps for the
    # reductions and outputs; 32-token backward blocks, whose program keeps B, dB, dC (32, 64) and state, dstate
    # (64, 64) tiles live (fewer rows for larger d_state). tools/bench_gpu_nc_ssd.py --sweep measures others.
    bwd_l = 32 if bwd_block_n <= 64 else 16
    bwd_block_p = block_p if bwd_block_n <= 64 else min(block_p, 32)
    warps = 4 if bwd_block_n <= 64 else 8
    state_l, out_l = 64, 64
    override = os.environ.get(ENV_BLOCKS)
    if override:
        state_l, out_l, bwd_l, warps = (int(v) for v in override.split(','))
        if any(v < 16 or v & (v - 1) for v in (state_l, out_l, bwd_l)) or warps not in (1, 2, 4, 8, 16):
            raise ValueError(f'{ENV_BLOCKS}="state_L,out_L,bwd_L,warps": token blocks powers of two >= 16 '
                             f'(tl.dot), warps a power of two <= 16; got {override!r}')
    return _Config(state_l, out_l, bwd_l, warps, block_n, block_p, bwd_block_n, bwd_block_p, dot_dtype, precision)


@functools.lru_cache(maxsize=None)
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def _target_programs(device) -> int:
    # enough programs for ~4 per SM (the state kernel's programs are small; one per SM leaves HBM idle)
    if device.type == 'cuda':
        return 4 * _sm_count(device.index if device.index is not None else torch.cuda.current_device())
    return 4


def _reduce_states(k, v, dt, A32, shapes, cfg, weighted):
    """fp32 (batch, nheads, d_state, headdim) = sum over L of k^T (v * w if weighted): the forward state (k=B,
    v=x) or the backward's dstate (k=C, v=dy)."""
    batch, length, nheads, headdim, ngroups, d_state = shapes
    n_tiles = triton.cdiv(d_state, cfg.block_n) * triton.cdiv(headdim, cfg.block_p)
    base = batch * nheads * n_tiles
    n_lblocks = max(1, triton.cdiv(length, cfg.state_l))
    # split L only when batch * heads programs are too few; at least 4 steps per split so the fp32 partial
    # (d_state * headdim * 4 bytes per program) stays small next to the inputs the program reads
    splits = max(1, min(triton.cdiv(_target_programs(k.device), base), n_lblocks // 4))
    l_per_split = triton.cdiv(n_lblocks, splits) * cfg.state_l
    splits = max(1, triton.cdiv(length, l_per_split))
    out = torch.empty((splits, batch, nheads, d_state, headdim), device=k.device, dtype=torch.float32)
    dummy = out if not weighted else None
    _state_kernel[(batch * nheads, n_tiles, splits)](
        k, v, dt if weighted else dummy, A32 if weighted else dummy, out,
        length, nheads, ngroups, headdim, d_state, l_per_split,
        *k.stride(), *v.stride(), *(dt.stride() if weighted else (0, 0, 0)), *out.stride(),
        WEIGHTED=weighted, BLOCK_L=cfg.state_l, BLOCK_N=cfg.block_n, BLOCK_P=cfg.block_p,
        DOT_DTYPE=cfg.dot_dtype, PRECISION=cfg.precision, num_warps=cfg.warps,
    )
    return out[0] if splits == 1 else out.sum(0)


def _check_dtypes(*tensors):
    for t in tensors:
        if t is not None and t.dtype not in _DTYPES:
            raise TypeError(f'nc_ssd_triton: inputs must be float32, float16 or bfloat16, got {t.dtype} '
                            "(float64: use backend='matmul' or 'naive')")


class _NCSSDTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, dt, A, B, C, D):
        shapes = check_inputs(x, dt, A, B, C, D)
        _check_dtypes(x, dt, A, B, C, D)
        if shapes.d_state > MAX_D_STATE:
            raise ValueError(f'nc_ssd_triton: d_state={shapes.d_state} > {MAX_D_STATE} is not supported')
        batch, length, nheads, headdim, ngroups, d_state = shapes
        cfg = _config(shapes, x, B, C)
        A32 = A.detach().float().contiguous()
        state = _reduce_states(B, x, dt, A32, shapes, cfg, weighted=True)
        y = torch.empty((batch, length, nheads, headdim), device=x.device, dtype=x.dtype)
        D32 = None if D is None else D.detach().float().contiguous()
        grid = (batch * nheads, triton.cdiv(length, cfg.out_l), triton.cdiv(headdim, cfg.block_p))
        _output_kernel[grid](
            C, state, x, D32 if D32 is not None else A32, y,
            length, nheads, ngroups, headdim, d_state,
            *C.stride(), *state.stride(), *x.stride(), *y.stride(),
            HAS_D=D is not None, BLOCK_L=cfg.out_l, BLOCK_N=cfg.block_n, BLOCK_P=cfg.block_p,
            DOT_DTYPE=cfg.dot_dtype, PRECISION=cfg.precision, num_warps=cfg.warps,
        )
        ctx.save_for_backward(x, dt, A, B, C, D, state)
        ctx.shapes, ctx.cfg = shapes, cfg
        return y

    @staticmethod
    def backward(ctx, dy):
        x, dt, A, B, C, D, state = ctx.saved_tensors
        shapes, cfg = ctx.shapes, ctx.cfg
        batch, length, nheads, headdim, ngroups, d_state = shapes
        A32 = A.float().contiguous()
        # both (batch, nheads, d_state, headdim) contiguous fp32 (_reduce_states), read with one set of strides
        dstate = _reduce_states(C, dy, None, None, shapes, cfg, weighted=False)
        dx = torch.empty((batch, length, nheads, headdim), device=x.device, dtype=x.dtype)
        ddt = torch.empty((batch, length, nheads), device=x.device, dtype=dt.dtype)
        dB = torch.empty((batch, length, ngroups, d_state), device=x.device, dtype=B.dtype)
        dC = torch.empty((batch, length, ngroups, d_state), device=x.device, dtype=C.dtype)
        n_lblocks = triton.cdiv(length, cfg.bwd_l)
        dA_part = torch.empty((batch, n_lblocks, nheads), device=x.device, dtype=torch.float32)
        dD_part = torch.empty_like(dA_part) if D is not None else None
        D32 = None if D is None else D.float().contiguous()
        _bwd_kernel[(batch * ngroups, n_lblocks)](
            x, dt, A32, B, D32 if D32 is not None else A32, dy, state, dstate,
            dx, ddt, dB, dC, dA_part, dD_part if dD_part is not None else dA_part,
            length, nheads, ngroups, headdim, d_state, n_lblocks,
            *x.stride(), *dt.stride(), *B.stride(), *dy.stride(), *state.stride(), *dx.stride(),
            *ddt.stride(), *dB.stride(),
            HAS_D=D is not None, BLOCK_L=cfg.bwd_l, BLOCK_N=cfg.bwd_block_n, BLOCK_P=cfg.bwd_block_p,
            DOT_DTYPE=cfg.dot_dtype, PRECISION=cfg.precision, num_warps=cfg.warps,
        )
        dA = dA_part.sum((0, 1)).to(A.dtype)
        dD = None if D is None else dD_part.sum((0, 1)).to(D.dtype)
        return dx, ddt, dA, dB, dC, dD


def nc_ssd_triton(x, dt, A, B, C, D=None):
    """x: (batch, L, nheads, headdim); dt: (batch, L, nheads); A, D: (nheads,); B, C: (batch, L, ngroups, N).

    Returns y (batch, L, nheads, headdim) in x's dtype; differentiable in every input (each gradient in its
    input's dtype). CUDA tensors (or CPU tensors under ``TRITON_INTERPRET=1``); fp32/fp16/bf16; N <= 256.
    """
    return _NCSSDTriton.apply(x, dt, A, B, C, D)


def triton_accepts(x, dt, A, B, C) -> bool:
    return (x.is_cuda and B.shape[-1] <= MAX_D_STATE
            and all(t.dtype in _DTYPES for t in (x, dt, A, B, C)))
