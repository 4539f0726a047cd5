"""State fusion with its hidden states from Triton kernels: the CUDA path (forward and backward).

The fusion data flow is ``chunked.py``'s (``fuse_scan_states``: replicate pad + depth-wise dilated conv2d, cuDNN
on GPU, then the C read-out); only the all-states selective scan, the sequential part, runs here:

    forward   h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t   -> states (batch, K*D, N, L) fp32, every t
    backward  g_t = dstates_t + exp(dt_{t+1} A) g_{t+1}   (the adjoint, a reverse scan)
              d dt_t = sum_n g_t (A a_t h_{t-1} + B_t u_t),  du_t = dt_t sum_n g_t B_t,
              dA = sum_t g_t dt_t a_t h_{t-1},  dB_t = sum_(d in group) g_t dt_t u_t,
              ddelta = d dt * sigmoid(delta + delta_bias) with softplus,  ddelta_bias = sum_(b, t) ddelta

with a_t = exp(dt_t A) and dt = softplus(delta + delta_bias) as in ``selective_scan/naive.py``.

Layout of the work, as in ``selective_scan/triton.py`` (whose ``_combine``, ``_dt_of`` and ``_ddelta_of`` these
kernels share): one program per (batch, block of BLOCK_D channels) walks the sequence in chunks of BLOCK_L
steps; inside a chunk the recurrence is an associative scan of (decay, input) pairs on a (BLOCK_D, BLOCK_N,
BLOCK_L) register tile, between chunks the last state is carried. State and accumulation are fp32 whatever the
input dtype; gradients come back in each input's dtype.

What differs from the selective-scan kernels:

* The forward writes every state (that is the op's product) and the state entering each chunk
  (batch, K*D, n_chunks, N), which is all the backward keeps: it recomputes a chunk's states from it instead of
  reading back the (batch, K*D, N, L) fp32 states (4N bytes per step, and no extra 200 MB per Spatial-Mamba-T
  stage-1 block at batch 128 held for autograd).
* The backward needs a_t h_{t-1}, the decayed previous state, only as that product, and it equals
  h_t - dt_t B_t u_t: the recomputed states minus this step's input. So no scan of inputs shifted by one step
  (the selective-scan kernel's way to h_{t-1}) and no division by a decay (a_t can underflow to 0; then
  h_t = dt_t B_t u_t exactly and the difference is exactly 0).
* There is no C, D or z: dC, dD and the read-out's gradient come from autograd through the PyTorch fusion.

Reductions: dA and ddelta_bias are per-(batch, channel) partial sums reduced over the batch on the host; dB sums
over a group's channels, per channel block into its own slot (reduced on the host) when each block lies in one
group (always for Spatial-Mamba, K=1), else with fp32 atomics.

Launch: ``_blocks`` below; ``VMAMBA_ZOO_STATE_FUSION_BLOCKS="BL,BDf,Wf,BDb,Wb"`` overrides it (tuning:
``tools/bench_gpu_state_fusion.py --sweep``).

Checked against ``naive.py`` by ``tests/ops/test_state_fusion_triton.py`` (GPU, ``-m gpu``) and, on CPU, under
Triton's interpreter (``TRITON_INTERPRET=1``) at small sizes.
"""
import os

import torch
import triton
import triton.language as tl

from ..selective_scan.triton import _aligned, _combine, _ddelta_of, _dense_last, _dt_of
from .chunked import fuse_scan_states

__all__ = ['state_fusion_scan_triton', 'states_scan_triton']

ENV_BLOCKS = 'VMAMBA_ZOO_STATE_FUSION_BLOCKS'


@triton.jit
def _row_starts(offset, index, stride, ALIGNED: tl.constexpr):
    # L = 196 or 49 (Spatial-Mamba stages 3-4) is no multiple of 16, so the compiler cannot prove 16-byte
    # alignment of the rows from the strides; the host checks it (``_aligned``) and says so
    rows = offset + index * stride
    if ALIGNED:
        rows = tl.multiple_of(rows, 4)
    return rows


@triton.jit
def _b_rows(B_ptr, s_bb, s_bg, s_bn, pid_b, group, block_group, offs_n, ONE_GROUP: tl.constexpr):
    """Row pointers of B: (1, BLOCK_N, 1) shared by the block when all its channels are in one group (one tile
    load broadcast over the channels), else (BLOCK_D, BLOCK_N, 1), one per channel's group."""
    if ONE_GROUP:
        return B_ptr + pid_b * s_bb + block_group * s_bg + offs_n[None, :, None] * s_bn
    else:
        return B_ptr + pid_b * s_bb + group[:, None, None] * s_bg + offs_n[None, :, None] * s_bn


