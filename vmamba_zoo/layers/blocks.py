"""Residual blocks built from the shared mixers."""
from typing import Union

import torch
from torch import nn
from timm.layers import Mlp

from ..scans import ScanStrategy
from .drop import ResidualDropPath
from .norm import LayerNorm
from .ss2d import SS2D


class VSSBlock(nn.Module):
    """VMamba block on NHWC maps: x + DP(SS2D(LN(x))), then x + DP(MLP(LN(x))) when mlp_ratio > 0.

    Pre-norm layout of MzeroMiko/VMamba ``VSSBlock._forward`` (post_norm=False).
    """

    def __init__(self, dim: int, drop_path: float = 0., mlp_ratio: float = 4.0, d_state: int = 1,
                 ssm_ratio: float = 1.0, dt_rank: Union[int, str] = 'auto', d_conv: int = 3, conv_bias: bool = False,
                 gate: bool = False, scan: Union[str, ScanStrategy] = 'cross', norm_eps: float = 1e-5):
        super().__init__()
        self.norm = LayerNorm(dim, eps=norm_eps)
        self.mixer = SS2D(dim, d_state=d_state, ssm_ratio=ssm_ratio, dt_rank=dt_rank, d_conv=d_conv,
                          conv_bias=conv_bias, gate=gate, scan=scan, norm_eps=norm_eps)
        self.drop_path = ResidualDropPath(drop_path)  # x + DropPath(branch) in one pass
        if mlp_ratio > 0:
            self.norm2 = LayerNorm(dim, eps=norm_eps)
            self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)
        else:
            self.norm2 = self.mlp = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop_path.add(x, self.mixer(self.norm(x)))
        if self.mlp is not None:
            x = self.drop_path.add(x, self.mlp(self.norm2(x)))
        return x
