"""Selective scan in Triton: forward and backward kernels for CUDA tensors (same contract as ``naive.py``), and
the fused 2D-scan variant of the same kernels.

Layout of the work: one program per (batch, block of ``BLOCK_D`` channels); it walks the sequence in chunks of
``BLOCK_L`` steps (``_fwd_chunk`` / ``_bwd_chunk``; a short remainder runs as a tail chunk in a smaller tile, see
``_tail_length``). Inside a chunk the recurrence ``h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t`` is an associative
scan over (decay, input) pairs on a (BLOCK_D, N, BLOCK_L) register tile, so no step is sequential except the
carry between chunks. Per-(channel, step) values (u, delta, dt, dout, y, du, ...) are (BLOCK_D, 1, BLOCK_L)
tiles and reductions over N keep that axis, so they meet the state tiles without layout conversions (with their
tuned launch table, plain fwd+bwd 1.07-1.35x (fp32) / 1.12-1.28x (bf16) faster than the former 2D tiles at their
rule, VMamba-T's stages, H200 run 17). State and accumulation are fp32 whatever the input dtype.

The forward saves the state at the start of every chunk (batch, K*D, n_chunks, N) so the backward can recompute
each chunk on its own while walking the chunks in reverse:

* the decayed previous state ``exp(dt_t A) h_{t-1}`` comes either (``SHIFTED_SCAN``) from a scan over the
  inputs loaded again shifted by one step, started from the saved chunk state (so no register tile is shifted
  and no decay divided by), or from the forward's own scan of the chunk, as ``h_t - dt_t B_t u_t`` (the identity
  mamba_ssm's backward uses): fewer loads and exps, but a different schedule; which one is faster depends on
  the shape and dtype (measured on an H200, see ``_launch_config``);
* the adjoint ``g_t = C_t dy_t + exp(dt_{t+1} A) g_{t+1}`` is a reverse scan over inputs shifted by one step,
  carried from the next chunk;
* then, with ``x_t = exp(dt_t A) h_{t-1}``: ``d dt_t = sum_n g (x A + B u)``, ``du = sum_n g dt B + D dy``,
  ``dA = sum_t g x dt``, ``dB = sum_d g dt u``, ``dC = sum_d dy h``; channel- and batch-reductions (dA, dD,
  delta_bias, and dB/dC over the channels of a group) go through per-block partial sums (or fp32 atomics)
  reduced on the host.

Fused 2D scans (``FUSED``, used by ``vmamba_zoo.ops.scan2d``): the same kernels, but every sequence position is
looked up in the scan strategy's order table, so u is read straight from the (B, D, H, W) map (gather on load),
delta/B/C from per-direction maps in pixel order, and the output of the K directions is added into one fp32
(B, D, H, W) map with atomics (scatter-add on store): the K re-ordered copies that ``scan()``/``merge()``
materialise are never written. The backward reads the merged gradient the same way and scatter-adds du.
Atomic adds make the fused results depend on the order of K fp32 additions (run-to-run differences of a few
ulp); the plain path is bitwise deterministic.

Correctness is checked against ``naive.py`` by ``tests/ops/test_selective_scan_triton.py`` and
``tests/ops/test_scan2d_fused.py`` (GPU, ``-m gpu``) and, on CPU, under Triton's interpreter
(``TRITON_INTERPRET=1``) by the same checks at small sizes.
"""
import os

import torch
import triton
import triton.language as tl

from .common import check_inputs

__all__ = ['selective_scan_triton', 'selective_scan_fused_triton', 'triton_accepts', 'fused_scan_forward',
           'fused_scan_backward']

_MAX_D_STATE = 256


@triton.jit
def _combine(a1, b1, a2, b2):
    # (a1, b1) then (a2, b2): h -> a2 * (a1 * h + b1) + b2
    return a1 * a2, a2 * b1 + b2


@triton.jit
def _rows(batch_offset, group, channel, stride_k, stride_d, ALIGNED: tl.constexpr):
    """Row start offsets of (direction ``group``, channel) rows. In the plain layout stride_k = D * stride_d (one
    (batch, K*D, L) tensor); a map shared by all directions (fused 2D scans) has stride_k = 0. ALIGNED tells the
    compiler they are multiples of 4 elements (16-byte vector loads) when L is not a multiple of 16 (e.g. 196 or
    49 at 224x224), which it cannot infer from the strides."""
    rows = batch_offset + group * stride_k + channel * stride_d
    if ALIGNED:
        rows = tl.multiple_of(rows, 4)
    return rows


@triton.jit
def _positions(orders_ptr, offsets, steps, step_mask, row_mask, HW, FUSED: tl.constexpr, ONE_GROUP: tl.constexpr):
    """Memory position of each (channel row, scan step) and the mask of those that touch memory.

    Plain layout: the step itself. Fused 2D scans: the pixel the direction reads at that step, from the
    strategy's (K, S) order table (``ScanIndex.orders``); pixel HW is the padding sentinel, whose step still
    decays the state but reads zero and writes nothing, exactly as ``scan``/``merge`` treat it. ``step_mask``
    (BLOCK_L,) marks the steps that exist, ``row_mask`` (BLOCK_D,) the channels; with ONE_GROUP the block's
    channels share one order row, loaded once (offsets (1, 1, BLOCK_L)). Results are (BLOCK_D, 1, BLOCK_L) tiles,
    the layout of every per-(channel, step) value in the kernels: they broadcast over the state axis of the
    (BLOCK_D, BLOCK_N, BLOCK_L) tiles and come back from reductions over it (keep_dims) without a layout change.
    """
    mask = row_mask[:, None, None] & step_mask[None, None, :]
    if FUSED:
        if ONE_GROUP:
            pos = tl.load(orders_ptr + offsets, mask=step_mask[None, None, :], other=HW)
        else:
            pos = tl.load(orders_ptr + offsets, mask=mask, other=HW)
        return pos, mask & (pos < HW)
    else:
        return steps, mask


@triton.jit
def _order_rows(group, block_group, L, ONE_GROUP: tl.constexpr):
    """Offsets of the order-table rows of a block's channels: one row for the whole block when all its channels
    belong to one direction (one load of the orders per step instead of one per channel)."""
    if ONE_GROUP:
        return block_group * L
    else:
        return group[:, None, None] * L


@triton.jit
def _bc_rows(ptr, s_b, s_g, s_n, pid_b, group, block_group, offs_n, BC_ROW: tl.constexpr):
    """Row pointers of B or C: (BLOCK_D, BLOCK_N, 1), one per channel's group, or (1, BLOCK_N, 1) for the whole
    block when BC_ROW (see ``_load_bc``)."""
    if BC_ROW:
        return ptr + pid_b * s_b + block_group * s_g + offs_n[None, :, None] * s_n
    else:
        return ptr + pid_b * s_b + group[:, None, None] * s_g + offs_n[None, :, None] * s_n


