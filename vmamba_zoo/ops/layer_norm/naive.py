"""LayerNorm over the last dimension, written out: the reference every other path is tested against.

    y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias      (biased variance, over the last dim)

Statistics and arithmetic in fp32 (float64 for float64 inputs), whatever the input dtype; the result is cast
once to ``out_dtype`` (default: x's dtype). This is ``torch.nn.LayerNorm``'s definition; the explicit formula
(no ``F.layer_norm``) keeps the reference independent of the kernels under test.
"""
from typing import Optional

import torch

from .common import check_inputs

__all__ = ['layer_norm_naive']


def layer_norm_naive(x: torch.Tensor, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor],
                     eps: float = 1e-5, out_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    check_inputs(x, weight, bias)
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    xf = x.to(dtype)
    mean = xf.mean(-1, keepdim=True)
    centred = xf - mean
    var = (centred * centred).mean(-1, keepdim=True)
    y = centred * torch.rsqrt(var + eps)
    if weight is not None:
        y = y * weight.to(dtype)
    if bias is not None:
        y = y + bias.to(dtype)
    return y.to(out_dtype or x.dtype)
