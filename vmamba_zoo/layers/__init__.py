"""Building blocks shared by every family (one implementation each; families import from here)."""
from .checks import check_image_input
from .stem import ConvStem, PatchEmbed, ResidualConvStem
from .downsample import ConvDownsample, InvertedBottleneckDownsample, PatchMerging
from .ss2d import SS2D, init_dt_projection, init_A_log, init_D
from .blocks import VSSBlock
from .mamba import MambaMixer
from .ffn import ConvFFN, LinearSqueezeExcite

__all__ = [
    'check_image_input', 'ConvStem', 'PatchEmbed', 'ConvDownsample', 'PatchMerging', 'SS2D', 'VSSBlock',
    'init_dt_projection', 'init_A_log', 'init_D',
]
__all__ += ['MambaMixer']
__all__ += ['ConvFFN', 'LinearSqueezeExcite']
from .attention import Attention  # noqa: E402  (timm's; importing registers its FLOP handle)
__all__ += ['ResidualConvStem', 'InvertedBottleneckDownsample', 'Attention']
from .backbone import HierarchicalBackbone, init_linear_trunc_normal  # noqa: E402
__all__ += ['HierarchicalBackbone', 'init_linear_trunc_normal']
