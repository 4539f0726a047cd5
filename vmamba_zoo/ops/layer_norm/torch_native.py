"""LayerNorm through ``torch.nn.functional.layer_norm``: the default off CUDA (CPU: oneDNN / ATen kernels).

Same contract as ``naive.py``. When ``out_dtype`` is x's dtype this is exactly ``nn.LayerNorm``'s call (same
kernel, same FLOP count under fvcore's trace); otherwise the fp32 result is cast once.
"""
from typing import Optional

import torch
import torch.nn.functional as F

from .common import check_inputs

__all__ = ['layer_norm_torch']


def layer_norm_torch(x: torch.Tensor, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor],
                     eps: float = 1e-5, out_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    features = check_inputs(x, weight, bias)
    y = F.layer_norm(x, (features,), weight, bias, eps)
    return y if out_dtype is None or y.dtype == out_dtype else y.to(out_dtype)
