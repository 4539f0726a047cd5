"""vmamba_zoo: vision-Mamba backbones behind one timm-style API.

Importing this package registers every zoo model with timm, so ``timm.create_model('vmamba_tiny')`` works.
"""
__version__ = "0.1.0"

from . import models  # noqa: F401  (registers the models with timm)
from .models import list_models

__all__ = ['list_models', '__version__']
