"""Selective scan in Triton: forward and backward kernels for CUDA tensors (same contract as ``naive.py``).

Layout of the work: one program per (batch, block of ``BLOCK_D`` channels); it walks the sequence in chunks of
``BLOCK_L`` steps. Inside a chunk the recurrence ``h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t`` is an associative
scan over (decay, input) pairs on a (BLOCK_D, N, BLOCK_L) register tile, so no step is sequential except the
carry between chunks. State and accumulation are fp32 whatever the input dtype.

The forward saves the state at the start of every chunk (batch, K*D, n_chunks, N) so the backward can recompute
each chunk on its own while walking the chunks in reverse:

* ``e_t = h_{t-1}`` (state before step t) comes from a scan over the inputs shifted by one step, started from
  the saved chunk state, so no register tile ever needs shifting and no division by a decay is needed;
* the adjoint ``g_t = C_t dy_t + exp(dt_{t+1} A) g_{t+1}`` is a reverse scan over inputs shifted the other way,
  carried from the next chunk;
* then ``d dt_t = sum_n g (e exp(dt A) A + B u)``, ``du = sum_n g dt B + D dy``, ``dA = sum_t g e exp(dt A) dt``,
  ``dB = sum_d g dt u``, ``dC = sum_d dy h``; channel- and batch-reductions (dA, dD, delta_bias, and dB/dC over
  the channels of a group) go through fp32 atomics.

Correctness is checked against ``naive.py`` by ``tests/ops/test_selective_scan_gpu.py`` (GPU) and, on CPU,
under Triton's interpreter (``TRITON_INTERPRET=1``) by the same tests.
"""
import os

import torch
import triton
import triton.language as tl

from .common import check_inputs

__all__ = ['selective_scan_triton', 'triton_accepts']

_MAX_D_STATE = 256


@triton.jit
def _combine(a1, b1, a2, b2):
    # (a1, b1) then (a2, b2): h -> a2 * (a1 * h + b1) + b2
    return a1 * a2, a2 * b1 + b2


@triton.jit
def _rows(batch_offset, offs_d, stride_d, ALIGNED: tl.constexpr):
    """Row start offsets; ALIGNED tells the compiler they are multiples of 4 elements (16-byte vector loads)
    when L is not a multiple of 16 (e.g. 196 or 49 at 224x224), which it cannot infer from the strides."""
    rows = batch_offset + offs_d * stride_d
    if ALIGNED:
        rows = tl.multiple_of(rows, 4)
    return rows


@triton.jit
def _dt_of(delta, bias, SOFTPLUS: tl.constexpr):
    dt = delta + bias
    if SOFTPLUS:
        dt = tl.where(dt > 20.0, dt, tl.log(1.0 + tl.exp(dt)))
    return dt


