"""MambaMixer: the Mamba (S6) token mixer of a 1D sequence, run over K scan directions with one parameter set each.

Data flow (state-spaces/mamba ``mamba_ssm/modules/mamba_simple.py`` ``Mamba.forward``; hustvl/Vim's copy in
``mamba-1p1p1/mamba_ssm/modules/mamba_simple.py`` adds the ``bimamba_type="v2"`` backward branch):

    in_proj -> (x, z) -> scan strategy gives K orderings of x -> per-direction causal depth-wise conv1d -> SiLU
    -> per-direction x_proj (dt, B, C) and dt_proj -> ONE grouped selective_scan over the K directions
    -> merge back to token order (sum over directions; / K with ``merge='mean'``) -> * SiLU(z) -> out_proj

Vim's v2 mixer is K=2 (``bidirectional``): the backward branch reads ``xz.flip(-1)`` through its own conv1d_b,
x_proj_b, dt_proj_b, A_b_log, D_b and its output is flipped back and added, then divided by 2 (``if_divide_out``).
The per-direction z gate of the official kernel (``out * silu(z)`` inside each branch) equals one gate after the
merge because the gate is element-wise and every direction reads the same z.

Parameters are stacked over directions so the K directions are one call each: ``conv1d`` (K*D, 1, d_conv) with
K*D groups, ``x_proj_weight`` (K, R + 2N, D), ``dt_projs_weight`` (K, D, R), ``dt_projs_bias`` (K, D),
``A_logs`` (K*D, N), ``Ds`` (K*D). Direction k owns rows ``k*D:(k+1)*D``. Initialisation is Mamba's (Linear
default init for in_proj / x_proj / out_proj, the dt / S4D-real / ones init of ``ss2d.py``).
"""
import math
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import selective_scan
from ..scans import ScanStrategy, get_scan, merge, scan
from .ss2d import init_A_log, init_D, init_dt_projection

__all__ = ['MambaMixer']


class MambaMixer(nn.Module):
    """Mamba mixer over K directions of a token sequence (B, L, dim) -> (B, L, dim).

    Args:
        dim: model width (in and out).
        d_state: SSM state size N.
        d_conv: causal depth-wise conv kernel (per direction); < 2 disables the conv.
        expand: d_inner = expand * dim.
        dt_rank: rank R of the dt projection; 'auto' = ceil(dim / 16) (Mamba's rule, of ``dim``).
        conv_bias: bias of the depth-wise conv (Mamba: True).
        proj_bias: bias of in_proj / out_proj (Mamba: False).
        scan: default scan strategy (name or instance); K = its ``num_directions``. ``forward`` may be given another
            strategy with the same K (e.g. one built for a token layout, as Vim does for its class token).
        merge: 'mean' divides the merged directions by K (Vim ``if_divide_out=True``), 'sum' adds them.
        dt_min, dt_max, dt_init_floor: Mamba's dt initialisation range.
    """

    def __init__(self, dim: int, d_state: int = 16, d_conv: int = 4, expand: float = 2,
                 dt_rank: Union[int, str] = 'auto', conv_bias: bool = True, proj_bias: bool = False, scan: Union[str, ScanStrategy] = 'unidirectional',
                 merge: str = 'mean', dt_min: float = 1e-3, dt_max: float = 0.1, dt_init_floor: float = 1e-4):
        super().__init__()
        if merge not in ('mean', 'sum'):
            raise ValueError(f"MambaMixer: merge must be 'mean' or 'sum', got {merge!r}")
        self.scan_strategy = get_scan(scan)
        if self.scan_strategy.composite:
            raise ValueError(f"MambaMixer scans one sequence; scan strategy '{self.scan_strategy.name}' is composite")
        self.num_directions = K = self.scan_strategy.num_directions
        self.d_inner = D = int(expand * dim)
        self.d_state = N = int(d_state)
        self.dt_rank = R = int(math.ceil(dim / 16) if dt_rank == 'auto' else dt_rank)
        self.merge_mode = merge

        self.in_proj = nn.Linear(dim, 2 * D, bias=proj_bias)
        self.conv1d = nn.Conv1d(K * D, K * D, d_conv, groups=K * D, padding=d_conv - 1, bias=conv_bias) \
            if d_conv > 1 else None
        self.act = nn.SiLU()
        # K stacked nn.Linear(D, R + 2N, bias=False): kaiming-uniform(a=sqrt(5)) = U(+-1/sqrt(D))
        bound = 1.0 / math.sqrt(D)
        self.x_proj_weight = nn.Parameter(torch.empty(K, R + 2 * N, D).uniform_(-bound, bound))
        dt_w, dt_b = init_dt_projection(K, D, R, dt_min=dt_min, dt_max=dt_max, dt_init_floor=dt_init_floor)
        self.dt_projs_weight = nn.Parameter(dt_w)
        self.dt_projs_bias = nn.Parameter(dt_b)
        self.A_logs = nn.Parameter(init_A_log(K, D, N))
        self.Ds = nn.Parameter(init_D(K, D))
        self.out_proj = nn.Linear(D, dim, bias=proj_bias)

    def forward(self, x: torch.Tensor, size: Optional[Sequence[int]] = None,
                strategy: Optional[ScanStrategy] = None) -> torch.Tensor:
        """x: (B, L, dim) tokens laid out row-major over a map of ``size`` (H, W) (default (1, L): a plain
        sequence). ``strategy`` overrides the default scan (same number of directions)."""
        Bsz, L, _ = x.shape
        strategy = self.scan_strategy if strategy is None else strategy
        K, D, N, R = self.num_directions, self.d_inner, self.d_state, self.dt_rank
        if strategy.num_directions != K:
            raise ValueError(f"MambaMixer has parameters for {K} directions; scan strategy "
                             f"'{strategy.name}' has {strategy.num_directions}")
        H, W = (1, L) if size is None else size
        if H * W != L:
            raise ValueError(f'MambaMixer: size {tuple(size)} does not hold the {L} tokens of x')

        x, z = self.in_proj(x).chunk(2, dim=-1)  # (B, L, D) each
        xs = scan(x.transpose(1, 2).reshape(Bsz, D, H, W), strategy)  # (B, K, D, S)
        S = xs.shape[-1]
        xs = xs.reshape(Bsz, K * D, S)
        if self.conv1d is not None:
            xs = self.conv1d(xs)[..., :S]  # causal: left padding d_conv - 1, keep the first S outputs
        xs = self.act(xs)
        # One linear map per direction as a batched matmul (x_proj, then dt_proj on the first R rows).
        x_dbl = torch.matmul(self.x_proj_weight, xs.view(Bsz, K, D, S))  # (B, K, R + 2N, S)
        dts, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=2)
        dts = torch.matmul(self.dt_projs_weight, dts).view(Bsz, K * D, S)
        ys = selective_scan(
            xs, dts, -torch.exp(self.A_logs.float()), Bs, Cs,
            D=self.Ds.float(), delta_bias=self.dt_projs_bias.reshape(-1).float(), delta_softplus=True,
        )
        y = merge(ys.view(Bsz, K, D, S), strategy, (H, W)).reshape(Bsz, D, L).transpose(1, 2)  # (B, L, D)
        if self.merge_mode == 'mean' and K > 1:
            y = y / K
        y = y * F.silu(z)
        return self.out_proj(y)
