"""``ResidualDropPath``: ``residual + DropPath(y)`` as one element-wise pass.

timm's ``DropPath`` multiplies the branch by the per-sample mask (one pass over the map) and the block adds the
residual (another); ``torch.addcmul`` does both in one, with the same mask (drawn and scaled exactly as timm
draws it) and one rounding instead of two. A subclass of timm's ``DropPath``: same ``drop_prob`` /
``scale_by_keep``, same ``isinstance`` checks, and ``module(y)`` alone still is timm's drop path. Every family's
residual blocks use it (also at rate 0, where ``add`` is the plain sum, instead of an ``nn.Identity``).
"""
import torch
from timm.layers import DropPath

__all__ = ['ResidualDropPath']


class ResidualDropPath(DropPath):
    """``add(residual, y)`` = ``residual + DropPath(drop_prob)(y)``; a plain sum outside training or at p = 0."""

    def add(self, residual: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0. or not self.training:
            return residual + y
        keep_prob = 1 - self.drop_prob
        mask = y.new_empty((y.shape[0],) + (1,) * (y.ndim - 1)).bernoulli_(keep_prob)
        if keep_prob > 0.0 and self.scale_by_keep:
            mask.div_(keep_prob)
        return torch.addcmul(residual, y, mask)
