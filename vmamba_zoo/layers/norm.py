"""``LayerNorm``: ``nn.LayerNorm`` over the last dim through the zoo's ``layer_norm`` op.

A drop-in for ``nn.LayerNorm`` (a subclass: same parameters, state_dict keys, init, ``isinstance`` checks) that
runs ``vmamba_zoo.ops.layer_norm``: the Triton kernels for large CUDA maps, ``F.layer_norm`` otherwise; the
model does not know which.

One deliberate difference, under autocast only: the result is returned in the autocast dtype (bf16 / fp16)
instead of fp32. Statistics and arithmetic stay fp32, as with autocast's own fp32 LayerNorm; only the single
rounding of the output moves from the consumer into the norm. Every norm in the zoo feeds a Linear / conv (or
the pooled head), directly or through an element-wise gate / activation, which autocast would run on that same
dtype before the GEMM; for a direct consumer the numbers are identical, and the fp32 map and the cast pass are
never written (apex's and flash-attn's fused norms behave so). Outside autocast the result has the input's
dtype, as ``nn.LayerNorm``.

``LayerNorm2d``: the same over the channels of an NCHW map (timm's ``LayerNorm2d``: permute, norm, permute back).
"""
import torch
from torch import nn

from ..ops.layer_norm import layer_norm

__all__ = ['LayerNorm', 'LayerNorm2d']


class LayerNorm(nn.LayerNorm):
    """``nn.LayerNorm(normalized_shape, eps, elementwise_affine, bias)`` over the last dim only."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 device=None, dtype=None):
        super().__init__(normalized_shape, eps=eps, elementwise_affine=elementwise_affine, bias=bias,
                         device=device, dtype=dtype)
        if len(self.normalized_shape) != 1:
            raise ValueError(f'LayerNorm: normalises the last dim only, got normalized_shape '
                             f'{tuple(self.normalized_shape)}')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1:] != self.normalized_shape:
            raise ValueError(f'LayerNorm({self.normalized_shape[0]}): the last dim of the input must be '
                             f'{self.normalized_shape[0]}, got input shape {tuple(x.shape)}')
        out_dtype = None
        device_type = x.device.type
        if x.is_floating_point() and torch.is_autocast_enabled(device_type):
            out_dtype = torch.get_autocast_dtype(device_type)
        return layer_norm(x, self.weight, self.bias, self.eps, out_dtype=out_dtype)


class LayerNorm2d(LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map; parameters and keys as timm's ``LayerNorm2d``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f'LayerNorm2d: expects a (B, C, H, W) map, got shape {tuple(x.shape)}')
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
