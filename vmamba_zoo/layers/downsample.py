"""Between-stage downsampling layers. NHWC in, NHWC out, halving H and W (odd sizes round up)."""
import torch
import torch.nn.functional as F
from torch import nn
from timm.layers import ConvNormAct

from .norm import LayerNorm


class ConvDownsample(nn.Module):
    """Conv(C, C_out, 3, stride 2, pad 1) -> LayerNorm: VMamba's ``DOWNSAMPLE: v3``."""

    def __init__(self, dim: int, out_dim: int, norm_eps: float = 1e-5):
        super().__init__()
        self.conv = nn.Conv2d(dim, out_dim, kernel_size=3, stride=2, padding=1)
        self.norm = LayerNorm(out_dim, eps=norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.norm(x)


class PatchMerging(nn.Module):
    """Swin patch merging: concat each 2x2 neighbourhood -> LayerNorm(4C) -> Linear(4C, C_out, no bias).

    Concatenation order (0,0), (1,0), (0,1), (1,1) as in VMamba's ``PatchMerging2D`` (``DOWNSAMPLE: v1``);
    odd sizes are zero-padded at the bottom/right first.
    """

    def __init__(self, dim: int, out_dim: int, norm_eps: float = 1e-5):
        super().__init__()
        self.norm = LayerNorm(4 * dim, eps=norm_eps)
        self.reduction = nn.Linear(4 * dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[1:3]
        if H % 2 or W % 2:
            x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class InvertedBottleneckDownsample(nn.Module):
    """1x1 expand + ReLU -> depth-wise 3x3 stride 2 + ReLU -> 1x1 project + BN (MLLA's ``PatchMerging``).

    Official layout (YuHengsss/VSSD ``classification/models/mamba_util.py`` ``PatchMerging`` with ``ratio=4``,
    the default ``SIMPLE_DOWNSAMPLE: False``; Spatial-Mamba's downsample is the same): hidden = ratio * out_dim
    channels, every conv with bias, no norm after the first two. Odd sizes round up (padding 1).
    """

    def __init__(self, dim: int, out_dim: int, ratio: float = 4.0):
        super().__init__()
        hidden = int(out_dim * ratio)
        self.expand = nn.Conv2d(dim, hidden, kernel_size=1)
        self.dw = nn.Conv2d(hidden, hidden, kernel_size=3, stride=2, padding=1, groups=hidden)
        self.act = nn.ReLU()
        self.project = ConvNormAct(hidden, out_dim, 1, bias=True, apply_act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.expand(x.permute(0, 3, 1, 2)))
        x = self.act(self.dw(x))
        return self.project(x).permute(0, 2, 3, 1)
