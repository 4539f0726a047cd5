"""Standard multi-head self-attention for hybrid models, and its FLOP count.

The attention itself is timm's ``timm.layers.Attention`` (fused ``scaled_dot_product_attention`` when available):
its layout is exactly the "standard" attention of VSSD's last stage (YuHengsss/VSSD
``classification/models/mamba2.py`` ``StandardAttention``: one bias-free Linear to q, k, v laid out as
(3, heads, head_dim), scale head_dim^-0.5, softmax, Linear out with bias), so nothing is rewritten here; checkpoints
convert by renaming ``to_qkv`` -> ``qkv`` and ``to_out`` -> ``proj``.

fvcore has no handle for ``aten::scaled_dot_product_attention`` and would count the fused path as zero; the handle
registered here counts its two matmuls (Q K^T and attn V) as multiply-adds, which is what fvcore's einsum handle
counts for the official ``einsum('bhid,bhjd->bhij')`` / ``einsum('bhij,bhjd->bhid')``. Softmax and scaling are not
counted, as there.
"""
from math import prod

from timm.layers import Attention

from ..flops import register_flop_handle

__all__ = ['Attention', 'sdpa_flop_jit']


def sdpa_flop_jit(inputs, outputs) -> int:
    """MACs of scaled_dot_product_attention(q (..., L, d), k (..., S, d), v (..., S, dv)): ... * L * S * (d + dv)."""
    q, k, v = (inputs[i].type().sizes() for i in range(3))
    batch = prod(q[:-2])
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


register_flop_handle('aten::scaled_dot_product_attention', sdpa_flop_jit)