@triton.jit
def _load_b(b_row, l_idx, mask_d, mask_n, mask_l, ONE_GROUP: tl.constexpr):
    if ONE_GROUP:
        return tl.load(b_row + l_idx[None, None, :], mask=mask_n[None, :, None] & mask_l[None, None, :],
                       other=0.0).to(tl.float32)
    else:
        return tl.load(b_row + l_idx[None, None, :],
                       mask=mask_d[:, None, None] & mask_n[None, :, None] & mask_l[None, None, :],
                       other=0.0).to(tl.float32)


@triton.jit
def _chunk_states(u, dt, A, Bt, h, m3):
    """States of one chunk from the state ``h`` (BLOCK_D, BLOCK_N) before it; also returns the decays a_t and
    inputs dt_t B_t u_t. Steps past L (or past the channels) decay by 1 with input 0, so the chunk's last
    column carries the last real state."""
    dA = tl.where(m3, tl.exp(dt[:, None, :] * A[:, :, None]), 1.0)
    dBu = (dt * u)[:, None, :] * Bt
    cum_a, hs = tl.associative_scan((dA, dBu), axis=2, combine_fn=_combine)
    # h == 0 (the first chunk) must not meet an overflowed decay product: inf * 0 would be nan
    states = hs + tl.where(h[:, :, None] != 0.0, cum_a * h[:, :, None], 0.0)
    return states, dA, dBu


@triton.jit
def _channel_block(A_ptr, bias_ptr, pid_d, KD, N, per_group, HAS_BIAS: tl.constexpr, BLOCK_D: tl.constexpr,
                   BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr):
    """The (BLOCK_D channels x BLOCK_N states) block both kernels work on: offsets, masks, each channel's scan
    direction, A and delta_bias (fp32)."""
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
    return offs_d, offs_n, offs_l, mask_d, mask_n, mask_dn, group, A, bias


