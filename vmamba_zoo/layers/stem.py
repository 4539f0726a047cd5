"""Patch embeddings (stems). Input NCHW image, output NHWC tokens map."""
import torch
from torch import nn
from timm.layers import ConvNormAct

from .checks import check_image_input
from .norm import LayerNorm, LayerNorm2d


class ConvStem(nn.Module):
    """Two stride-2 3x3 convolutions with LayerNorm and GELU: VMamba's ``PATCHEMBED: v2``.

    Official layout (MzeroMiko/VMamba classification/models/vmamba.py ``_make_patch_embed_v2``):
    Conv(in, C/2, 3, s2, p1) -> LN2d -> GELU -> Conv(C/2, C, 3, s2, p1) -> LN2d.
    ``min_input_size`` is checked here so both the classifier and feature extractors validate input.
    """

    def __init__(self, in_chans: int, embed_dim: int, norm_eps: float = 1e-5, min_input_size: int = 32):
        super().__init__()
        self.in_chans = in_chans
        self.min_input_size = min_input_size
        self.conv1 = nn.Conv2d(in_chans, embed_dim // 2, kernel_size=3, stride=2, padding=1)
        self.norm1 = LayerNorm2d(embed_dim // 2, eps=norm_eps)
        self.act = nn.GELU()
        self.conv2 = nn.Conv2d(embed_dim // 2, embed_dim, kernel_size=3, stride=2, padding=1)
        self.norm2 = LayerNorm(embed_dim, eps=norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_input(x, self.in_chans, self.min_input_size, type(self).__name__)
        x = self.act(self.norm1(self.conv1(x)))
        x = self.conv2(x).permute(0, 2, 3, 1)
        return self.norm2(x)


class PatchEmbed(nn.Module):
    """Non-overlapping patch x patch convolution followed by LayerNorm (VMamba ``PATCHEMBED: v1``, Swin-style)."""

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int = 4, norm_eps: float = 1e-5,
                 min_input_size: int = 32):
        super().__init__()
        self.in_chans = in_chans
        self.min_input_size = min_input_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = LayerNorm(embed_dim, eps=norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_input(x, self.in_chans, self.min_input_size, type(self).__name__)
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class ResidualConvStem(nn.Module):
    """Stride-4 BatchNorm/ReLU conv stem with a residual pair of 3x3 convs (MLLA's ``Stem``, used by VSSD).

    Official layout (YuHengsss/VSSD ``classification/models/mamba_util.py`` ``Stem``; the same module is
    Spatial-Mamba's stem): ``conv1`` = 3x3 s2 to C/2 + BN + ReLU; ``conv2`` = 3x3 + BN + ReLU, 3x3 + BN, added to
    its input; ``conv3`` = 3x3 s2 to 4C + BN + ReLU, 1x1 to C + BN. All convs bias-free.
    Submodule names follow the official ones (timm ``ConvNormAct`` calls the norm ``bn``), so checkpoints convert
    by renaming ``.norm.`` to ``.bn.``.
    """

    def __init__(self, in_chans: int, embed_dim: int, min_input_size: int = 32):
        super().__init__()
        self.in_chans = in_chans
        self.min_input_size = min_input_size
        mid = embed_dim // 2
        self.conv1 = ConvNormAct(in_chans, mid, 3, stride=2, padding=1)
        self.conv2 = nn.Sequential(
            ConvNormAct(mid, mid, 3, padding=1),
            ConvNormAct(mid, mid, 3, padding=1, apply_act=False),
        )
        self.conv3 = nn.Sequential(
            ConvNormAct(mid, embed_dim * 4, 3, stride=2, padding=1),
            ConvNormAct(embed_dim * 4, embed_dim, 1, apply_act=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_input(x, self.in_chans, self.min_input_size, type(self).__name__)
        x = self.conv1(x)
        x = self.conv2(x) + x
        return self.conv3(x).permute(0, 2, 3, 1)
