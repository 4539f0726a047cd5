"""Layer-wise learning-rate decay for any zoo backbone, as an mmengine optimizer-wrapper constructor.

The paper recipes of the plain families fine-tune with layer decay (hustvl/Vim
``seg/configs/vim/upernet/upernet_vim_*_24_512_slide_60k.py``: ``LayerDecayOptimizerConstructor``,
``num_layers=24, layer_decay_rate=0.92``). mmseg's own constructor finds layers by hard-coded names
(``backbone.layers`` / ``backbone.stages``); this one asks the model: the layer of a backbone parameter is its
group in the model's timm ``group_matcher`` (stem = 0, block i = i + 1, ...), everything outside the backbone
(neck, heads) is the top layer, and layer l of L gets ``lr * decay ** (L - l)``.

Weight decay 0 for 1-D parameters (norms, biases, Ds), biases and the model's ``no_weight_decay()`` names, as
the official constructor (``len(param.shape) == 1 or name.endswith('.bias') or name in ('pos_embed',
'cls_token')``). Note: the official Vim constructor matches ``backbone.blocks`` while Vim names its blocks
``layers``, so there every Vim block fell into the top layer; here the decay reaches the blocks as configured.

``paramwise_cfg=dict(no_decay_names=[...])`` replaces that rule: weight decay 0 exactly for the parameters whose
full name (``backbone.model.pos_embed``, ``neck.stages.0.1.weight``, ...) matches one of the fnmatch patterns, and
the configured decay for every other one. VimDet needs it: detectron2's ``get_default_optimizer_params`` there
(hustvl/Vim ``det/detectron2/solver/build.py``, ``weight_decay_norm=0``) exempts only ``torch.nn`` norm modules,
and Vim's RMSNorm and ViTDet's channels-first LayerNorm are neither, so with the override
``{"pos_embed": {"weight_decay": 0.0}}`` (``det/projects/ViTDet/configs/COCO/mask_rcnn_vimdet_b_100ep.py``) every
parameter but ``pos_embed`` is decayed.

Config: ``optim_wrapper=dict(type='OptimWrapper', constructor='ZooLayerDecayOptimWrapperConstructor',
optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05), paramwise_cfg=dict(layer_decay_rate=0.92))``.
"""
import fnmatch
import logging

from mmengine.optim import DefaultOptimWrapperConstructor
from timm.models import group_parameters

__all__ = ['ZooLayerDecayOptimWrapperConstructor', 'layer_ids']

_log = logging.getLogger(__name__)


def layer_ids(backbone):
    """{parameter name in ``backbone.model``: layer id} from the model's fine ``group_matcher``, and the number of
    layers (the top layer id, given to everything not in the model)."""
    model = backbone.model
    groups = group_parameters(model, model.group_matcher(coarse=False))
    ids = {}
    for layer, names in enumerate(groups.values()):
        for name in names:
            ids[name] = layer
    return ids, len(groups)


class ZooLayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    def add_params(self, params, module, prefix='', is_dcn_module=None):
        decay_rate = float(self.paramwise_cfg.get('layer_decay_rate', 1.0))
        backbone = getattr(module, 'backbone', None)
        if backbone is None or not hasattr(backbone, 'model'):
            raise ValueError('ZooLayerDecayOptimWrapperConstructor needs a model whose .backbone is a vmamba_zoo.mm '
                             'backbone')
        ids, num_layers = layer_ids(backbone)
        no_decay = set(getattr(backbone.model, 'no_weight_decay', lambda: set())())
        no_decay_names = self.paramwise_cfg.get('no_decay_names')
        if isinstance(no_decay_names, str):
            no_decay_names = [no_decay_names]
        groups = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            inner = name[len('backbone.model.'):] if name.startswith('backbone.model.') else None
            layer = ids.get(inner, num_layers - 1) if inner is not None else num_layers
            if no_decay_names is not None:
                skip_wd = any(fnmatch.fnmatch(name, pat) for pat in no_decay_names)
            else:
                skip_wd = param.ndim <= 1 or name.endswith('.bias') or (
                    inner is not None and any(fnmatch.fnmatch(inner, pat) for pat in no_decay))
            key = (layer, skip_wd)
            if key not in groups:
                scale = decay_rate ** (num_layers - layer)
                groups[key] = dict(params=[], lr=self.base_lr * scale, weight_decay=0. if skip_wd else self.base_wd)
            groups[key]['params'].append(param)
        params.extend(groups[k] for k in sorted(groups))
        _log.info('layer decay %.3f over %d layers: %d parameter groups', decay_rate, num_layers + 1, len(groups))
