"""Feed-forward and channel-gating blocks that timm has no exact match for.

* ``ConvFFN``: the convolutional FFN of MSVMamba (YuHengsss/MSVMamba ``classification/models/utils.py``
  ``ConvFFN`` on master, ``classification/models/csms6s.py`` on the v2 branch): 1x1 conv up -> dropout ->
  x + depth-wise 3x3 conv(x) -> GELU -> 1x1 conv down -> dropout. The residual around the depth-wise conv is what
  sets it apart from timm's ``ConvMlp`` / ``GlobalResponseNormMlp``.
* ``LinearSqueezeExcite``: squeeze-and-excitation with two bias-free Linear layers (MSVMamba ``SEModule``). timm's
  ``SqueezeExcite`` / ``SEModule`` use 1x1 convolutions with bias, so their parameters differ.

Both work on NCHW maps; a channels-last model passes ``x.permute(0, 3, 1, 2)`` (a view: the convolutions run on the
channels-last memory directly).
"""
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ['ConvFFN', 'LinearSqueezeExcite']


class ConvFFN(nn.Module):
    """x (B, C, H, W) -> (B, C, H, W): fc1 (1x1, bias) -> drop -> h + dwconv3x3(h) -> GELU -> fc2 (1x1) -> drop.

    Parameter names (``linear1``, ``dwc``, ``linear2``) are MSVMamba's, so its checkpoints load without renames.

    Args:
        dim: channels in and out.
        expansion: hidden channels = expansion * dim (MSVMamba: 2 on master, ``CONV_FFN_RATIO`` 4 for MSVMambav3).
        drop: dropout after each 1x1 conv (MSVMamba ``FFN_DROPOUT``; 0 in every released config).
        kernel_size: of the depth-wise conv.
    """

    def __init__(self, dim: int, expansion: int = 2, drop: float = 0., kernel_size: int = 3):
        super().__init__()
        hidden = int(dim * expansion)
        self.linear1 = nn.Conv2d(dim, hidden, 1)
        self.dwc = nn.Conv2d(hidden, hidden, kernel_size, padding=kernel_size // 2, groups=hidden)
        self.act = nn.GELU()
        self.linear2 = nn.Conv2d(hidden, dim, 1)
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.linear1(x))
        x = self.act(x + self.dwc(x))
        return self.drop(self.linear2(x))


class LinearSqueezeExcite(nn.Module):
    """x (B, C, H, W) -> x * sigmoid(fc2(ReLU(fc1(avgpool(x))))), fc1 / fc2 bias-free Linear layers.

    Args:
        dim: channels.
        reduction: hidden channels = dim // reduction (MSVMamba: 8).
    """

    def __init__(self, dim: int, reduction: int = 8):
        super().__init__()
        self.fc1 = nn.Linear(dim, dim // reduction, bias=False)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(dim // reduction, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # adaptive_avg_pool2d (not .mean) so fvcore counts the pooling like the official model's nn.AdaptiveAvgPool2d
        s = F.adaptive_avg_pool2d(x, 1).flatten(1)
        s = torch.sigmoid(self.fc2(self.act(self.fc1(s))))
        return x * s[:, :, None, None]
