"""Input checking shared by every selective-scan backend, so all of them reject bad input the same way."""
from typing import NamedTuple, Optional

import torch


class ScanShapes(NamedTuple):
    batch: int
    channels: int  # K * D
    length: int
    d_state: int
    groups: int  # K: B/C are shared by channels // groups consecutive channels
    grouped: bool  # B/C given as (batch, K, N, L) rather than (batch, N, L)


def compute_dtype(*tensors: Optional[torch.Tensor]) -> torch.dtype:
    """fp32 state/accumulation for fp32/bf16/fp16 inputs; float64 when any input is float64 (gradcheck)."""
    if any(t is not None and t.dtype == torch.float64 for t in tensors):
        return torch.float64
    return torch.float32


def check_inputs(u, delta, A, B, C, D=None, z=None, delta_bias=None, return_states=False) -> ScanShapes:
    """Validate the selective-scan contract and return the sizes; raises one ValueError naming the problem.

    ``return_states``: the caller wants the hidden states h_t themselves, which C, D and z never touch, so they
    must be None (passing them would suggest they were applied)."""
    if return_states:
        given = [name for name, t in (('C', C), ('D', D), ('z', z)) if t is not None]
        if given:
            raise ValueError(f"selective_scan: return_states gives the hidden states before C, D and z apply; "
                             f"pass {', '.join(given)}=None")
    if u.dim() != 3:
        raise ValueError(f"selective_scan: u must be (batch, K*D, L), got shape {tuple(u.shape)}")
    batch, channels, length = (int(size) for size in u.shape)  # plain ints even while tracing
    if delta.shape != u.shape:
        raise ValueError(f"selective_scan: delta must have u's shape {tuple(u.shape)}, got {tuple(delta.shape)}")
    if A.dim() != 2 or A.shape[0] != channels:
        raise ValueError(f"selective_scan: A must be (K*D={channels}, N), got shape {tuple(A.shape)}")
    if A.is_complex():
        raise ValueError("selective_scan: complex A is not supported (vision Mamba models use real A)")
    d_state = int(A.shape[1])
    if B.dim() == 3:
        grouped, groups = False, 1
        expected = (batch, d_state, length)
    elif B.dim() == 4:
        grouped, groups = True, int(B.shape[1])
        expected = (batch, groups, d_state, length)
    else:
        raise ValueError(f"selective_scan: B must be (batch, N, L) or (batch, K, N, L), got {tuple(B.shape)}")
    if tuple(B.shape) != expected:
        raise ValueError(f"selective_scan: B must be {expected} for u {tuple(u.shape)} and A {tuple(A.shape)}, "
                         f"got {tuple(B.shape)}")
    if C is None and not return_states:
        raise ValueError('selective_scan: C is required (it may be None only with return_states=True)')
    if C is not None and tuple(C.shape) != expected:
        raise ValueError(f"selective_scan: C must have B's shape {expected}, got {tuple(C.shape)}")
    if groups == 0 or channels % groups:
        raise ValueError(f"selective_scan: K*D={channels} channels do not split into K={groups} groups of B/C")
    for name, t in (('D', D), ('delta_bias', delta_bias)):
        if t is not None and tuple(t.shape) != (channels,):
            raise ValueError(f"selective_scan: {name} must be (K*D={channels},), got {tuple(t.shape)}")
    if z is not None and z.shape != u.shape:
        raise ValueError(f"selective_scan: z must have u's shape {tuple(u.shape)}, got {tuple(z.shape)}")
    return ScanShapes(batch, channels, length, d_state, groups, grouped)
