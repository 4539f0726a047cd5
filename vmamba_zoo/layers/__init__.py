"""Building blocks shared by every family (one implementation each; families import from here)."""
from .checks import check_image_input
from .stem import ConvStem, PatchEmbed
from .downsample import ConvDownsample, PatchMerging
from .ss2d import SS2D, init_dt_projection, init_A_log, init_D
from .blocks import VSSBlock
from .mamba import MambaMixer

__all__ = [
    'check_image_input', 'ConvStem', 'PatchEmbed', 'ConvDownsample', 'PatchMerging', 'SS2D', 'VSSBlock',
    'init_dt_projection', 'init_A_log', 'init_D',
]
__all__ += ['MambaMixer']
