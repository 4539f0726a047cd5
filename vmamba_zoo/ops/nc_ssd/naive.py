"""Non-causal state-space duality (NC-SSD): the reference every other path is tested against.

VSSD (Shi et al., "VSSD: Vision Mamba with Non-Causal State Space Duality", arXiv:2407.18559) takes Mamba2's
SSD with a scalar A per head and drops the causal mask: every token writes into one state and every token reads
it. Semantics as YuHengsss/VSSD ``classification/models/mamba2.py`` ``Mamba2.non_casual_linear_attn``
(``LINEAR_ATTN_DUALITY: True``), per token l, head h, group g = h % ngroups:

    w_m      = dt[m, h] * A[h]                                     (the token's own weight, no decay product)
    y[l, h]  = sum_m <C[l, g], B[m, g]> * w_m * x[m, h] + D[h] * x[l, h]      (sum over ALL tokens m)

This file computes it literally in the SSD's quadratic ("attention") form: the (L, L) kernel
``mask * (C B^T)`` with the causal mask replaced by all ones, applied to the weighted inputs, fp32 accumulation
(float64 for float64 inputs). Quadratic in L by design: it is the truth, not a path to run models with.
"""
import torch

from .common import check_inputs, compute_dtype

__all__ = ['nc_ssd_naive']


def nc_ssd_naive(x, dt, A, B, C, D=None):
    """x: (batch, L, nheads, headdim); dt: (batch, L, nheads); A, D: (nheads,); B, C: (batch, L, ngroups, N).

    Returns y (batch, L, nheads, headdim) in x's dtype.
    """
    batch, length, nheads, headdim, ngroups, d_state = check_inputs(x, dt, A, B, C, D)
    dtype = compute_dtype(x, dt, A, B, C, D)
    xf, Bf, Cf = x.to(dtype), B.to(dtype), C.to(dtype)
    weight = dt.to(dtype) * A.to(dtype)  # (batch, L, nheads)

    group_of_head = torch.arange(nheads, device=x.device) % ngroups
    # scores[b, g, l, m] = <C_l, B_m>; the causal SSD would multiply by tril(decay products), NC-SSD by ones
    scores = torch.einsum('blgn,bmgn->bglm', Cf, Bf)
    mask = torch.ones(length, length, dtype=dtype, device=x.device)
    kernel = (scores * mask)[:, group_of_head]  # (batch, nheads, L, L)
    y = torch.einsum('bhlm,bmh,bmhp->blhp', kernel, weight, xf)
    if D is not None:
        y = y + D.to(dtype)[:, None] * xf
    return y.to(x.dtype)
