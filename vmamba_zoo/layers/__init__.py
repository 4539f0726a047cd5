"""Building blocks shared by every family (one implementation each; families import from here)."""
from .checks import check_image_input
from .norm import LayerNorm, LayerNorm2d
from .stem import ConvStem, PatchEmbed, ResidualConvStem
from .downsample import ConvDownsample, InvertedBottleneckDownsample, PatchMerging
from .ss2d import SS2D, init_dt_projection, init_A_log, init_D
from .drop import ResidualDropPath
from .blocks import VSSBlock
from .mamba import MambaMixer
from .ffn import ConvFFN, LinearSqueezeExcite
from .attention import Attention  # timm's; importing registers its FLOP handle
from .backbone import HierarchicalBackbone, PlainBackbone, Stage, init_linear_trunc_normal

__all__ = [
    'check_image_input', 'LayerNorm', 'LayerNorm2d', 'ConvStem', 'PatchEmbed', 'ResidualConvStem', 'ConvDownsample',
    'InvertedBottleneckDownsample', 'PatchMerging', 'SS2D', 'ResidualDropPath', 'VSSBlock', 'init_dt_projection', 'init_A_log',
    'init_D', 'MambaMixer', 'ConvFFN', 'LinearSqueezeExcite', 'Attention', 'HierarchicalBackbone', 'PlainBackbone', 'Stage',
    'init_linear_trunc_normal',
]