@triton.jit
def _states_fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, bias_ptr, states_ptr, chunk_state_ptr,
    L, KD, per_group, N, n_chunks,
    s_ub, s_ud, s_db, s_dd, s_bb, s_bg, s_bn,
    HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_L: tl.constexpr, ONE_GROUP: tl.constexpr, ALIGNED: tl.constexpr,
):
    # u, delta and B have unit stride along L (the wrapper makes them so); states are contiguous (batch, KD, N, L)
    pid_b = tl.program_id(0)
    pid_d = tl.program_id(1)
    offs_d, offs_n, offs_l, mask_d, mask_n, mask_dn, group, A, bias = _channel_block(
        A_ptr, bias_ptr, pid_d, KD, N, per_group, HAS_BIAS, BLOCK_D, BLOCK_N, BLOCK_L)

    u_row = u_ptr + _row_starts(pid_b * s_ub, offs_d, s_ud, ALIGNED)[:, None]
    d_row = delta_ptr + _row_starts(pid_b * s_db, offs_d, s_dd, ALIGNED)[:, None]
    b_row = _b_rows(B_ptr, s_bb, s_bg, s_bn, pid_b, group, (pid_d * BLOCK_D) // per_group, offs_n, ONE_GROUP)
    st_row = states_ptr + (_row_starts(0, pid_b * KD + offs_d, N * L, ALIGNED)[:, None]
                           + offs_n[None, :] * L)[:, :, None]
    cs_rows = ((pid_b * KD + offs_d) * n_chunks)[:, None] * N + offs_n[None, :]
    h = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    for chunk in range(0, n_chunks):
        tl.store(chunk_state_ptr + cs_rows + chunk * N, h, mask=mask_dn)  # for the backward's recomputation
        l_idx = chunk * BLOCK_L + offs_l
        mask_l = l_idx < L
        m2 = mask_d[:, None] & mask_l[None, :]
        m3 = mask_dn[:, :, None] & mask_l[None, None, :]
        u = tl.load(u_row + l_idx[None, :], mask=m2, other=0.0).to(tl.float32)
        dt = _dt_of(tl.load(d_row + l_idx[None, :], mask=m2, other=0.0).to(tl.float32), bias[:, None], SOFTPLUS)
        Bt = _load_b(b_row, l_idx, mask_d, mask_n, mask_l, ONE_GROUP)
        states, _, _ = _chunk_states(u, dt, A, Bt, h, m3)
        tl.store(st_row + l_idx[None, None, :], states, mask=m3)
        h = tl.sum(tl.where(offs_l[None, None, :] == BLOCK_L - 1, states, 0.0), axis=2)


@triton.jit
def _states_bwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, bias_ptr, chunk_state_ptr, dstates_ptr,
    du_ptr, ddelta_ptr, dA_ptr, dB_ptr, dbias_ptr,
    L, KD, per_group, N, n_chunks, n_groups, n_dblocks,
    s_ub, s_ud, s_db, s_dd, s_bb, s_bg, s_bn,
    HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_L: tl.constexpr, ONE_GROUP: tl.constexpr, ALIGNED: tl.constexpr,
):
    # du, ddelta share u's / delta's strides; dstates is contiguous (batch, KD, N, L)
    pid_b = tl.program_id(0)
    pid_d = tl.program_id(1)
    offs_d, offs_n, offs_l, mask_d, mask_n, mask_dn, group, A, bias = _channel_block(
        A_ptr, bias_ptr, pid_d, KD, N, per_group, HAS_BIAS, BLOCK_D, BLOCK_N, BLOCK_L)

    u_off = _row_starts(pid_b * s_ub, offs_d, s_ud, ALIGNED)[:, None]
    d_off = _row_starts(pid_b * s_db, offs_d, s_dd, ALIGNED)[:, None]
    b_row = _b_rows(B_ptr, s_bb, s_bg, s_bn, pid_b, group, (pid_d * BLOCK_D) // per_group, offs_n, ONE_GROUP)
    ds_row = dstates_ptr + (_row_starts(0, pid_b * KD + offs_d, N * L, ALIGNED)[:, None]
                            + offs_n[None, :] * L)[:, :, None]
    cs_rows = ((pid_b * KD + offs_d) * n_chunks)[:, None] * N + offs_n[None, :]

    g_next = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)  # adjoint at the first step of the next chunk
    dA_acc = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    dbias_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    for rev in range(0, n_chunks):
        chunk = n_chunks - 1 - rev
        l_idx = chunk * BLOCK_L + offs_l
        mask_l = l_idx < L
        m2 = mask_d[:, None] & mask_l[None, :]
        m3 = mask_dn[:, :, None] & mask_l[None, None, :]
        u = tl.load(u_ptr + u_off + l_idx[None, :], mask=m2, other=0.0).to(tl.float32)
        delta = tl.load(delta_ptr + d_off + l_idx[None, :], mask=m2, other=0.0).to(tl.float32)
        dt = _dt_of(delta, bias[:, None], SOFTPLUS)
        Bt = _load_b(b_row, l_idx, mask_d, mask_n, mask_l, ONE_GROUP)
        h0 = tl.load(chunk_state_ptr + cs_rows + chunk * N, mask=mask_dn, other=0.0)
        states, _, dBu = _chunk_states(u, dt, A, Bt, h0, m3)
        prev = states - dBu  # a_t h_{t-1} (see the module docstring)

        # adjoint: pairs (a_{t+1}, dstates_t) scanned in reverse; with reverse=True Triton combines (accumulated
        # suffix, current element), so the forward combine gives g_t = a_{t+1} * suffix + dstates_t
        l_next = l_idx + 1
        m2n = mask_d[:, None] & (l_next < L)[None, :]
        dt_n = _dt_of(tl.load(delta_ptr + d_off + l_next[None, :], mask=m2n, other=0.0).to(tl.float32),
                      bias[:, None], SOFTPLUS)
        a_n = tl.where(mask_n[None, :, None] & m2n[:, None, :], tl.exp(dt_n[:, None, :] * A[:, :, None]), 0.0)
        ds = tl.load(ds_row + l_idx[None, None, :], mask=m3, other=0.0).to(tl.float32)
        a_suffix, g_part = tl.associative_scan((a_n, ds), axis=2, combine_fn=_combine, reverse=True)
        g = g_part + tl.where(g_next[:, :, None] != 0.0, a_suffix * g_next[:, :, None], 0.0)
        g = tl.where(m3, g, 0.0)

        gp = g * prev
        gB = g * Bt
        ddt = tl.sum(gp * A[:, :, None] + gB * u[:, None, :], axis=1)
        du = tl.sum(gB, axis=1) * dt
        dA_acc += tl.sum(gp * dt[:, None, :], axis=2)
        ddelta = _ddelta_of(ddt, delta, bias[:, None], dt, SOFTPLUS)
        ddelta = tl.where(m2, ddelta, 0.0)
        dbias_acc += tl.sum(ddelta, axis=1)
        tl.store(du_ptr + u_off + l_idx[None, :], du.to(du_ptr.dtype.element_ty), mask=m2)
        tl.store(ddelta_ptr + d_off + l_idx[None, :], ddelta.to(ddelta_ptr.dtype.element_ty), mask=m2)

        dB_c = g * (dt * u)[:, None, :]
        if ONE_GROUP:
            # the block's channels share one B row: reduce over them, into this block's own slot of
            # (batch, n_dblocks, N, L) (no atomics; the host sums a group's slots)
            part = ((pid_b * n_dblocks + pid_d) * N + offs_n[:, None]) * L + l_idx[None, :]
            tl.store(dB_ptr + part, tl.sum(dB_c, axis=0), mask=mask_n[:, None] & mask_l[None, :])
        else:
            out = ((pid_b * n_groups + group[:, None, None]) * N + offs_n[None, :, None]) * L + l_idx[None, None, :]
            tl.atomic_add(dB_ptr + out, dB_c, mask=m3)
        g_next = tl.sum(tl.where(offs_l[None, None, :] == 0, g, 0.0), axis=2)

    # per-batch partial sums, reduced over the batch on the host (no atomics from every batch program)
    tl.store(dA_ptr + (pid_b * KD + offs_d)[:, None] * N + offs_n[None, :], dA_acc, mask=mask_dn)
    if HAS_BIAS:
        tl.store(dbias_ptr + pid_b * KD + offs_d, dbias_acc, mask=mask_d)


