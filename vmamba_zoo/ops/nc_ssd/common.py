"""Input checking shared by every non-causal SSD backend, so all of them reject bad input the same way."""
from typing import NamedTuple, Optional

import torch


class NCSSDShapes(NamedTuple):
    batch: int
    length: int
    nheads: int
    headdim: int
    ngroups: int  # B/C groups; head h reads group h % ngroups (VSSD's layout)
    d_state: int


def compute_dtype(*tensors: Optional[torch.Tensor]) -> torch.dtype:
    """fp32 state/accumulation for fp32/bf16/fp16 inputs; float64 when any input is float64 (gradcheck)."""
    if any(t is not None and t.dtype == torch.float64 for t in tensors):
        return torch.float64
    return torch.float32


def check_inputs(x, dt, A, B, C, D=None) -> NCSSDShapes:
    """Validate the nc_ssd contract and return the sizes; raises one ValueError naming the problem."""
    if x.dim() != 4:
        raise ValueError(f"nc_ssd: x must be (batch, L, nheads, headdim), got shape {tuple(x.shape)}")
    batch, length, nheads, headdim = (int(s) for s in x.shape)  # plain ints even while tracing
    if tuple(dt.shape) != (batch, length, nheads):
        raise ValueError(f"nc_ssd: dt must be (batch, L, nheads) = {(batch, length, nheads)}, "
                         f"got {tuple(dt.shape)}")
    if tuple(A.shape) != (nheads,):
        raise ValueError(f"nc_ssd: A must be (nheads={nheads},), got shape {tuple(A.shape)}")
    if B.dim() != 4 or tuple(B.shape[:2]) != (batch, length):
        raise ValueError(f"nc_ssd: B must be (batch={batch}, L={length}, ngroups, d_state), got {tuple(B.shape)}")
    ngroups, d_state = int(B.shape[2]), int(B.shape[3])
    if tuple(C.shape) != tuple(B.shape):
        raise ValueError(f"nc_ssd: C must have B's shape {tuple(B.shape)}, got {tuple(C.shape)}")
    if ngroups == 0 or nheads % ngroups:
        raise ValueError(f"nc_ssd: nheads={nheads} do not split into ngroups={ngroups} groups of B/C")
    if D is not None and tuple(D.shape) != (nheads,):
        raise ValueError(f"nc_ssd: D must be (nheads={nheads},), got shape {tuple(D.shape)}")
    return NCSSDShapes(batch, length, nheads, headdim, ngroups, d_state)
