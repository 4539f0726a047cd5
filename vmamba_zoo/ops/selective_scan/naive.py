"""Sequential selective scan: the reference every other path is tested against.

Discretisation as in Mamba (state-spaces/mamba ``mamba_ssm/ops/selective_scan_interface.py``
``selective_scan_ref``), for real A:

    dt_t    = softplus(delta_t + delta_bias)            (softplus and bias optional)
    h_t     = exp(dt_t * A) * h_{t-1} + dt_t * B_t * u_t   (zero-order hold for A, Euler for B)
    y_t     = <C_t, h_t> + D * u_t
    out_t   = y_t * silu(z_t)                            (when z is given)

One time step per Python iteration, state in fp32 (float64 for float64 inputs). Slow by design: it is the truth,
not a path to run models with.
"""
import torch
import torch.nn.functional as F

from .common import check_inputs, compute_dtype

__all__ = ['selective_scan_naive']


def selective_scan_naive(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                         return_last_state=False, return_states=False):
    """u, delta, z: (batch, K*D, L); A: (K*D, N); B, C: (batch, K, N, L) or (batch, N, L); D, delta_bias: (K*D,).

    Returns ``out`` (batch, K*D, L) in u's dtype, and with ``return_last_state`` also the final state
    (batch, K*D, N) in the compute dtype. ``return_states=True`` (C, D, z None) returns every hidden state h_t
    instead of ``out``: (batch, K*D, N, L) in the compute dtype.
    """
    shapes = check_inputs(u, delta, A, B, C, D, z, delta_bias, return_states=return_states)
    batch, channels, length, d_state, groups, _ = shapes
    dtype = compute_dtype(u, delta, A, B, C, D, z, delta_bias)
    per_group = channels // groups

    dt = delta.to(dtype)
    if delta_bias is not None:
        dt = dt + delta_bias.to(dtype)[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    # (batch, K, D_k, N, L) decay and input terms; B/C broadcast over the D_k channels of their group
    dt = dt.view(batch, groups, per_group, 1, length)
    decay = torch.exp(dt * A.to(dtype).view(groups, per_group, d_state, 1))
    Bg = B.to(dtype).view(batch, groups, 1, d_state, length)
    Cg = None if C is None else C.to(dtype).view(batch, groups, 1, d_state, length)
    drive = dt * Bg * u.to(dtype).view(batch, groups, per_group, 1, length)

    state = u.new_zeros((batch, groups, per_group, d_state), dtype=dtype)
    ys, states = [], []
    for t in range(length):
        state = decay[..., t] * state + drive[..., t]
        if return_states:
            states.append(state)
        else:
            ys.append((state * Cg[..., t]).sum(-1))
    if return_states:
        states = torch.stack(states, dim=-1).view(batch, channels, d_state, length)
        return (states, state.view(batch, channels, d_state)) if return_last_state else states
    y = torch.stack(ys, dim=-1).view(batch, channels, length)
    if D is not None:
        y = y + D.to(dtype)[:, None] * u.to(dtype)
    if z is not None:
        y = y * F.silu(z.to(dtype))
    out = y.to(u.dtype)
    if return_last_state:
        return out, state.view(batch, channels, d_state)
    return out
