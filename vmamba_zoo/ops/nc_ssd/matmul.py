"""Non-causal SSD in its state form: one global state built once, then read by every token.

Same signature and result as ``naive.py``. Because NC-SSD has no mask, the sum over tokens factors as

    state[g] = B[:, g]^T @ (w * x)[heads of g]     (N, heads_per_group * headdim), one per image and group
    y        = C[:, g] @ state[g] + D * x

two batched matmuls, linear in L (the naive form is quadratic). This is the computation the official
``Mamba2.non_casual_linear_attn`` does (YuHengsss/VSSD ``classification/models/mamba2.py``), written so that each
group is one large matmul. Plain PyTorch, autograd for the backward; fp32 accumulation for low-precision inputs.
"""
import torch

from .common import check_inputs, compute_dtype

__all__ = ['nc_ssd_matmul']


def nc_ssd_matmul(x, dt, A, B, C, D=None):
    """x: (batch, L, nheads, headdim); dt: (batch, L, nheads); A, D: (nheads,); B, C: (batch, L, ngroups, N).

    Returns y (batch, L, nheads, headdim) in x's dtype.
    """
    batch, length, nheads, headdim, ngroups, d_state = check_inputs(x, dt, A, B, C, D)
    dtype = compute_dtype(x, dt, A, B, C, D)
    xf = x.to(dtype)
    weighted = xf * (dt.to(dtype) * A.to(dtype)).unsqueeze(-1)
    per_group = nheads // ngroups
    # head h = i * ngroups + g reads group g, so viewing heads as (per_group, ngroups) puts a group's heads on i
    values = weighted.view(batch, length, per_group, ngroups, headdim).permute(0, 3, 1, 2, 4)
    values = values.reshape(batch, ngroups, length, per_group * headdim)
    keys = B.to(dtype).transpose(1, 2)  # (batch, ngroups, L, N)
    queries = C.to(dtype).transpose(1, 2)
    state = keys.transpose(-1, -2) @ values  # (batch, ngroups, N, per_group * headdim): the global state
    y = queries @ state  # (batch, ngroups, L, per_group * headdim)
    y = y.view(batch, ngroups, length, per_group, headdim).permute(0, 2, 3, 1, 4).reshape(
        batch, length, nheads, headdim)
    if D is not None:
        y = torch.addcmul(y, xf, D.to(dtype)[:, None])  # one pass for the skip (each pass is a parallel region)
    return y.to(x.dtype)