@triton.jit
def _load_bc(rows, pos, io2, mask_n, s_l, HW, BC_ROW: tl.constexpr):
    """B or C at every (channel, state, step). BC_ROW (fused scans, one direction per channel block): the block's
    channels share one B/C row and one order row (pos is (1, 1, BLOCK_L)), so a (1, BLOCK_N, BLOCK_L) tile is
    loaded once and broadcast over the channels instead of one gathered load per channel; every channel of such
    a block exists, and padding steps (pos == HW) read zero as before."""
    if BC_ROW:
        return tl.load(rows + pos * s_l, mask=(pos < HW) & mask_n[None, :, None], other=0.0).to(tl.float32)
    else:
        return tl.load(rows + pos * s_l, mask=io2 & mask_n[None, :, None], other=0.0).to(tl.float32)


@triton.jit
def _dt_of(delta, bias, SOFTPLUS: tl.constexpr):
    dt = delta + bias
    if SOFTPLUS:
        dt = tl.where(dt > 20.0, dt, tl.log(1.0 + tl.exp(dt)))
    return dt


@triton.jit
def _ddelta_of(ddt, delta, bias, dt, SOFTPLUS: tl.constexpr):
    """The gradient at delta from the gradient at dt = _dt_of(delta, bias) (passed in): d softplus / dx =
    sigmoid(x) = exp(x - softplus(x)), one exp and no division (and exactly 1 above 20, where _dt_of passes x
    through: dt == x there)."""
    if SOFTPLUS:
        ddt = ddt * tl.exp((delta + bias) - dt)
    return ddt


@triton.jit
def _fwd_chunk(
    chunk, h, u_row, d_row, z_row, o_row, b_row, c_row, out_ptr, chunk_state_ptr, orders_ptr,
    A, bias, Dv, state_rows, order_rows, offs_n, mask_d, mask_n, L, N, HW, s_ul, s_dl, s_bl, s_cl, s_zl, s_ol,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, BLOCK_L: tl.constexpr,
    CHUNK_L: tl.constexpr, FUSED: tl.constexpr, ONE_GROUP: tl.constexpr, BC_ROW: tl.constexpr,
):
    """One chunk of the forward: steps chunk * BLOCK_L ... + CHUNK_L - 1 (CHUNK_L = BLOCK_L, or the tail chunk's
    own smaller size), entered with state h; returns the state after its last step."""
    offs_l = tl.arange(0, CHUNK_L)
    # the state entering this chunk, for the backward's recomputation
    tl.store(chunk_state_ptr + (state_rows + chunk)[:, None] * N + offs_n[None, :], h,
             mask=mask_d[:, None] & mask_n[None, :])
    l_idx = chunk * BLOCK_L + offs_l
    mask_l = l_idx < L
    pos, io2 = _positions(orders_ptr, order_rows + l_idx[None, None, :], l_idx[None, None, :], mask_l, mask_d,
                          HW, FUSED, ONE_GROUP)
    u = tl.load(u_row + pos * s_ul, mask=io2, other=0.0).to(tl.float32)
    delta = tl.load(d_row + pos * s_dl, mask=io2, other=0.0).to(tl.float32)
    dt = _dt_of(delta, bias[:, None, None], SOFTPLUS)
    m3 = mask_d[:, None, None] & mask_n[None, :, None] & mask_l[None, None, :]
    Bt = _load_bc(b_row, pos, io2, mask_n, s_bl, HW, BC_ROW)
    Ct = _load_bc(c_row, pos, io2, mask_n, s_cl, HW, BC_ROW)
    # steps past L: decay 1, input 0, so the chunk's last column carries the last real state
    dA = tl.where(m3, tl.exp(dt * A[:, :, None]), 1.0)
    dBu = (dt * u) * Bt
    cum_a, hs = tl.associative_scan((dA, dBu), axis=2, combine_fn=_combine)
    # h == 0 (first chunk) must not meet an overflowed decay product: inf * 0 would be nan
    states = hs + tl.where(h[:, :, None] != 0.0, cum_a * h[:, :, None], 0.0)
    y = tl.sum(states * Ct, axis=1, keep_dims=True)
    if HAS_D:
        y += Dv[:, None, None] * u
    if HAS_Z:
        z = tl.load(z_row + pos * s_zl, mask=io2, other=0.0).to(tl.float32)
        y = y * (z / (1.0 + tl.exp(-z)))
    if FUSED:
        # merge on store: the K directions add into one fp32 map (B, D, H, W) at the pixels they read
        tl.atomic_add(o_row + pos * s_ol, y, mask=io2, sem='relaxed')
    else:
        tl.store(o_row + pos * s_ol, y.to(out_ptr.dtype.element_ty), mask=io2)
    return tl.sum(tl.where(offs_l[None, None, :] == CHUNK_L - 1, states, 0.0), axis=2)