@triton.jit
def _fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, out_ptr, chunk_state_ptr, last_state_ptr,
    L, KD, per_group, N, n_chunks,
    s_ub, s_ud, s_ul, s_db, s_dd, s_dl, s_bb, s_bg, s_bn, s_bl, s_cb, s_cg, s_cn, s_cl,
    s_zb, s_zd, s_zl, s_ob, s_od, s_ol,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr, ALIGNED: tl.constexpr,
):
    pid_b = tl.program_id(0)
    pid_d = tl.program_id(1)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    offs_l = tl.arange(0, BLOCK_L)
    mask_d = offs_d < KD
    mask_n = offs_n < N
    group = offs_d // per_group

    A = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_d[:, None] & mask_n[None, :], other=0.0)
    bias = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    Dv = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)

    h = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    state_rows = (pid_b * KD + offs_d) * n_chunks
    u_row = u_ptr + _rows(pid_b * s_ub, offs_d, s_ud, ALIGNED)[:, None]
    d_row = delta_ptr + _rows(pid_b * s_db, offs_d, s_dd, ALIGNED)[:, None]
    z_row = z_ptr + _rows(pid_b * s_zb, offs_d, s_zd, ALIGNED)[:, None]
    o_row = out_ptr + _rows(pid_b * s_ob, offs_d, s_od, ALIGNED)[:, None]
    for chunk in range(0, n_chunks):
        # the state entering this chunk, for the backward's recomputation
        tl.store(chunk_state_ptr + (state_rows + chunk)[:, None] * N + offs_n[None, :], h,
                 mask=mask_d[:, None] & mask_n[None, :])
        l_idx = chunk * BLOCK_L + offs_l
        mask_l = l_idx < L
        m2 = mask_d[:, None] & mask_l[None, :]
        u = tl.load(u_row + l_idx[None, :] * s_ul, mask=m2, other=0.0).to(tl.float32)
        delta = tl.load(d_row + l_idx[None, :] * s_dl, mask=m2, other=0.0).to(tl.float32)
        dt = _dt_of(delta, bias[:, None], SOFTPLUS)
        m3 = mask_d[:, None, None] & mask_n[None, :, None] & mask_l[None, None, :]
        bc_off = group[:, None, None] * s_bg + offs_n[None, :, None] * s_bn + l_idx[None, None, :] * s_bl
        Bt = tl.load(B_ptr + pid_b * s_bb + bc_off, mask=m3, other=0.0).to(tl.float32)
        cc_off = group[:, None, None] * s_cg + offs_n[None, :, None] * s_cn + l_idx[None, None, :] * s_cl
        Ct = tl.load(C_ptr + pid_b * s_cb + cc_off, mask=m3, other=0.0).to(tl.float32)
        # padded steps: decay 1, input 0, so the chunk's last column carries the last real state
        dA = tl.where(m3, tl.exp(dt[:, None, :] * A[:, :, None]), 1.0)
        dBu = (dt * u)[:, None, :] * Bt
        cum_a, hs = tl.associative_scan((dA, dBu), axis=2, combine_fn=_combine)
        # h == 0 (first chunk) must not meet an overflowed decay product: inf * 0 would be nan
        states = hs + tl.where(h[:, :, None] != 0.0, cum_a * h[:, :, None], 0.0)
        y = tl.sum(states * Ct, axis=1)
        if HAS_D:
            y += Dv[:, None] * u
        if HAS_Z:
            z = tl.load(z_row + l_idx[None, :] * s_zl, mask=m2, other=0.0).to(tl.float32)
            y = y * (z / (1.0 + tl.exp(-z)))
        tl.store(o_row + l_idx[None, :] * s_ol, y.to(out_ptr.dtype.element_ty), mask=m2)
        h = tl.sum(tl.where(offs_l[None, None, :] == BLOCK_L - 1, states, 0.0), axis=2)
    tl.store(last_state_ptr + (pid_b * KD + offs_d)[:, None] * N + offs_n[None, :], h,
             mask=mask_d[:, None] & mask_n[None, :])


