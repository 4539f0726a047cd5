"""Chunked selective scan in plain PyTorch: the fast CPU path (and the fallback on any device).

Within a chunk of T steps the linear recurrence ``h_t = exp(a_t) h_{t-1} + x_t`` (a_t = dt_t * A,
x_t = dt_t * B_t * u_t) has the closed form

    S_t = sum_{s<=t} a_s,     h_t = exp(S_t) * (h_in + sum_{s<=t} exp(-S_s) * x_s)

i.e. two cumulative sums and one exp per element instead of one Python step per time step. Chunks run in order,
carrying ``h`` (batch, K*D, N) from one to the next, so every temporary is a (batch, K*D, N, T) block that stays
in cache and the cumulative decay ``S`` spans at most T steps.

Overflow guard: ``exp(-S)`` overflows when the decay inside a chunk is large (big dt * |A|). Every chunk checks
``max|S|``; past ``_EXP_LIMIT`` it is split in halves (down to single steps, which use the recurrence directly),
so results stay exact for any dt. Autograd flows through the ordinary tensor ops.
"""
import torch
import torch.nn.functional as F

from .common import check_inputs, compute_dtype

__all__ = ['selective_scan_chunked']

# |cumulative log-decay| allowed inside one chunk: exp(60) ~ 1e26 leaves 12 orders of magnitude of fp32 headroom
# for the (exp(-S) * x) partial sums; float64 has room for far more.
_EXP_LIMIT = {torch.float32: 60.0, torch.float64: 600.0}
# elements (batch * K*D * N * T) per chunk temporary: ~2 MiB of fp32 (a few buffers stay in L2/L3)
_CHUNK_ELEMENTS = 1 << 19
_MIN_CHUNK, _MAX_CHUNK = 16, 512