@triton.jit
def _fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, out_ptr, chunk_state_ptr, last_state_ptr,
    orders_ptr,
    L, KD, per_group, N, n_chunks, HW,
    s_ub, s_uk, s_ud, s_ul, s_db, s_dk, s_dd, s_dl, s_bb, s_bg, s_bn, s_bl, s_cb, s_cg, s_cn, s_cl,
    s_zb, s_zk, s_zd, s_zl, s_ob, s_ok, s_od, s_ol,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr, TAIL_L: tl.constexpr,
    ALIGNED: tl.constexpr, FUSED: tl.constexpr, ONE_GROUP: tl.constexpr, BC_ROW: tl.constexpr,
):
    pid_b = tl.program_id(0)
    pid_d = tl.program_id(1)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    mask_d = offs_d < KD
    mask_n = offs_n < N
    group = offs_d // per_group
    channel = offs_d - group * per_group
    order_rows = _order_rows(group, pid_d * BLOCK_D // per_group, L, ONE_GROUP)

    A = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_d[:, None] & mask_n[None, :], other=0.0)
    bias = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    Dv = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)

    h = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    state_rows = (pid_b * KD + offs_d) * n_chunks
    u_row = u_ptr + _rows(pid_b * s_ub, group, channel, s_uk, s_ud, ALIGNED)[:, None, None]
    d_row = delta_ptr + _rows(pid_b * s_db, group, channel, s_dk, s_dd, ALIGNED)[:, None, None]
    z_row = z_ptr + _rows(pid_b * s_zb, group, channel, s_zk, s_zd, ALIGNED)[:, None, None]
    o_row = out_ptr + _rows(pid_b * s_ob, group, channel, s_ok, s_od, ALIGNED)[:, None, None]
    b_row = _bc_rows(B_ptr, s_bb, s_bg, s_bn, pid_b, group, pid_d * BLOCK_D // per_group, offs_n, BC_ROW)
    c_row = _bc_rows(C_ptr, s_cb, s_cg, s_cn, pid_b, group, pid_d * BLOCK_D // per_group, offs_n, BC_ROW)
    # the whole chunks, then (TAIL_L > 0) the last L % BLOCK_L steps in a tile of their own size; without a tail
    # the last chunk may be partial (masked)
    n_full = L // BLOCK_L if TAIL_L > 0 else n_chunks
    for chunk in range(0, n_full):
        h = _fwd_chunk(chunk, h, u_row, d_row, z_row, o_row, b_row, c_row, out_ptr, chunk_state_ptr, orders_ptr,
                       A, bias, Dv, state_rows, order_rows, offs_n, mask_d, mask_n, L, N, HW,
                       s_ul, s_dl, s_bl, s_cl, s_zl, s_ol, HAS_D, HAS_Z, SOFTPLUS, BLOCK_L, BLOCK_L, FUSED,
                       ONE_GROUP, BC_ROW)
    if TAIL_L > 0:
        h = _fwd_chunk(n_full, h, u_row, d_row, z_row, o_row, b_row, c_row, out_ptr, chunk_state_ptr, orders_ptr,
                       A, bias, Dv, state_rows, order_rows, offs_n, mask_d, mask_n, L, N, HW,
                       s_ul, s_dl, s_bl, s_cl, s_zl, s_ol, HAS_D, HAS_Z, SOFTPLUS, BLOCK_L, TAIL_L, FUSED,
                       ONE_GROUP, BC_ROW)
    tl.store(last_state_ptr + (pid_b * KD + offs_d)[:, None] * N + offs_n[None, :], h,
             mask=mask_d[:, None] & mask_n[None, :])


@triton.jit
def _bwd_chunk(
    chunk, g_next, dA_acc, dD_acc, dbias_acc,
    u_row, d_row, z_row, dz_row, g_row, du_row, dd_row, b_row, c_row, dz_ptr, du_ptr, ddelta_ptr, dB_ptr, dC_ptr,
    chunk_state_ptr, orders_ptr, A, bias, Dv, state_rows, order_rows, block_group, group, offs_n, mask_d, mask_n,
    mask_dn, pid_b, pid_d, L, N, HW, n_groups, n_dblocks, s_ul, s_dl, s_bl, s_cl, s_zl, s_gl, s_dul, s_ddl,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, BLOCK_L: tl.constexpr,
    CHUNK_L: tl.constexpr, ONE_GROUP: tl.constexpr, FUSED: tl.constexpr, BC_ROW: tl.constexpr,
    SHIFTED_SCAN: tl.constexpr,
):
    """One chunk of the backward: steps chunk * BLOCK_L ... + CHUNK_L - 1 (CHUNK_L = BLOCK_L, or the tail chunk's
    own smaller size), entered with the adjoint at the next chunk's first step; returns it for this chunk's first
    step and the updated per-channel sums."""
    offs_l = tl.arange(0, CHUNK_L)
    l_idx = chunk * BLOCK_L + offs_l
    mask_l = l_idx < L
    m2 = mask_d[:, None, None] & mask_l[None, None, :]
    m3 = mask_d[:, None, None] & mask_n[None, :, None] & mask_l[None, None, :]
    pos, io2 = _positions(orders_ptr, order_rows + l_idx[None, None, :], l_idx[None, None, :], mask_l, mask_d,
                          HW, FUSED, ONE_GROUP)
    io3 = io2 & mask_n[None, :, None]

    u = tl.load(u_row + pos * s_ul, mask=io2, other=0.0).to(tl.float32)
    delta = tl.load(d_row + pos * s_dl, mask=io2, other=0.0).to(tl.float32)
    dt = _dt_of(delta, bias[:, None, None], SOFTPLUS)
    Bt = _load_bc(b_row, pos, io2, mask_n, s_bl, HW, BC_ROW)
    Ct = _load_bc(c_row, pos, io2, mask_n, s_cl, HW, BC_ROW)
    dA = tl.where(m3, tl.exp(dt * A[:, :, None]), 1.0)
    dBu = (dt * u) * Bt

    h0 = tl.load(chunk_state_ptr + (state_rows + chunk)[:, None] * N + offs_n[None, :], mask=mask_dn, other=0.0)
    if SHIFTED_SCAN:
        # e_t = h_{t-1}: a scan of the step-(t-1) pairs (loaded again, shifted by one step); slot 0 holds
        # (0, chunk start state)
        lp = l_idx - 1
        mp3 = mask_d[:, None, None] & mask_n[None, :, None] & (mask_l & (offs_l > 0))[None, None, :]
        pos_p, iop2 = _positions(orders_ptr, order_rows + lp[None, None, :], lp[None, None, :],
                                 mask_l & (offs_l > 0), mask_d, HW, FUSED, ONE_GROUP)
        u_p = tl.load(u_row + pos_p * s_ul, mask=iop2, other=0.0).to(tl.float32)
        dt_p = _dt_of(tl.load(d_row + pos_p * s_dl, mask=iop2, other=0.0).to(tl.float32), bias[:, None, None],
                      SOFTPLUS)
        B_p = _load_bc(b_row, pos_p, iop2, mask_n, s_bl, HW, BC_ROW)
        first = offs_l[None, None, :] == 0
        a_p = tl.where(first, 0.0, tl.where(mp3, tl.exp(dt_p * A[:, :, None]), 1.0))
        b_p = tl.where(first, h0[:, :, None], (dt_p * u_p) * B_p)
        _, e = tl.associative_scan((a_p, b_p), axis=2, combine_fn=_combine)
        decayed = dA * e
        states = decayed + dBu
    else:
        # the chunk's states again, by the forward's own scan from the saved chunk state; then
        # exp(dt_t A) h_{t-1} = h_t - dt_t B_t u_t without a second scan (the identity mamba_ssm's backward
        # uses, csrc/selective_scan/selective_scan_bwd_kernel.cuh). The very first step has no previous
        # state: 0 exactly, where the subtraction (contracted into an FMA by the compiler) would leave dBu's
        # rounding error (~1e-8) in dA, whose exact value at L = 1 is 0
        cum_a, hs = tl.associative_scan((dA, dBu), axis=2, combine_fn=_combine)
        states = hs + tl.where(h0[:, :, None] != 0.0, cum_a * h0[:, :, None], 0.0)
        decayed = tl.where((chunk == 0) & (offs_l == 0)[None, None, :], 0.0, states - dBu)

    # fused: the merged map's gradient, read at the pixel each direction wrote (gather on load)
    dout = tl.load(g_row + pos * s_gl, mask=io2, other=0.0).to(tl.float32)
    y = tl.sum(states * Ct, axis=1, keep_dims=True)
    if HAS_D:
        y += Dv[:, None, None] * u
    if HAS_Z:
        z = tl.load(z_row + pos * s_zl, mask=io2, other=0.0).to(tl.float32)
        sig = 1.0 / (1.0 + tl.exp(-z))
        dz = dout * y * sig * (1.0 + z * (1.0 - sig))
        tl.store(dz_row + pos * s_zl, dz.to(dz_ptr.dtype.element_ty), mask=io2)
        dy = dout * z * sig
    else:
        dy = dout

    # adjoint: g_t = C_t dy_t + a_{t+1} g_{t+1}; pairs (a_{t+1}, C_t dy_t) scanned in reverse
    ln = l_idx + 1
    mn3 = mask_d[:, None, None] & mask_n[None, :, None] & (ln < L)[None, None, :]
    pos_n, ion2 = _positions(orders_ptr, order_rows + ln[None, None, :], ln[None, None, :], ln < L, mask_d, HW,
                             FUSED, ONE_GROUP)
    dt_n = _dt_of(tl.load(d_row + pos_n * s_dl, mask=ion2, other=0.0).to(tl.float32), bias[:, None, None],
                  SOFTPLUS)
    a_n = tl.where(mn3, tl.exp(dt_n * A[:, :, None]), 0.0)
    c_dy = Ct * dy
    # with reverse=True Triton combines (accumulated suffix, current element), so the forward combine
    # composes them right: g_t = a_{t+1} * suffix + C_t dy_t
    a_suffix, g_part = tl.associative_scan((a_n, c_dy), axis=2, combine_fn=_combine, reverse=True)
    g = g_part + tl.where(g_next[:, :, None] != 0.0, a_suffix * g_next[:, :, None], 0.0)
    g = tl.where(m3, g, 0.0)

    ge = g * decayed
    ddt = tl.sum(ge * A[:, :, None] + g * Bt * u, axis=1, keep_dims=True)
    du = tl.sum(g * Bt, axis=1, keep_dims=True) * dt
    if HAS_D:
        du += Dv[:, None, None] * dy
        dD_acc += tl.sum(tl.where(m2, dy * u, 0.0), axis=2)
    dA_acc += tl.sum(ge * dt, axis=2)
    ddelta = _ddelta_of(ddt, delta, bias[:, None, None], dt, SOFTPLUS)
    # padding steps (fused) still pass their gradient to delta_bias, as they do through scan()
    ddelta = tl.where(m2, ddelta, 0.0)
    dbias_acc += tl.sum(ddelta, axis=2)
    if FUSED:
        # x is shared by the K directions: scatter-add its gradient into one fp32 map
        tl.atomic_add(du_row + pos * s_dul, du, mask=io2, sem='relaxed')
    else:
        tl.store(du_row + pos * s_dul, du.to(du_ptr.dtype.element_ty), mask=io2)
    tl.store(dd_row + pos * s_ddl, ddelta.to(ddelta_ptr.dtype.element_ty), mask=io2)
    # dB, dC sum over the channels of a group
    dB_c = g * (dt * u)
    dC_c = states * dy
    if ONE_GROUP:
        # every channel of the block shares one B/C group: reduce over the block and write this block's
        # partial sums to its own slot (batch, channel block, N, positions); the host sums a group's slots.
        # No atomics: with 12-24 blocks per group they serialised and dominated short sequences.
        if FUSED:
            pos_1 = tl.load(orders_ptr + block_group * L + l_idx, mask=mask_l, other=HW)
            io_1 = mask_l & (pos_1 < HW)
        else:
            pos_1, io_1 = l_idx, mask_l
        part = (pid_b * n_dblocks + pid_d) * N * HW + offs_n[:, None] * HW + pos_1[None, :]
        m_nl = mask_n[:, None] & io_1[None, :]
        tl.store(dB_ptr + part, tl.sum(dB_c, axis=0), mask=m_nl)
        tl.store(dC_ptr + part, tl.sum(dC_c, axis=0), mask=m_nl)
    else:
        bc_out = (pid_b * n_groups + group[:, None, None]) * N * HW + offs_n[None, :, None] * HW + pos
        tl.atomic_add(dB_ptr + bc_out, dB_c, mask=io3)
        tl.atomic_add(dC_ptr + bc_out, dC_c, mask=io3)
    g_next = tl.sum(tl.where(offs_l[None, None, :] == 0, g, 0.0), axis=2)
    return g_next, dA_acc, dD_acc, dbias_acc


@triton.jit
def _bwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, dout_ptr, chunk_state_ptr,
    du_ptr, ddelta_ptr, sums_ptr, dB_ptr, dC_ptr, dz_ptr, orders_ptr,
    L, KD, per_group, N, n_chunks, n_groups, n_dblocks, HW,
    s_ub, s_uk, s_ud, s_ul, s_db, s_dk, s_dd, s_dl, s_bb, s_bg, s_bn, s_bl, s_cb, s_cg, s_cn, s_cl,
    s_zb, s_zk, s_zd, s_zl, s_gb, s_gk, s_gd, s_gl,
    s_dub, s_duk, s_dud, s_dul, s_ddb, s_ddk, s_ddd, s_ddl,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr, TAIL_L: tl.constexpr,
    ONE_GROUP: tl.constexpr, ALIGNED: tl.constexpr, FUSED: tl.constexpr, BC_ROW: tl.constexpr,
    SHIFTED_SCAN: tl.constexpr,
):
    pid_b = tl.program_id(0)
    pid_d = tl.program_id(1)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    mask_d = offs_d < KD
    mask_n = offs_n < N
    mask_dn = mask_d[:, None] & mask_n[None, :]
    group = offs_d // per_group
    channel = offs_d - group * per_group
    block_group = (pid_d * BLOCK_D) // per_group  # the one group of the block when ONE_GROUP
    order_rows = _order_rows(group, block_group, L, ONE_GROUP)

    A = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_dn, other=0.0)
    bias = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    Dv = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)

    g_next = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)  # adjoint at the first step of the next chunk
    dA_acc = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    dD_acc = tl.zeros([BLOCK_D, 1], dtype=tl.float32)  # per-channel sums, (BLOCK_D, 1) as the tiles reduce
    dbias_acc = tl.zeros([BLOCK_D, 1], dtype=tl.float32)
    state_rows = (pid_b * KD + offs_d) * n_chunks
    u_row = u_ptr + _rows(pid_b * s_ub, group, channel, s_uk, s_ud, ALIGNED)[:, None, None]
    d_row = delta_ptr + _rows(pid_b * s_db, group, channel, s_dk, s_dd, ALIGNED)[:, None, None]
    z_offsets = _rows(pid_b * s_zb, group, channel, s_zk, s_zd, ALIGNED)[:, None, None]  # dz shares z's strides
    z_row, dz_row = z_ptr + z_offsets, dz_ptr + z_offsets
    g_row = dout_ptr + _rows(pid_b * s_gb, group, channel, s_gk, s_gd, ALIGNED)[:, None, None]
    du_row = du_ptr + _rows(pid_b * s_dub, group, channel, s_duk, s_dud, ALIGNED)[:, None, None]
    dd_row = ddelta_ptr + _rows(pid_b * s_ddb, group, channel, s_ddk, s_ddd, ALIGNED)[:, None, None]
    b_row = _bc_rows(B_ptr, s_bb, s_bg, s_bn, pid_b, group, block_group, offs_n, BC_ROW)
    c_row = _bc_rows(C_ptr, s_cb, s_cg, s_cn, pid_b, group, block_group, offs_n, BC_ROW)
    # in reverse: the tail chunk (TAIL_L > 0: the last L % BLOCK_L steps in a tile of their own size), then the
    # whole chunks; without a tail the last chunk may be partial (masked)
    n_full = L // BLOCK_L if TAIL_L > 0 else n_chunks
    if TAIL_L > 0:
        g_next, dA_acc, dD_acc, dbias_acc = _bwd_chunk(
            n_full, g_next, dA_acc, dD_acc, dbias_acc, u_row, d_row, z_row, dz_row, g_row, du_row, dd_row, b_row,
            c_row, dz_ptr, du_ptr, ddelta_ptr, dB_ptr, dC_ptr, chunk_state_ptr, orders_ptr, A, bias, Dv,
            state_rows, order_rows, block_group, group, offs_n, mask_d, mask_n, mask_dn, pid_b, pid_d, L, N, HW,
            n_groups, n_dblocks, s_ul, s_dl, s_bl, s_cl, s_zl, s_gl, s_dul, s_ddl, HAS_D, HAS_Z, SOFTPLUS,
            BLOCK_L, TAIL_L, ONE_GROUP, FUSED, BC_ROW, SHIFTED_SCAN)
    for rev in range(0, n_full):
        g_next, dA_acc, dD_acc, dbias_acc = _bwd_chunk(
            n_full - 1 - rev, g_next, dA_acc, dD_acc, dbias_acc, u_row, d_row, z_row, dz_row, g_row, du_row,
            dd_row, b_row, c_row, dz_ptr, du_ptr, ddelta_ptr, dB_ptr, dC_ptr, chunk_state_ptr, orders_ptr, A, bias,
            Dv, state_rows, order_rows, block_group, group, offs_n, mask_d, mask_n, mask_dn, pid_b, pid_d, L, N,
            HW, n_groups, n_dblocks, s_ul, s_dl, s_bl, s_cl, s_zl, s_gl, s_dul, s_ddl, HAS_D, HAS_Z, SOFTPLUS,
            BLOCK_L, BLOCK_L, ONE_GROUP, FUSED, BC_ROW, SHIFTED_SCAN)

    # per-batch partial sums, reduced over the batch on the host (atomics from 128 batch programs per address
    # serialised), all in one (batch, N + 2, K*D) buffer: dA's N rows, then dD's, then delta_bias's (one host sum)
    sums_rows = sums_ptr + pid_b * (N + 2) * KD
    tl.store(sums_rows + offs_n[None, :] * KD + offs_d[:, None], dA_acc, mask=mask_dn)
    if HAS_D:
        tl.store(sums_rows + N * KD + offs_d[:, None], dD_acc, mask=mask_d[:, None])
    if HAS_BIAS:
        tl.store(sums_rows + (N + 1) * KD + offs_d[:, None], dbias_acc, mask=mask_d[:, None])