@triton.jit
def _bwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, dout_ptr, chunk_state_ptr,
    du_ptr, ddelta_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dz_ptr, dbias_ptr,
    L, KD, per_group, N, n_chunks, n_groups, n_dblocks,
    s_ub, s_ud, s_ul, s_db, s_dd, s_dl, s_bb, s_bg, s_bn, s_bl, s_cb, s_cg, s_cn, s_cl,
    s_zb, s_zd, s_zl, s_gb, s_gd, s_gl,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr, ONE_GROUP: tl.constexpr,
    ALIGNED: tl.constexpr,
):
    pid_b = tl.program_id(0)
    pid_d = tl.program_id(1)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    offs_l = tl.arange(0, BLOCK_L)
    mask_d = offs_d < KD
    mask_n = offs_n < N
    mask_dn = mask_d[:, None] & mask_n[None, :]
    group = offs_d // per_group

    A = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_dn, other=0.0)
    bias = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    Dv = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)

    g_next = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)  # adjoint at the first step of the next chunk
    dA_acc = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    dD_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    dbias_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    state_rows = (pid_b * KD + offs_d) * n_chunks
    u_offsets = _rows(pid_b * s_ub, offs_d, s_ud, ALIGNED)[:, None]  # du shares u's strides, ddelta delta's
    d_offsets = _rows(pid_b * s_db, offs_d, s_dd, ALIGNED)[:, None]
    z_offsets = _rows(pid_b * s_zb, offs_d, s_zd, ALIGNED)[:, None]
    u_row, du_row = u_ptr + u_offsets, du_ptr + u_offsets
    d_row, dd_row = delta_ptr + d_offsets, ddelta_ptr + d_offsets
    z_row, dz_row = z_ptr + z_offsets, dz_ptr + z_offsets
    g_row = dout_ptr + _rows(pid_b * s_gb, offs_d, s_gd, ALIGNED)[:, None]
    b_row = B_ptr + pid_b * s_bb + group[:, None, None] * s_bg + offs_n[None, :, None] * s_bn
    c_row = C_ptr + pid_b * s_cb + group[:, None, None] * s_cg + offs_n[None, :, None] * s_cn
    for rev in range(0, n_chunks):
        chunk = n_chunks - 1 - rev
        l_idx = chunk * BLOCK_L + offs_l
        mask_l = l_idx < L
        m2 = mask_d[:, None] & mask_l[None, :]
        m3 = mask_d[:, None, None] & mask_n[None, :, None] & mask_l[None, None, :]

        u = tl.load(u_row + l_idx[None, :] * s_ul, mask=m2, other=0.0).to(tl.float32)
        delta = tl.load(d_row + l_idx[None, :] * s_dl, mask=m2, other=0.0).to(tl.float32)
        dt = _dt_of(delta, bias[:, None], SOFTPLUS)
        Bt = tl.load(b_row + l_idx[None, None, :] * s_bl, mask=m3, other=0.0).to(tl.float32)
        Ct = tl.load(c_row + l_idx[None, None, :] * s_cl, mask=m3, other=0.0).to(tl.float32)
        dA = tl.where(m3, tl.exp(dt[:, None, :] * A[:, :, None]), 1.0)
        dBu = (dt * u)[:, None, :] * Bt

        # e_t = h_{t-1}: scan of the step-(t-1) pairs; slot 0 holds (0, chunk start state)
        h0 = tl.load(chunk_state_ptr + (state_rows + chunk)[:, None] * N + offs_n[None, :], mask=mask_dn,
                     other=0.0)
        lp = l_idx - 1
        mp2 = mask_d[:, None] & (mask_l & (offs_l > 0))[None, :]
        mp3 = mask_d[:, None, None] & mask_n[None, :, None] & (mask_l & (offs_l > 0))[None, None, :]
        u_p = tl.load(u_row + lp[None, :] * s_ul, mask=mp2, other=0.0).to(tl.float32)
        dt_p = _dt_of(tl.load(d_row + lp[None, :] * s_dl, mask=mp2, other=0.0).to(tl.float32), bias[:, None],
                      SOFTPLUS)
        B_p = tl.load(b_row + lp[None, None, :] * s_bl, mask=mp3, other=0.0).to(tl.float32)
        first = offs_l[None, None, :] == 0
        a_p = tl.where(first, 0.0, tl.where(mp3, tl.exp(dt_p[:, None, :] * A[:, :, None]), 1.0))
        b_p = tl.where(first, h0[:, :, None], (dt_p * u_p)[:, None, :] * B_p)
        _, e = tl.associative_scan((a_p, b_p), axis=2, combine_fn=_combine)
        states = dA * e + dBu

        dout = tl.load(g_row + l_idx[None, :] * s_gl, mask=m2, other=0.0).to(tl.float32)
        y = tl.sum(states * Ct, axis=1)
        if HAS_D:
            y += Dv[:, None] * u
        if HAS_Z:
            z = tl.load(z_row + l_idx[None, :] * s_zl, mask=m2, other=0.0).to(tl.float32)
            sig = 1.0 / (1.0 + tl.exp(-z))
            dz = dout * y * sig * (1.0 + z * (1.0 - sig))
            tl.store(dz_row + l_idx[None, :] * s_zl, dz.to(dz_ptr.dtype.element_ty), mask=m2)
            dy = dout * z * sig
        else:
            dy = dout

        # adjoint: g_t = C_t dy_t + a_{t+1} g_{t+1}; pairs (a_{t+1}, C_t dy_t) scanned in reverse
        ln = l_idx + 1
        mn2 = mask_d[:, None] & (ln < L)[None, :]
        mn3 = mask_d[:, None, None] & mask_n[None, :, None] & (ln < L)[None, None, :]
        dt_n = _dt_of(tl.load(d_row + ln[None, :] * s_dl, mask=mn2, other=0.0).to(tl.float32), bias[:, None],
                      SOFTPLUS)
        a_n = tl.where(mn3, tl.exp(dt_n[:, None, :] * A[:, :, None]), 0.0)
        c_dy = Ct * dy[:, None, :]
        # with reverse=True Triton combines (accumulated suffix, current element), so the forward combine
        # composes them right: g_t = a_{t+1} * suffix + C_t dy_t
        a_suffix, g_part = tl.associative_scan((a_n, c_dy), axis=2, combine_fn=_combine, reverse=True)
        g = g_part + tl.where(g_next[:, :, None] != 0.0, a_suffix * g_next[:, :, None], 0.0)
        g = tl.where(m3, g, 0.0)

        ge = g * e * dA
        ddt = tl.sum(ge * A[:, :, None] + g * Bt * u[:, None, :], axis=1)
        du = tl.sum(g * Bt, axis=1) * dt
        if HAS_D:
            du += Dv[:, None] * dy
            dD_acc += tl.sum(tl.where(m2, dy * u, 0.0), axis=1)
        dA_acc += tl.sum(ge * dt[:, None, :], axis=2)
        if SOFTPLUS:
            pre = delta + bias[:, None]
            ddelta = tl.where(pre > 20.0, ddt, ddt / (1.0 + tl.exp(-pre)))
        else:
            ddelta = ddt
        ddelta = tl.where(m2, ddelta, 0.0)
        dbias_acc += tl.sum(ddelta, axis=1)
        tl.store(du_row + l_idx[None, :] * s_ul, du.to(du_ptr.dtype.element_ty), mask=m2)
        tl.store(dd_row + l_idx[None, :] * s_dl, ddelta.to(ddelta_ptr.dtype.element_ty), mask=m2)
        # dB, dC sum over the channels of a group
        dB_c = g * (dt * u)[:, None, :]
        dC_c = states * dy[:, None, :]
        if ONE_GROUP:
            # every channel of the block shares one B/C group: reduce over the block and write this block's
            # partial sums to its own slot (batch, channel block, N, L); the host sums the slots of a group.
            # No atomics: with 12-24 blocks per group they serialised and dominated short sequences.
            part = (pid_b * n_dblocks + pid_d) * N * L + offs_n[:, None] * L + l_idx[None, :]
            m_nl = mask_n[:, None] & mask_l[None, :]
            tl.store(dB_ptr + part, tl.sum(dB_c, axis=0), mask=m_nl)
            tl.store(dC_ptr + part, tl.sum(dC_c, axis=0), mask=m_nl)
        else:
            bc_out = (pid_b * n_groups + group[:, None, None]) * N * L + offs_n[None, :, None] * L \
                + l_idx[None, None, :]
            tl.atomic_add(dB_ptr + bc_out, dB_c, mask=m3)
            tl.atomic_add(dC_ptr + bc_out, dC_c, mask=m3)
        g_next = tl.sum(tl.where(offs_l[None, None, :] == 0, g, 0.0), axis=2)

    # per-batch partial sums, reduced over the batch on the host (atomics from 128 batch programs per address
    # serialised)
    tl.store(dA_ptr + (pid_b * KD + offs_d)[:, None] * N + offs_n[None, :], dA_acc, mask=mask_dn)
    if HAS_D:
        tl.store(dD_ptr + pid_b * KD + offs_d, dD_acc, mask=mask_d)
    if HAS_BIAS:
        tl.store(dbias_ptr + pid_b * KD + offs_d, dbias_acc, mask=mask_d)