def _blocks(d_state: int, length: int):
    """(BLOCK_N, BLOCK_L, forward (BLOCK_D, warps), backward (BLOCK_D, warps)).

    Untuned start (no GPU measurement of these kernels yet; ``tools/bench_gpu_state_fusion.py --sweep`` measures
    the alternatives): the selective-scan kernels' chunk lengths (64 steps for long sequences, 32 for short, one
    chunk up to 64), with tiles half theirs, ~1K elements forward and ~512 backward. Spatial-Mamba has K=1, so
    at stage 1 (batch 128, 128 channels) there are 4x fewer channel rows than VMamba's K=4 and smaller tiles
    keep the grid at >= 1024 programs on the H200's 132 SMs.
    """
    block_n = triton.next_power_of_2(max(d_state, 1))
    spec = os.environ.get(ENV_BLOCKS)
    if spec:
        bl, bdf, wf, bdb, wb = (int(v) for v in spec.split(','))
        return block_n, bl, (bdf, wf), (bdb, wb)
    block_l = max(16, triton.next_power_of_2(length)) if length <= 64 else (64 if length > 256 else 32)
    fwd_d = max(1, min(32, 1024 // (block_n * block_l)))
    bwd_d = max(1, min(32, 512 // (block_n * block_l)))
    return block_n, block_l, (fwd_d, 4), (bwd_d, 4)


class _StatesScanTriton(torch.autograd.Function):
    """u, delta (batch, K*D, L), A (K*D, N), B (batch, K, N, L), delta_bias (K*D,) or None -> every state
    (batch, K*D, N, L) fp32."""

    @staticmethod
    def forward(ctx, u, delta, A, B, delta_bias, softplus):
        batch, channels, length = u.shape
        groups, d_state = B.shape[1], B.shape[2]
        per_group = channels // groups
        A32 = A.float().contiguous()
        bias = None if delta_bias is None else delta_bias.contiguous()
        block_n, block_l, (block_d, warps), bwd_cfg = _blocks(d_state, length)
        n_chunks = max(triton.cdiv(length, block_l), 1)
        states = u.new_empty((batch, channels, d_state, length), dtype=torch.float32)
        chunk_states = u.new_empty((batch, channels, n_chunks, d_state), dtype=torch.float32)
        # groups == 1: every block's channels share B's only row, whatever the block size
        one_group = groups == 1 or per_group % block_d == 0
        if states.numel():
            _states_fwd_kernel[(batch, triton.cdiv(channels, block_d))](
                u, delta, A32, B, bias if bias is not None else A32, states, chunk_states,
                length, channels, per_group, d_state, n_chunks,
                u.stride(0), u.stride(1), delta.stride(0), delta.stride(1), B.stride(0), B.stride(1), B.stride(2),
                HAS_BIAS=bias is not None, SOFTPLUS=bool(softplus), BLOCK_D=block_d, BLOCK_N=block_n,
                BLOCK_L=block_l, ONE_GROUP=one_group, ALIGNED=_aligned(u, delta, states) and length % 4 == 0,
                num_warps=warps)
        ctx.save_for_backward(u, delta, A32, B, bias, chunk_states)
        ctx.meta = (bool(softplus), block_n, block_l, bwd_cfg, n_chunks, A.dtype,
                    None if delta_bias is None else delta_bias.dtype)
        return states

    @staticmethod
    def backward(ctx, dstates):
        u, delta, A32, B, bias, chunk_states = ctx.saved_tensors
        softplus, block_n, block_l, (block_d, warps), n_chunks, A_dtype, bias_dtype = ctx.meta
        batch, channels, length = u.shape
        groups, d_state = B.shape[1], B.shape[2]
        per_group = channels // groups
        dstates = dstates.contiguous()
        # du / ddelta are written with u's / delta's strides (unit along L, as the wrapper made them)
        du = torch.empty_like(u)
        ddelta = torch.empty_like(delta)
        n_dblocks = triton.cdiv(channels, block_d)
        one_group = groups == 1 or per_group % block_d == 0
        dB = torch.zeros((batch, n_dblocks if one_group else groups, d_state, length), device=u.device,
                         dtype=torch.float32)
        dA = u.new_zeros((batch, channels, d_state), dtype=torch.float32)
        dbias = u.new_zeros((batch, channels), dtype=torch.float32) if bias is not None else None
        if dstates.numel():
            _states_bwd_kernel[(batch, n_dblocks)](
                u, delta, A32, B, bias if bias is not None else A32, chunk_states, dstates,
                du, ddelta, dA, dB, dbias if dbias is not None else dA,
                length, channels, per_group, d_state, n_chunks, groups, n_dblocks,
                u.stride(0), u.stride(1), delta.stride(0), delta.stride(1), B.stride(0), B.stride(1), B.stride(2),
                HAS_BIAS=bias is not None, SOFTPLUS=softplus, BLOCK_D=block_d, BLOCK_N=block_n, BLOCK_L=block_l,
                ONE_GROUP=one_group, ALIGNED=_aligned(u, delta, du, ddelta, dstates) and length % 4 == 0,
                num_warps=warps)
        if one_group:
            dB = dB.view(batch, groups, n_dblocks // groups, d_state, length).sum(2)
        return (du, ddelta, dA.sum(0).to(A_dtype), dB.to(B.dtype),
                None if dbias is None else dbias.sum(0).to(bias_dtype), None)


def states_scan_triton(u, delta, A, B, delta_bias=None, delta_softplus=False):
    """Every hidden state of the selective scan, (batch, K*D, N, L) fp32, for tensors on a CUDA device (or on
    CPU under ``TRITON_INTERPRET=1``); B is (batch, K, N, L) or (batch, N, L). The ``states_of`` of
    ``fuse_scan_states``; differentiable in u, delta, A, B and delta_bias.

    Like every chunk-parallel scan (``selective_scan_triton``'s note) it multiplies decays over a chunk, so a
    recurrence that grows (dt * A > 0, never in the zoo's models) can overflow where the sequential one does not.
    """
    B = B if B.dim() == 4 else B.unsqueeze(1)  # the shared B is the one group of K=1; autograd squeezes dB back
    return _StatesScanTriton.apply(_dense_last(u), _dense_last(delta), A, _dense_last(B), delta_bias,
                                   bool(delta_softplus))


def state_fusion_scan_triton(u, delta, A, B, C, weight, size, D=None, delta_bias=None, delta_softplus=False,
                             dilations=(1, 3, 5), order=None):
    """See ``vmamba_zoo.ops.state_fusion.state_fusion_scan``; the states from the Triton kernels above."""
    return fuse_scan_states(states_scan_triton, u, delta, A, B, C, weight, size, D, delta_bias, delta_softplus,
                            dilations, order)