# Fused 2D scans: launch rows (longest L, BLOCK_L, forward tile elements, forward warps, backward tile elements,
# backward warps, BC_ROW, SHIFTED_SCAN); the first row whose L bound holds applies. BLOCK_L is capped at L's next
# power of two (at least 16) and a tile of E elements has E // (BLOCK_N * BLOCK_L) channels (at most 64). Tuned
# on an H200 at VMamba-T's stage shapes (bf16, batch 128; ``tools/tune_fused_gpu.py``, model_cards/gpu_kernels.md
# "Run 6"): stage 4 (L=49), 3 (L=196), 2 (L=784) and 1 (L=3136); every row was checked against the previous rule
# there.
# Run 13 tuned again with both backward forms: the shifted-input one stayed fastest at stages 1-3 with the 2D
# tiles. Run 17 tuned the 3D-tile kernels (the layout since run 16): stages 1 and 2 moved to smaller tiles and the
# recomputing backward (bf16 fwd+bwd 4.59 -> 4.22 ms and 2.39 -> 2.04 ms, fp32 4.74 -> 4.60 and 2.33 -> 2.06 ms,
# confirmed by a second timing); at stages 3 and 4 the two timings of one launch differed by more than the
# candidates did (short sequences, partly host-bound), so those rows stay.
_FUSED_TABLE = (
    (64, 32, 1024, 4, 1024, 4, True, True),
    (256, 16, 512, 2, 256, 1, True, True),
    (1024, 16, 512, 2, 256, 2, True, False),
    (float('inf'), 32, 512, 4, 512, 4, True, False),
)