def _launch_config(d_state: int, length: int, per_group: int):
    """(BLOCK_N, BLOCK_L, forward (BLOCK_D, warps), backward (BLOCK_D, warps)); the backward holds ~10 tiles
    live, so its tiles are smaller. Tuned on an H100 with tools/bench_gpu.py; VMAMBA_ZOO_TRITON_BLOCKS=
    "BL,BDf,Wf,BDb,Wb" overrides it (for tuning)."""
    block_n = triton.next_power_of_2(max(d_state, 1))
    override = os.environ.get('VMAMBA_ZOO_TRITON_BLOCKS')
    if override:
        bl, bdf, wf, bdb, wb = (int(v) for v in override.split(','))
        return block_n, bl, (bdf, wf), (bdb, wb)
    # measured on an H100 at VMamba-T's stage shapes (batch 128, N=1; tools/bench_gpu.py sweep): 64-step chunks
    # for long sequences, 32 for short ones; ~2K-element forward tiles and ~1K-element backward tiles
    # (one chunk when L <= 64: the backward's per-chunk dependency chain, not bandwidth, bounds short sequences)
    block_l = max(16, triton.next_power_of_2(length)) if length <= 64 else (64 if length > 256 else 32)
    fwd_d = max(1, min(32, 2048 // (block_n * block_l)))
    bwd_d = max(1, min(32, 1024 // (block_n * block_l)))
    return block_n, block_l, (fwd_d, 4), (bwd_d, 4)


def triton_accepts(u, delta, A, B, C) -> bool:
    return u.is_cuda and A.shape[1] <= _MAX_D_STATE and u.dtype in (torch.float32, torch.float16, torch.bfloat16)


class _SelectiveScanTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        shapes = check_inputs(u, delta, A, B, C, D, z, delta_bias)
        batch, channels, length, d_state, groups, grouped = shapes
        if not grouped:
            B, C = B.unsqueeze(1), C.unsqueeze(1)
        A32 = A.float().contiguous()
        block_n, block_l, (block_d, warps), bwd_cfg = _launch_config(d_state, length, channels // groups)
        n_chunks = max(triton.cdiv(length, block_l), 1)
        out = torch.empty_like(u)
        chunk_states = u.new_empty((batch, channels, n_chunks, d_state), dtype=torch.float32)
        last_state = u.new_empty((batch, channels, d_state), dtype=torch.float32)
        zz = z if z is not None else u
        grid = (batch, triton.cdiv(channels, block_d))
        _fwd_kernel[grid](
            u, delta, A32, B, C, D if D is not None else A32, zz, delta_bias if delta_bias is not None else A32,
            out, chunk_states, last_state,
            length, channels, channels // groups, d_state, n_chunks,
            *u.stride(), *delta.stride(), *B.stride(), *C.stride(), *zz.stride(), *out.stride(),
            HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
            SOFTPLUS=bool(delta_softplus), BLOCK_D=block_d, BLOCK_N=block_n, BLOCK_L=block_l, num_warps=warps,
            ALIGNED=_aligned(u, delta, zz, out),
        )
        ctx.save_for_backward(u, delta, A32, B, C, D, z, delta_bias, chunk_states)
        ctx.meta = (shapes, bool(delta_softplus), A.dtype, (block_n, block_l, bwd_cfg), n_chunks)
        ctx.mark_non_differentiable(last_state)
        return out, last_state

    @staticmethod
    def backward(ctx, dout, _dlast_state):
        u, delta, A32, B, C, D, z, delta_bias, chunk_states = ctx.saved_tensors
        shapes, softplus, A_dtype, (block_n, block_l, (block_d, warps)), n_chunks = ctx.meta
        batch, channels, length, d_state, groups, grouped = shapes
        dout = dout.contiguous()
        du = torch.empty_like(u)
        ddelta = torch.empty_like(delta)
        dz = torch.empty_like(z) if z is not None else None
        dA = u.new_empty((batch, channels, d_state), dtype=torch.float32)
        n_dblocks = triton.cdiv(channels, block_d)
        one_group = (channels // groups) % block_d == 0
        bc_rows = n_dblocks if one_group else groups  # per-block partial sums, or atomically summed groups
        dB = torch.zeros((batch, bc_rows, d_state, length), device=u.device, dtype=torch.float32)
        dC = torch.zeros_like(dB)
        dD = u.new_empty((batch, channels), dtype=torch.float32) if D is not None else None
        dbias = u.new_empty((batch, channels), dtype=torch.float32) if delta_bias is not None else None
        zz = z if z is not None else u
        grid = (batch, triton.cdiv(channels, block_d))
        _bwd_kernel[grid](
            u, delta, A32, B, C, D if D is not None else A32, zz, delta_bias if delta_bias is not None else A32,
            dout, chunk_states,
            du, ddelta, dA, dB, dC, dD if dD is not None else dA, dz if dz is not None else du,
            dbias if dbias is not None else dA,
            length, channels, channels // groups, d_state, n_chunks, groups, n_dblocks,
            *u.stride(), *delta.stride(), *B.stride(), *C.stride(), *zz.stride(), *dout.stride(),
            HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
            SOFTPLUS=softplus, BLOCK_D=block_d, BLOCK_N=block_n, BLOCK_L=block_l,
            ONE_GROUP=one_group, num_warps=warps,
            ALIGNED=_aligned(u, delta, zz, dout),
        )
        if one_group:
            dB = dB.view(batch, groups, n_dblocks // groups, d_state, length).sum(2)
            dC = dC.view(batch, groups, n_dblocks // groups, d_state, length).sum(2)
        dB, dC = dB.to(B.dtype), dC.to(C.dtype)
        if not grouped:
            dB, dC = dB.squeeze(1), dC.squeeze(1)
        return (du, ddelta, dA.sum(0).to(A_dtype), dB, dC,
                None if dD is None else dD.sum(0).to(D.dtype), dz,
                None if dbias is None else dbias.sum(0).to(delta_bias.dtype), None)


def selective_scan_triton(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                          return_last_state=False):
    """Same contract and results as ``selective_scan_naive``, for CUDA tensors.

    Like mamba_ssm's kernels, the chunk-parallel scan multiplies decays over a chunk: a recurrence that grows
    (dt * A > 0, possible only without softplus or with A > 0, never in the zoo's models) can overflow to inf
    where the sequential reference still returns huge finite values.

    The returned last state is not differentiable (as in mamba_ssm's kernels); when it is asked for while
    autograd records, the call goes to the chunked PyTorch path instead, so a loss on the state is never
    silently cut off from the inputs.
    """
    tensors = (u, delta, A, B, C, D, z, delta_bias)
    if return_last_state and torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        from .chunked import selective_scan_chunked
        return selective_scan_chunked(*tensors, delta_softplus=delta_softplus, return_last_state=True)
    u, delta = _dense_last(u), _dense_last(delta)
    z = None if z is None else _like_strides(z, u)
    B, C = _dense_last(B), _dense_last(C)
    out, last_state = _SelectiveScanTriton.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    return (out, last_state) if return_last_state else out


def _aligned(*tensors) -> bool:
    return all(t.stride(0) % 4 == 0 and t.stride(1) % 4 == 0 and t.data_ptr() % 16 == 0 for t in tensors)


def _dense_last(t):
    """Unit stride along L keeps the kernels' loads coalesced."""
    return t if t.stride(-1) == 1 else t.contiguous()


def _like_strides(z, u):
    # dz is written with z's strides; keep them plain
    return z.contiguous() if z.stride() != u.stride() else z
