"""Input checking shared by every LayerNorm backend, so all of them reject bad input the same way."""
from typing import Optional

import torch


def check_inputs(x: torch.Tensor, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor]) -> int:
    """Validate the layer_norm contract (normalise over the last dim); returns that dim's size."""
    if x.dim() < 1:
        raise ValueError('layer_norm: x must have at least one dimension (the one normalised)')
    features = int(x.shape[-1])
    for name, t in (('weight', weight), ('bias', bias)):
        if t is not None and tuple(t.shape) != (features,):
            raise ValueError(f'layer_norm: {name} must be ({features},) to match the last dim of x '
                             f'{tuple(x.shape)}, got {tuple(t.shape)}')
    if not x.is_floating_point():
        raise ValueError(f'layer_norm: x must be a floating-point tensor, got {x.dtype}')
    return features
