"""One module per family; importing each registers its models with timm."""
from . import vmamba
from . import plainmamba
from . import efficientvmamba
from . import vim
from . import mambaout
from . import vssd
from . import msvmamba
from . import spatialmamba
from ._registry import list_models

__all__ = ['list_models']