def _parse_blocks(spec: str):
    """VMAMBA_ZOO_FUSED_BLOCKS (tuning; replaces ``_FUSED_TABLE``): "BL,BDf,Wf,BDb,Wb[,BC[,SH]]" for every length
    or "LMAX:BL,BDf,Wf,BDb,Wb[,BC[,SH]];..." rows (LMAX an integer or '*'), BD in channels at N = 1, BC (BC_ROW)
    0/1 (default 0), SH (SHIFTED_SCAN) 0/1 (default 1)."""
    rows = []
    for part in spec.split(';'):
        lmax, _, cfg = part.rpartition(':')
        bl, bdf, wf, bdb, wb, *flags = (int(v) for v in cfg.split(','))
        bc = flags[0] if len(flags) > 0 else 0
        shifted = flags[1] if len(flags) > 1 else 1
        rows.append((float('inf') if lmax in ('', '*') else int(lmax), bl, bdf * bl, wf, bdb * bl, wb, bool(bc),
                     bool(shifted)))
    return rows


# Plain scans at d_state 1 (VMamba-T's N): launch rows in the fused table's format, per input dtype class (fp32, and
# bf16 / fp16). Tuned on an H200 with the 3D-tile kernels (``tools/tune_plain_gpu.py sweep``, run 16: a BL x
# forward x backward x form grid at VMamba-T's four stage shapes, batch 128) and confirmed in run 17 (``confirm``):
# fwd+bwd 1.07 / 1.07 / 1.35 / 1.09x (fp32) and 1.27 / 1.22 / 1.28 / 1.12x (bf16) the former 2D-tile kernels at
# their rule, stages 1-4 (model_cards/gpu_kernels.md). The 65-256-step rows (stage 3, L = 196) moved to 32-step
# chunks with the tail chunks in run 21: six chunks and a 4-step tail instead of four 64-step chunks, fwd+bwd
# 1.12x (fp32) / 1.49x (bf16) the run-17 row. Other state sizes keep the rule in ``_launch_config``.
_PLAIN_TABLES = {
    'fp32': (
        (64, 32, 1024, 4, 1024, 4, False, False),
        (256, 32, 1024, 4, 256, 2, False, False),
        (float('inf'), 64, 2048, 4, 512, 2, False, True),
    ),
    '16-bit': (
        (64, 32, 1024, 4, 1024, 4, False, False),
        (256, 32, 1024, 4, 256, 2, False, False),
        (1024, 32, 1024, 4, 1024, 4, False, False),
        (float('inf'), 64, 2048, 8, 512, 2, False, False),
    ),
}


