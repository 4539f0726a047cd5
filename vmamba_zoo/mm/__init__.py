"""mmdet / mmseg backbones for every zoo family (``custom_imports=dict(imports=['vmamba_zoo.mm'])``).

Importing this module registers, in mmdet's and mmseg's ``MODELS`` (whichever is installed), one backbone class
per family -- ``VMambaBackbone``, ``VimBackbone``, ... (see ``FAMILY_BACKBONES``) -- all the same
``ZooBackbone`` over the family's timm-registered models, ``PlainMambaAdapter`` (PlainMamba's ViT-Adapter
detection backbone, ``adapter.py``) and the ``ZooLayerDecayOptimWrapperConstructor``; in
mmdet also the ``ViTDetSimpleFPN`` neck, and the channels-first ``LN2d`` norm for ``norm_cfg`` (``neck.py``).
``import vmamba_zoo`` alone never imports this (it needs the ``[mm]`` extra: ``tools/install_mm.sh``).

A new family joins with one line here: ``register_family('<module name in vmamba_zoo.models>', '<Name>Backbone')``;
``tests/mm/test_backbones.py`` fails for a family of ``vmamba_zoo.list_models()`` without one.
"""
from typing import Dict, List, Type

from .adapter import PlainMambaAdapter, convert_official_adapter, official_adapter_key
from .backbone import ZooBackbone, SimplePyramid, family_of, load_checkpoint_file
from .neck import LN2d, ViTDetSimpleFPN
from .optim import ZooLayerDecayOptimWrapperConstructor

__all__ = ['ZooBackbone', 'SimplePyramid', 'FAMILY_BACKBONES', 'register_family', 'family_of',
           'load_checkpoint_file', 'ZooLayerDecayOptimWrapperConstructor', 'REGISTRIES', 'LN2d',
           'ViTDetSimpleFPN', 'PlainMambaAdapter', 'convert_official_adapter', 'official_adapter_key']


def _registries():
    found = {}
    try:
        from mmdet.registry import MODELS as det_models, OPTIM_WRAPPER_CONSTRUCTORS as det_constructors
        found['mmdet'] = (det_models, det_constructors)
    except ImportError:
        pass
    try:
        from mmseg.registry import MODELS as seg_models, OPTIM_WRAPPER_CONSTRUCTORS as seg_constructors
        found['mmseg'] = (seg_models, seg_constructors)
    except ImportError:
        pass
    if not found:
        raise ImportError('vmamba_zoo.mm needs mmdet and/or mmsegmentation: run tools/install_mm.sh')
    return found


REGISTRIES = _registries()
FAMILY_BACKBONES: Dict[str, Type[ZooBackbone]] = {}


def register_family(family: str, class_name: str) -> Type[ZooBackbone]:
    """Create and register ``class_name`` (a ``ZooBackbone`` restricted to ``family``'s models) in every installed
    mm registry. Idempotent."""
    if family in FAMILY_BACKBONES:
        return FAMILY_BACKBONES[family]
    cls = type(class_name, (ZooBackbone,), {
        'family': family, '__module__': __name__,
        '__doc__': f"The zoo's {family} models as an mmdet / mmseg backbone (``vmamba_zoo.mm.ZooBackbone``).",
    })
    for models, _ in REGISTRIES.values():
        models.register_module(name=class_name, module=cls, force=True)
    FAMILY_BACKBONES[family] = cls
    globals()[class_name] = cls
    __all__.append(class_name)
    return cls


for _models, _constructors in REGISTRIES.values():
    _models.register_module(name='ZooBackbone', module=ZooBackbone, force=True)
    _constructors.register_module(name='ZooLayerDecayOptimWrapperConstructor',
                                  module=ZooLayerDecayOptimWrapperConstructor, force=True)
    # PlainMamba's detection backbone (a ViT-Adapter over the zoo's PlainMamba, vmamba_zoo/mm/adapter.py)
    _models.register_module(name='PlainMambaAdapter', module=PlainMambaAdapter, force=True)
if 'mmdet' in REGISTRIES:
    REGISTRIES['mmdet'][0].register_module(name='ViTDetSimpleFPN', module=ViTDetSimpleFPN, force=True)


def _register_ln2d():
    # mmcv keeps its norms ('BN', 'LN', ...) in mmengine's root MODELS, which every scope falls back to; LN2d goes
    # there too unless something else (e.g. mmdet's ViTDet project) already registered that name.
    from mmengine.registry import MODELS as root_models
    if root_models.get('LN2d') is None:
        root_models.register_module(name='LN2d', module=LN2d)


_register_ln2d()

# family (module name in vmamba_zoo.models, or timm's for the exposed timm models) -> backbone class name
register_family('vmamba', 'VMambaBackbone')
register_family('vim', 'VimBackbone')
register_family('plainmamba', 'PlainMambaBackbone')
register_family('efficientvmamba', 'EfficientVMambaBackbone')
register_family('mambaout', 'MambaOutBackbone')
# families being written (DESIGN.md module names); registering before they land costs nothing
register_family('msvmamba', 'MSVMambaBackbone')
register_family('spatialmamba', 'SpatialMambaBackbone')
register_family('vssd', 'VSSDBackbone')


def registered_families() -> List[str]:
    return sorted(FAMILY_BACKBONES)
