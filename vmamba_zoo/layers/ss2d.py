"""SS2D: the 2D selective-scan mixer of VMamba, parametrised by a scan strategy.

Data flow (MzeroMiko/VMamba classification/models/vmamba.py ``SS2Dv2.forwardv2`` / ``forward_corev2``):
in_proj -> (optional z gate split) -> depth-wise conv -> SiLU -> scan strategy gives K sequences ->
per-direction x_proj (dt, B, C) and dt_proj -> selective_scan -> merge back to 2D -> LayerNorm ->
(optional * SiLU(z)) -> out_proj.

Parameter names and shapes follow the official module so checkpoints convert by renaming only:
``x_proj_weight`` (K, R + 2N, D_inner), ``dt_projs_weight`` (K, D_inner, R), ``dt_projs_bias`` (K, D_inner),
``A_logs`` (K * D_inner, N), ``Ds`` (K * D_inner). K comes from the scan strategy, so a non-default
``scan=`` changes K and therefore these shapes.
"""
import math
from typing import Union

import torch
from torch import nn

from ..ops.scan2d import selective_scan_2d
from ..scans import ScanStrategy, get_scan
from .norm import LayerNorm


def init_dt_projection(k_group: int, d_inner: int, dt_rank: int, dt_min: float = 1e-3, dt_max: float = 0.1,
                       dt_init_floor: float = 1e-4, dt_scale: float = 1.0):
    """Mamba's dt init: weight ~ U(+-dt_rank^-0.5), bias = softplus^-1(dt) with dt log-uniform in [dt_min, dt_max].

    Returns (weight (K, D, R), bias (K, D)) tensors.
    """
    std = dt_rank ** -0.5 * dt_scale
    weight = torch.empty(k_group, d_inner, dt_rank).uniform_(-std, std)
    dt = torch.exp(torch.rand(k_group, d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    dt = dt.clamp(min=dt_init_floor)
    bias = dt + torch.log(-torch.expm1(-dt))  # inverse softplus
    return weight, bias


def init_A_log(k_group: int, d_inner: int, d_state: int) -> torch.Tensor:
    """S4D-real init: A = -(1..N) for every channel; stored as log(-A), shape (K * D, N)."""
    A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(k_group * d_inner, 1)
    return torch.log(A)


def init_D(k_group: int, d_inner: int) -> torch.Tensor:
    return torch.ones(k_group * d_inner)


class SS2D(nn.Module):
    """2D selective-scan mixer on NHWC maps.

    Args:
        dim: channels in and out.
        d_state: SSM state size N.
        ssm_ratio: d_inner = ssm_ratio * dim.
        dt_rank: rank of the dt projection; 'auto' = ceil(dim / 16) (of ``dim``, not d_inner, as the official code).
        d_conv: depth-wise conv kernel; < 2 disables the conv.
        conv_bias: bias of the depth-wise conv.
        gate: Vanilla-VMamba (v0) z gate: in_proj doubles its output, y = LN(y) * SiLU(z). Off for VMamba v2 (``_noz``).
        scan: scan strategy name or instance (see ``vmamba_zoo.scans``); K directions come from it.
    """

    def __init__(self, dim: int, d_state: int = 1, ssm_ratio: float = 1.0, dt_rank: Union[int, str] = 'auto',
                 d_conv: int = 3, conv_bias: bool = False, gate: bool = False, scan: Union[str, ScanStrategy] = 'cross',
                 proj_bias: bool = False, norm_eps: float = 1e-5, drop: float = 0.):
        super().__init__()
        self.scan_strategy = get_scan(scan)
        if self.scan_strategy.composite:
            raise ValueError(f"SS2D scans one map; scan strategy '{self.scan_strategy.name}' is composite "
                             '(several resolutions) and needs a model that builds its extra maps (see its docs)')
        self.k_group = K = self.scan_strategy.num_directions
        self.d_inner = D = int(ssm_ratio * dim)
        self.d_state = N = int(d_state)
        self.dt_rank = R = int(math.ceil(dim / 16) if dt_rank == 'auto' else dt_rank)
        self.gate = gate

        self.in_proj = nn.Linear(dim, 2 * D if gate else D, bias=proj_bias)
        self.act = nn.SiLU()
        self.conv2d = nn.Conv2d(D, D, d_conv, padding=(d_conv - 1) // 2, groups=D, bias=conv_bias) if d_conv > 1 else None
        # Per-direction projections, initialised like K stacked nn.Linear(D, R + 2N) (kaiming-uniform a=sqrt(5)).
        bound = 1.0 / math.sqrt(D)
        self.x_proj_weight = nn.Parameter(torch.empty(K, R + 2 * N, D).uniform_(-bound, bound))
        dt_w, dt_b = init_dt_projection(K, D, R)
        self.dt_projs_weight = nn.Parameter(dt_w)
        self.dt_projs_bias = nn.Parameter(dt_b)
        self.A_logs = nn.Parameter(init_A_log(K, D, N))
        self.Ds = nn.Parameter(init_D(K, D))
        self.out_norm = LayerNorm(D, eps=norm_eps)
        self.out_proj = nn.Linear(D, dim, bias=proj_bias)
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, H, W, dim) -> (B, H, W, dim)."""
        x = self.in_proj(x)
        z = None
        if self.gate:
            x, z = x.chunk(2, dim=-1)
            z = self.act(z)
        x = x.permute(0, 3, 1, 2)  # NCHW view of the NHWC data: depth-wise conv and the scan read it in place
        if self.conv2d is not None:
            x = self.conv2d(x)
        x = self.act(x)
        y = self.forward_core(x)
        if z is not None:
            y = y * z
        return self.drop(self.out_proj(y))

    def forward_core(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, D, H, W) -> LayerNorm'ed merged scan output (B, H, W, D).

        scan -> per-direction x_proj / dt_proj -> selective_scan -> merge, as one op: on CUDA it runs as the fused
        2D-scan kernel (the K re-ordered copies are never written), elsewhere as the plain PyTorch composition
        (``vmamba_zoo.ops.scan2d``; the op picks, the layer never branches on the device).
        """
        # out_dtype: the norm's parameter dtype, what autocast would feed its fp32 LayerNorm anyway; the fused
        # path then hands on its fp32 sum of the K directions without a rounding and a cast pass each way
        y = selective_scan_2d(
            x, self.scan_strategy, self.x_proj_weight, self.dt_projs_weight, -torch.exp(self.A_logs.float()),
            D=self.Ds.float(), delta_bias=self.dt_projs_bias.reshape(-1).float(), delta_softplus=True,
            out_dtype=self.out_norm.weight.dtype,
        )  # (B, D, H, W)
        return self.out_norm(y.permute(0, 2, 3, 1)).to(x.dtype)