def _table_row(rows, block_n: int, length: int):
    """The first row whose L bound holds, as (BLOCK_L, forward (BLOCK_D, warps), backward (BLOCK_D, warps), BC_ROW,
    SHIFTED_SCAN); BLOCK_L is capped at L's next power of two (at least 16)."""
    for lmax, bl, fwd_elems, wf, bwd_elems, wb, bc_row, shifted in rows:
        if length <= lmax:
            bl = min(bl, max(16, triton.next_power_of_2(length)))
            return (bl, (max(1, min(64, fwd_elems // (block_n * bl))), wf),
                    (max(1, min(64, bwd_elems // (block_n * bl))), wb), bc_row, shifted)
    return None


def _launch_config(d_state: int, length: int, fused: bool = False, dtype: torch.dtype = torch.float32):
    """(BLOCK_N, BLOCK_L, forward (BLOCK_D, warps), backward (BLOCK_D, warps), BC_ROW, SHIFTED_SCAN); the
    backward holds ~10 tiles live, so its tiles are smaller. VMAMBA_ZOO_TRITON_BLOCKS="BL,BDf,Wf,BDb,Wb[,SH]"
    overrides the plain scans' launch (for tuning); for the fused 2D scans VMAMBA_ZOO_FUSED_BLOCKS
    (``_parse_blocks``) replaces ``_FUSED_TABLE``."""
    block_n = triton.next_power_of_2(max(d_state, 1))
    if fused:
        spec = os.environ.get('VMAMBA_ZOO_FUSED_BLOCKS')
        row = _table_row(_parse_blocks(spec) if spec else _FUSED_TABLE, block_n, length)
        if row is None:
            raise ValueError(f"VMAMBA_ZOO_FUSED_BLOCKS={spec!r} has no row for a {length}-step scan; end it with a "
                             f"'*:...' row")
        return (block_n,) + row
    override = os.environ.get('VMAMBA_ZOO_TRITON_BLOCKS')
    if override:
        bl, bdf, wf, bdb, wb, *shifted = (int(v) for v in override.split(','))
        return block_n, bl, (bdf, wf), (bdb, wb), False, bool(shifted[0]) if shifted else True
    if block_n == 1:
        return (block_n,) + _table_row(_PLAIN_TABLES['fp32' if dtype == torch.float32 else '16-bit'], 1, length)
    # larger states (not tuned): 64-step chunks for long sequences, 32 for short ones; ~2K-element forward tiles
    # and ~1K-element backward tiles (one chunk when L <= 64: the backward's per-chunk dependency chain, not
    # bandwidth, bounds short sequences). Chosen by the commit that added the kernels (model_cards/gpu_kernels.md).
    block_l = max(16, triton.next_power_of_2(length)) if length <= 64 else (64 if length > 256 else 32)
    fwd_d = max(1, min(32, 2048 // (block_n * block_l)))
    bwd_d = max(1, min(32, 1024 // (block_n * block_l)))
    # the shifted-input backward for fp32 sequences longer than 256 steps, the recomputing one otherwise: H200,
    # batch 128, VMamba-T stages, fwd+bwd, recompute / shifted time (run 12, model_cards/gpu_kernels.md): fp32
    # 1.11x / 1.11x / 0.95x / 0.87x at L = 3136 / 784 / 196 / 49, bf16 0.79x / 0.80x / 0.88x / 1.05x
    shifted = dtype == torch.float32 and length > 256
    return block_n, block_l, (fwd_d, 4), (bwd_d, 4), False, shifted


def _tail_length(length: int, block_l: int) -> int:
    """Tile size of the tail chunk (the steps after the last whole BLOCK_L chunk), or 0: the last chunk is then a
    masked whole one.

    Rule (H200 run 21, plain kernels, fwd+bwd against the same kernels without a tail): a tail at most an eighth
    of a chunk pays (L = 196: 4 steps after three 64-step chunks, 1.17x in bf16, and after six 32-step chunks);
    larger ones did not (L = 784 with 16 of 64 or of 32 steps: 0.93x / 0.91x; L = 49 with 17 of 32 steps, a tail
    tile as large as a chunk: 0.66x), so they keep the masked chunk.
    """
    rest = length % block_l
    tail = triton.next_power_of_2(rest) if rest else 0
    return tail if 0 < tail * 8 <= block_l else 0


def triton_accepts(u, delta, A, B, C) -> bool:
    return u.is_cuda and A.shape[1] <= _MAX_D_STATE and u.dtype in (torch.float32, torch.float16, torch.bfloat16)


def _strides4(t, per_group):
    """(batch, direction, channel, position) strides of a (batch, K*D, L) tensor."""
    return t.stride(0), per_group * t.stride(1), t.stride(1), t.stride(2)


class _Launch:
    """Everything the two kernels need besides the tensors: sizes, per-tensor strides and meta-parameters.

    Strides are (batch, direction, channel, position) for every (K*D)-channel tensor; a tensor shared by the K
    directions (the fused path's map, its gradient) has direction stride 0. ``orders`` is the strategy's (K, S)
    order table in fused mode and None otherwise; ``positions`` is H*W (fused) or L.
    """

    def __init__(self, batch, channels, length, d_state, groups, orders, positions, dtype):
        self.batch, self.channels, self.length, self.d_state, self.groups = batch, channels, length, d_state, groups
        self.per_group = channels // groups
        # int32 positions (``ScanIndex.orders_int32``): half the bytes of the per-step order loads
        if orders is not None and (orders.dtype != torch.int32 or not orders.is_contiguous()):
            raise ValueError('selective scan (fused): the order table must be contiguous int32 (ScanIndex.orders_int32)')
        self.orders = orders
        self.positions = positions
        self.fused = orders is not None
        self.block_n, self.block_l, self.fwd_cfg, self.bwd_cfg, bc_row, self.shifted_scan = _launch_config(
            d_state, length, self.fused, dtype)
        self.bc_row = bc_row and self.fused
        self.n_chunks = max(triton.cdiv(length, self.block_l), 1)
        # the last L % BLOCK_L steps may run in a tile of their own (next power of two) size instead of a whole
        # masked BLOCK_L chunk: at L = 196 with 64-step chunks the fourth chunk has 4 real steps in 64
        self.tail_l = _tail_length(length, self.block_l)

    def forward(self, u, su, delta, sd, A32, B, C, D, z, sz, delta_bias, softplus, out, so):
        block_d, warps = self.fwd_cfg
        chunk_states = u.new_empty((self.batch, self.channels, self.n_chunks, self.d_state), dtype=torch.float32)
        last_state = u.new_empty((self.batch, self.channels, self.d_state), dtype=torch.float32)
        grid = (self.batch, triton.cdiv(self.channels, block_d))
        _fwd_kernel[grid](
            u, delta, A32, B, C, D if D is not None else A32, z if z is not None else u,
            delta_bias if delta_bias is not None else A32, out, chunk_states, last_state,
            self.orders if self.fused else A32,
            self.length, self.channels, self.per_group, self.d_state, self.n_chunks, self.positions,
            *su, *sd, *B.stride(), *C.stride(), *(sz if z is not None else su), *so,
            HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None, SOFTPLUS=softplus,
            BLOCK_D=block_d, BLOCK_N=self.block_n, BLOCK_L=self.block_l, TAIL_L=self.tail_l, num_warps=warps,
            ALIGNED=not self.fused and _aligned(u, delta, out, *([z] if z is not None else [])), FUSED=self.fused,
            ONE_GROUP=self.per_group % block_d == 0, BC_ROW=self.bc_row and self.per_group % block_d == 0,
        )
        return chunk_states, last_state

    def backward(self, u, su, delta, sd, A32, B, C, D, z, sz, delta_bias, softplus, chunk_states, dout, sg,
                 du, sdu, ddelta, sdd, dz):
        """Fills du, ddelta (and dz); returns dA (K*D, N), dBC (2, batch, groups, N, positions: dB and dC stacked),
        dD and dbias (K*D,) or None, all fp32 and reduced to the inputs' shapes.

        The reductions share buffers (one allocation and one host sum for dA, dD and dbias; one zero-fill and one
        sum for dB and dC): each torch call costs host time, and the eager training step is host-bound.
        """
        block_d, warps = self.bwd_cfg
        batch, channels, d_state, groups = self.batch, self.channels, self.d_state, self.groups
        # rows N (dD) and N + 1 (delta_bias) stay unwritten without D / delta_bias; their sums are never returned
        sums = u.new_empty((batch, d_state + 2, channels), dtype=torch.float32)
        n_dblocks = triton.cdiv(channels, block_d)
        one_group = self.per_group % block_d == 0
        bc_rows = n_dblocks if one_group else groups  # per-block partial sums, or atomically summed groups
        dBC = torch.zeros((2, batch, bc_rows, d_state, self.positions), device=u.device, dtype=torch.float32)
        grid = (batch, n_dblocks)
        _bwd_kernel[grid](
            u, delta, A32, B, C, D if D is not None else A32, z if z is not None else u,
            delta_bias if delta_bias is not None else A32, dout, chunk_states,
            du, ddelta, sums, dBC[0], dBC[1], dz if dz is not None else du, self.orders if self.fused else A32,
            self.length, channels, self.per_group, d_state, self.n_chunks, groups, n_dblocks, self.positions,
            *su, *sd, *B.stride(), *C.stride(), *(sz if z is not None else su), *sg, *sdu, *sdd,
            HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None, SOFTPLUS=softplus,
            BLOCK_D=block_d, BLOCK_N=self.block_n, BLOCK_L=self.block_l, TAIL_L=self.tail_l, ONE_GROUP=one_group,
            num_warps=warps,
            ALIGNED=not self.fused and _aligned(u, delta, dout, du, ddelta, *([z] if z is not None else [])),
            FUSED=self.fused, BC_ROW=self.bc_row and one_group, SHIFTED_SCAN=self.shifted_scan,
        )
        if one_group:
            dBC = dBC.view(2, batch, groups, n_dblocks // groups, d_state, self.positions).sum(3)
        total = sums.sum(0)  # (N + 2, K*D)
        return (total[:d_state].t(), dBC, None if D is None else total[d_state],
                None if delta_bias is None else total[d_state + 1])


class _SelectiveScanTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        shapes = check_inputs(u, delta, A, B, C, D, z, delta_bias)
        batch, channels, length, d_state, groups, grouped = shapes
        if not grouped:
            B, C = B.unsqueeze(1), C.unsqueeze(1)
        A32 = A.float().contiguous()
        launch = _Launch(batch, channels, length, d_state, groups, None, length, u.dtype)
        per_group = launch.per_group
        out = torch.empty_like(u)
        chunk_states, last_state = launch.forward(
            u, _strides4(u, per_group), delta, _strides4(delta, per_group), A32, B, C, D,
            z, None if z is None else _strides4(z, per_group), delta_bias, bool(delta_softplus),
            out, _strides4(out, per_group))
        ctx.save_for_backward(u, delta, A32, B, C, D, z, delta_bias, chunk_states)
        ctx.meta = (launch, grouped, bool(delta_softplus), A.dtype)
        ctx.mark_non_differentiable(last_state)
        return out, last_state

    @staticmethod
    def backward(ctx, dout, _dlast_state):
        u, delta, A32, B, C, D, z, delta_bias, chunk_states = ctx.saved_tensors
        launch, grouped, softplus, A_dtype = ctx.meta
        per_group = launch.per_group
        dout = dout.contiguous()
        du = torch.empty_like(u)
        ddelta = torch.empty_like(delta)
        dz = torch.empty_like(z) if z is not None else None
        sz = None if z is None else _strides4(z, per_group)
        dA, dBC, dD, dbias = launch.backward(
            u, _strides4(u, per_group), delta, _strides4(delta, per_group), A32, B, C, D, z, sz, delta_bias,
            softplus, chunk_states, dout, _strides4(dout, per_group), du, _strides4(du, per_group),
            ddelta, _strides4(ddelta, per_group), dz)
        dBC = dBC.to(B.dtype)  # one cast for both
        dB, dC = dBC[0], dBC[1].to(C.dtype)
        if not grouped:
            dB, dC = dB.squeeze(1), dC.squeeze(1)
        return (du, ddelta, dA.to(A_dtype), dB, dC, None if dD is None else dD.to(D.dtype), dz,
                None if dbias is None else dbias.to(delta_bias.dtype), None)


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


def _shared_strides(t):
    """(batch, direction, channel, position) strides of a (batch, D, positions) tensor read by all K directions."""
    return t.stride(0), 0, t.stride(1), t.stride(2)


def fused_scan_forward(xf, delta, A32, B, C, D, delta_bias, softplus, orders):
    """Forward kernel of the fused 2D scan, the part both fused autograd paths share (no autograd here).

    xf: (batch, dim, H*W) map view shared by the K directions; delta (batch, K, dim, H*W), B / C (batch, K, N,
    H*W), any strides; A32 (K*dim, N) fp32 contiguous; orders: the strategy's contiguous int32 (K, S) table.
    Returns (out, launch, chunk_states): out the fp32 sum of the K directions, (batch, H*W, dim) channels-last.
    """
    batch, dim, HW = xf.shape
    K, S = orders.shape
    launch = _Launch(batch, K * dim, S, A32.shape[1], K, orders, HW, xf.dtype)
    out = torch.zeros((batch, HW, dim), device=xf.device, dtype=torch.float32)
    chunk_states, _ = launch.forward(
        xf, _shared_strides(xf), delta, _strides_kd(delta), A32, B, C, D, None, None, delta_bias, softplus,
        out, (HW * dim, 0, 1, dim))
    return out, launch, chunk_states


def fused_scan_backward(launch, xf, delta, A32, B, C, D, delta_bias, softplus, chunk_states, dyf, complete):
    """Backward kernel of the fused 2D scan for ``fused_scan_forward``'s inputs; dyf: (batch, dim, H*W) gradient
    of the merged output (any strides, any float dtype).

    Returns dx (batch, H*W, dim) fp32, ddelta (delta's dtype and strides), dA (K*dim, N), dBC (2, batch, K, N,
    H*W: dB and dC stacked), dD and dbias (K*dim,) or None: all but dx and ddelta fp32.
    """
    batch, dim, HW = xf.shape
    dx = torch.zeros((batch, HW, dim), device=xf.device, dtype=torch.float32)
    # every direction writes each pixel it reads once; pixels a direction never reads keep a zero gradient
    ddelta = torch.empty_like(delta) if complete else torch.zeros_like(delta)
    dA, dBC, dD, dbias = launch.backward(
        xf, _shared_strides(xf), delta, _strides_kd(delta), A32, B, C, D, None, None, delta_bias, softplus,
        chunk_states, dyf, _shared_strides(dyf), dx, (HW * dim, 0, 1, dim), ddelta, _strides_kd(ddelta), None)
    return dx, ddelta, dA, dBC, dD, dbias


class _SelectiveScanFusedTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, delta, A, B, C, D, delta_bias, delta_softplus, orders, complete):
        batch, dim, H, W = x.shape
        xf = x.reshape(batch, dim, H * W)  # a view for contiguous and channels-last maps alike
        A32 = A.float().contiguous()
        out, launch, chunk_states = fused_scan_forward(xf, delta, A32, B, C, D, delta_bias, bool(delta_softplus),
                                                       orders)
        ctx.save_for_backward(xf, delta, A32, B, C, D, delta_bias, chunk_states)
        ctx.meta = (launch, bool(delta_softplus), A.dtype, complete, x.shape, x.dtype)
        return out.view(batch, H, W, dim).permute(0, 3, 1, 2).to(x.dtype)

    @staticmethod
    def backward(ctx, dy):
        xf, delta, A32, B, C, D, delta_bias, chunk_states = ctx.saved_tensors
        launch, softplus, A_dtype, complete, x_shape, x_dtype = ctx.meta
        batch, dim, H, W = x_shape
        dx, ddelta, dA, dBC, dD, dbias = fused_scan_backward(
            launch, xf, delta, A32, B, C, D, delta_bias, softplus, chunk_states, dy.reshape(batch, dim, H * W),
            complete)
        dx = dx.view(batch, H, W, dim).permute(0, 3, 1, 2).to(x_dtype)
        return (dx, ddelta, dA.to(A_dtype), dBC[0].to(B.dtype), dBC[1].to(C.dtype),
                None if dD is None else dD.to(D.dtype), None if dbias is None else dbias.to(delta_bias.dtype),
                None, None, None)


def _strides_kd(t):
    """(batch, direction, channel, position) strides of a (batch, K, D, positions) tensor."""
    return tuple(t.stride())


def selective_scan_fused_triton(x, delta, A, B, C, index, D=None, delta_bias=None, delta_softplus=False):
    """``merge(selective_scan(scan(x), scan_k(delta), A, scan_k(B), scan_k(C), D, delta_bias), (H, W))`` in one
    forward and one backward kernel, for CUDA tensors; ``scan_k`` reads direction k's map in direction k's order.

    x: (B, D, H, W) map shared by the K directions (channels-last memory is the fast case: each gathered pixel
    is D contiguous channels); delta: (B, K, D, H*W) and B, C: (B, K, N, H*W), per direction in pixel order (any
    strides); A: (K*D, N); D, delta_bias: (K*D,); index: the strategy's ``ScanIndex`` on x's device.
    Returns (B, D, H, W) in x's dtype (summed over the K directions in fp32).
    """
    return _SelectiveScanFusedTriton.apply(x, delta, A, B, C, D, delta_bias, delta_softplus, index.orders_int32,
                                           index.complete)


def _aligned(*tensors) -> bool:
    return all(t.stride(0) % 4 == 0 and t.stride(1) % 4 == 0 and t.data_ptr() % 16 == 0 for t in tensors)


def _dense_last(t):
    """Unit stride along L keeps the kernels' loads coalesced."""
    return t if t.stride(-1) == 1 else t.contiguous()


def _like_strides(z, u):
    # dz is written with z's strides; keep them plain
    return z.contiguous() if z.stride() != u.stride() else z