def default_chunk_size(rows: int, length: int) -> int:
    """Power-of-two chunk length giving ~_CHUNK_ELEMENTS elements per temporary, clamped to [16, 512]."""
    target = max(_CHUNK_ELEMENTS // max(rows, 1), 1)
    chunk = 1 << (target.bit_length() - 1)
    return int(min(max(chunk, _MIN_CHUNK), _MAX_CHUNK, max(length, 1)))


class _ChunkInputs:
    """The inputs as (batch, K, D_k, 1|N, L) views, sliced per chunk and cast to the compute dtype there."""

    def __init__(self, u, delta, A, B, C, D, z, delta_bias, delta_softplus, shapes, dtype):
        batch, channels, length, d_state, groups, grouped = shapes
        per_group = channels // groups
        b_groups = groups if grouped else 1
        self.u = u.view(batch, groups, per_group, 1, length)
        self.delta = delta.view(batch, groups, per_group, 1, length)
        self.z = None if z is None else z.view(batch, groups, per_group, length)
        self.B = B.view(batch, b_groups, 1, d_state, length)
        self.C = None if C is None else C.view(batch, b_groups, 1, d_state, length)  # None: states wanted
        self.A = A.to(dtype).view(groups, per_group, d_state, 1)
        self.D = None if D is None else D.to(dtype).view(groups, per_group, 1)
        self.bias = None if delta_bias is None else delta_bias.to(dtype).view(groups, per_group, 1, 1)
        self.softplus = delta_softplus
        self.dtype = dtype
        self.d_state = d_state
        self.limit = _EXP_LIMIT.get(dtype, 60.0)
        # dt >= 0 (softplus) and A <= 0 make the cumulative log-decay monotone non-increasing from 0, so its
        # extreme is the chunk's last step: the overflow guard then reads one column instead of the whole chunk
        self.monotone = bool(delta_softplus) and bool((self.A <= 0).all())

    def dt(self, start, stop):
        dt = self.delta[..., start:stop].to(self.dtype)
        if self.bias is not None:
            dt = dt + self.bias
        if self.softplus:
            dt = F.softplus(dt)
        return dt


def _scan_chunk(inp: _ChunkInputs, state, start, stop):
    """States of steps [start, stop) from the state before ``start``, out of place (autograd records it).
    Returns ((batch, K, D_k, N, T) states, (..., N, 1) last state)."""
    dt = inp.dt(start, stop)
    drive = dt * inp.u[..., start:stop].to(inp.dtype) * inp.B[..., start:stop]
    log_decay = dt * inp.A  # (batch, K, D_k, N, T)
    if stop - start == 1:  # a single step needs no closed form (and cannot overflow)
        states = torch.exp(log_decay) * state + drive
        return states, states
    cum = log_decay.cumsum(-1)
    if _too_steep(cum, inp.limit, inp.monotone):  # exp(-S) would overflow: split in halves (exact, only slower)
        mid = (start + stop) // 2
        first, state = _scan_chunk(inp, state, start, mid)
        second, state = _scan_chunk(inp, state, mid, stop)
        return torch.cat([first, second], dim=-1), state
    # multiply by exp(-S) rather than divide by exp(S): the division's backward squares exp(S), which leaves
    # fp32 range at |S| ~ 44 and turns gradients into inf/nan
    states = ((drive * torch.exp(-cum)).cumsum(-1) + state) * torch.exp(cum)
    return states, states[..., -1:]


def _too_steep(cum_log_decay, limit, monotone) -> bool:
    cum_log_decay = cum_log_decay.detach()
    if monotone:
        return -float(cum_log_decay[..., -1].min()) > limit
    lo, hi = torch.aminmax(cum_log_decay)
    return max(-float(lo), float(hi)) > limit


def _chunk_output(inp: _ChunkInputs, states, start, stop):
    """y = <C, h> + D u, gated by silu(z): (batch, K, D_k, T) in the compute dtype, out of place."""
    y = (states * inp.C[..., start:stop]).sum(-2)
    if inp.D is not None:
        y = torch.addcmul(y, inp.u[..., 0, start:stop].to(inp.dtype), inp.D)
    if inp.z is not None:
        y = y * F.silu(inp.z[..., start:stop].to(inp.dtype))
    return y


def _scan_autograd(inp: _ChunkInputs, state, length, chunk_size, out_dtype, return_states=False):
    pieces = []
    for start in range(0, length, chunk_size):
        stop = min(start + chunk_size, length)
        states, state = _scan_chunk(inp, state, start, stop)
        pieces.append(states if return_states else _chunk_output(inp, states, start, stop).to(out_dtype))
    return torch.cat(pieces, dim=-1), state


def _scan_inference(inp: _ChunkInputs, state, out, chunk_size, states_out=None):
    """The no-autograd path: same maths as ``_scan_chunk``/``_chunk_output`` but every step writes into three
    reused chunk buffers (no allocation, stays in cache) and the output goes straight into ``out``.
    With ``states_out`` (batch, K, D_k, N, L) the states are computed in place there and no output is formed."""
    length = out.shape[-1] if states_out is None else states_out.shape[-1]
    lead = state.shape[:-1]  # (batch, K, D_k, N)
    dt_buf = state.new_empty((*lead[:-1], 1, chunk_size))
    decay_buf = state.new_empty((*lead, chunk_size))
    states_buf = state.new_empty((*lead, chunk_size))
    u_buf = state.new_empty((*lead[:-1], 1, chunk_size))  # u is read twice: copy its strided slice once
    y_buf = None if out is None or out.dtype == state.dtype else state.new_empty((*lead[:-1], chunk_size))
    log2e = 1.4426950408889634
    A2 = inp.A * log2e  # exp2 is ~1.8x cheaper than exp on CPU
    for start in range(0, length, chunk_size):
        stop = min(start + chunk_size, length)
        T = stop - start
        dt, decay, states, u = dt_buf[..., :T], decay_buf[..., :T], states_buf[..., :T], u_buf[..., :T]
        if states_out is not None:
            states = states_out[..., start:stop]
        u.copy_(inp.u[..., start:stop])
        delta = inp.delta[..., start:stop]
        if inp.bias is not None:
            torch.add(delta, inp.bias, out=dt)
        else:
            dt.copy_(delta)
        if inp.softplus:
            torch._C._nn.softplus(dt, 1.0, 20.0, out=dt)
        torch.mul(dt, A2, out=decay).cumsum_(-1)
        if T > 1 and _too_steep(decay, inp.limit * log2e, inp.monotone):
            chunk_states, new_state = _scan_chunk(inp, state, start, stop)
            states.copy_(chunk_states)
            state.copy_(new_state)
        else:
            decay.exp2_()
            if inp.d_state == 1:
                torch.mul(dt, u, out=states).mul_(inp.B[..., start:stop])
            else:
                torch.mul(dt * u, inp.B[..., start:stop], out=states)
            states.div_(decay).cumsum_(-1).add_(state).mul_(decay)
            state.copy_(states[..., -1:])
        if states_out is not None:
            continue
        # y accumulates in the compute dtype; written to ``out`` (u's dtype) once at the end of the chunk
        y = out[..., start:stop] if y_buf is None else y_buf[..., :T]
        if inp.d_state == 1:
            torch.mul(states.squeeze(-2), inp.C[..., start:stop].squeeze(-2), out=y)
        else:
            torch.sum(states.mul_(inp.C[..., start:stop]), dim=-2, out=y)
        if inp.D is not None:
            y.addcmul_(u.squeeze(-2), inp.D)
        if inp.z is not None:
            y.mul_(F.silu(inp.z[..., start:stop].to(inp.dtype)))
        if y_buf is not None:
            out[..., start:stop] = y
    return out, state


def selective_scan_chunked(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                           return_last_state=False, chunk_size=None, return_states=False):
    """Same contract and results as ``selective_scan_naive`` (``return_states`` included); ``chunk_size``
    overrides the automatic choice."""
    shapes = check_inputs(u, delta, A, B, C, D, z, delta_bias, return_states=return_states)
    batch, channels, length, d_state, groups, _ = shapes
    dtype = compute_dtype(u, delta, A, B, C, D, z, delta_bias)
    if chunk_size is None:
        chunk_size = default_chunk_size(batch * channels * d_state, length)
    elif chunk_size < 1:
        raise ValueError(f"selective_scan: chunk_size must be >= 1, got {chunk_size}")
    tensors = (u, delta, A, B, C, D, z, delta_bias)
    inp = _ChunkInputs(*tensors, delta_softplus, shapes, dtype)
    state = u.new_zeros((batch, groups, channels // groups, d_state, 1), dtype=dtype)
    if return_states:
        if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
            states, state = _scan_autograd(inp, state, length, chunk_size, u.dtype, return_states=True)
        else:
            states = u.new_empty((batch, groups, channels // groups, d_state, length), dtype=dtype)
            _, state = _scan_inference(inp, state, None, chunk_size, states_out=states)
        states = states.reshape(batch, channels, d_state, length)
        return (states, state.view(batch, channels, d_state)) if return_last_state else states
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        out, state = _scan_autograd(inp, state, length, chunk_size, u.dtype)
    else:
        out = u.new_empty((batch, groups, channels // groups, length))
        out, state = _scan_inference(inp, state, out, chunk_size)
    out = out.reshape(batch, channels, length)
    if return_last_state:
        return out, state.view(batch, channels, d_state)
    return out
