"""Every det / seg config parses with mmengine, names a registered backbone that builds, and its heads take the
backbone's channels; every family has a Mask R-CNN and an UperNet config; two whole models build."""
import functools
import re

import pytest

from .conftest import ROOT

CONFIGS = sorted(p.relative_to(ROOT).as_posix() for kind in ('det', 'seg')
                 for p in (ROOT / 'configs' / kind).glob('*/*.py') if p.parent.name != '_base_')


@functools.lru_cache(maxsize=None)
def _config(path):
    from mmengine.config import Config
    return Config.fromfile(str(ROOT / path))


@functools.lru_cache(maxsize=None)
def _backbone(spec):
    from vmamba_zoo.mm import FAMILY_BACKBONES, PlainMambaAdapter
    cfg = dict(spec)
    classes = {c.__name__: c for c in FAMILY_BACKBONES.values()}
    classes['PlainMambaAdapter'] = PlainMambaAdapter
    cls = classes[cfg.pop('type')]
    for key in ('model_kwargs', 'norm_cfg'):
        if key in cfg:
            cfg[key] = dict(cfg[key] or ())
    return cls(**cfg)


def _spec(backbone_cfg):
    """Hashable backbone config without what does not change the structure (weights, drop path), so each
    architecture is built once."""
    items = []
    for k, v in sorted(backbone_cfg.items()):
        if k in ('init_cfg', 'drop_path_rate', 'norm_cfg'):
            continue
        items.append((k, _frozen(v)))
    return tuple(items)


def _frozen(v):
    """Dicts -> sorted item tuples, lists -> tuples, recursively (e.g. the adapter's interaction_indexes)."""
    if isinstance(v, dict):
        return tuple(sorted((k, _frozen(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return tuple(_frozen(x) for x in v)
    return v


def test_configs_exist_for_every_family():
    from vmamba_zoo.mm import family_of
    import vmamba_zoo
    families = {family_of(n) for n in vmamba_zoo.list_models()}
    for kind, pattern in (('det', 'mask-rcnn_'), ('seg', 'upernet_')):
        have = {p.split('/')[2] for p in CONFIGS if p.startswith(f'configs/{kind}/') and pattern in p}
        assert families <= have, f'families without a configs/{kind} {pattern}* config: {sorted(families - have)}'


@pytest.mark.parametrize('path', CONFIGS)
def test_config_parses_cites_its_target_and_fits_its_backbone(path):
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG
    text = (ROOT / path).read_text()
    assert text.startswith('# '), 'the header comment must state the target result (or why there is none)'
    assert re.search(r'AP|mIoU|No target|no target', text.split('_base_')[0]), 'header cites no result'
    cfg = _config(path)
    assert cfg.custom_imports['imports'] == ['vmamba_zoo.mm']
    bb = cfg.model.backbone
    registry = DET if path.startswith('configs/det/') else SEG
    assert registry.get(bb['type']) is not None, bb['type']
    assert bb['init_cfg']['type'] == 'Pretrained' and bb['init_cfg']['checkpoint'] == f"zoo:{bb['model_name']}"
    backbone = _backbone(_spec(bb.to_dict() if hasattr(bb, 'to_dict') else dict(bb)))
    single_map = path.startswith('configs/det/') and cfg.model.neck.type == 'ViTDetSimpleFPN'
    if path.startswith('configs/det/'):
        neck_in = cfg.model.neck.in_channels
        assert (list(neck_in) if not isinstance(neck_in, int) else [neck_in]) == backbone.out_channels
    else:
        assert list(cfg.model.decode_head.in_channels) == backbone.out_channels
        aux = cfg.model.auxiliary_head
        assert aux.in_channels == backbone.out_channels[aux.in_index]
    if single_map:  # ViTDet recipe: one stride-16 map, the neck makes the pyramid
        assert backbone.out_strides == [16]
    else:
        assert backbone.out_strides == ([4, 8, 16, 32] if 'upernet_plainmamba' not in path else [16] * 4)


def test_whole_detector_and_segmentor_build():
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG
    from mmdet.utils import register_all_modules as det_modules
    from mmseg.utils import register_all_modules as seg_modules
    det_modules(init_default_scope=False)
    seg_modules(init_default_scope=False)
    det = _config('configs/det/efficientvmamba/mask-rcnn_efficientvmamba-tiny_fpn_1x_coco.py').model.copy()
    det.backbone.init_cfg = None
    assert type(DET.build(det)).__name__ == 'MaskRCNN'
    seg = _config('configs/seg/vim/upernet_vim-tiny_60k_ade20k-512x512.py').model.copy()
    seg.backbone.init_cfg = None
    assert type(SEG.build(seg)).__name__ == 'EncoderDecoder'


def test_cascade_vitdet_detector_builds_with_the_official_heads():
    """Every config kind builds as a whole model: the Cascade Mask R-CNN (ViTDet pyramid) of Vim's recipe, with
    its 3 LayerNorm 4conv-1fc stages, a 2-conv RPN and 5 pyramid levels."""
    from mmdet.registry import MODELS as DET
    from mmdet.utils import register_all_modules as det_modules
    det_modules(init_default_scope=False)
    paths = [p for p in CONFIGS if p.startswith('configs/det/') and 'cascade-mask-rcnn_' in p]
    assert paths
    for path in paths:
        cfg = _config(path).model.copy()
        cfg.backbone.init_cfg = None
        det = DET.build(cfg)
        assert type(det).__name__ == 'CascadeRCNN' and type(det.neck).__name__ == 'ViTDetSimpleFPN'
        assert det.neck.num_outs == len(det.rpn_head.prior_generator.strides) == 5
        assert len(det.rpn_head.rpn_conv) == 2
        heads = det.roi_head.bbox_head
        assert len(heads) == 3 and all(type(h).__name__ == 'Shared4Conv1FCBBoxHead' for h in heads)
        assert all(type(h.shared_convs[0].norm).__name__ == 'LN2d' for h in heads)
        assert all(h.reg_class_agnostic for h in heads)


def test_plainmamba_adapter_mask_rcnn_matches_the_official_parameter_count():
    """The L1 Mask R-CNN config builds as a whole model with the adapter backbone (official arguments of
    l1_maskrcnn_1x.py) and has the official README's 31M parameters (31.21M here; L2 53.20M / L3 79.78M against the
    README's 53 / 79)."""
    from mmdet.registry import MODELS as DET
    from mmdet.utils import register_all_modules as det_modules
    det_modules(init_default_scope=False)
    cfg = _config('configs/det/plainmamba/mask-rcnn_plainmamba-l1_fpn_1x_coco.py')
    assert cfg.model.backbone.type == 'PlainMambaAdapter' and cfg.model.backbone.drop_path_rate == 0.1
    assert cfg.param_scheduler[0].end == 500 and 'level_embed' in cfg.optim_wrapper.paramwise_cfg.custom_keys
    model = cfg.model.copy()
    model.backbone.init_cfg = None
    det = DET.build(model)
    assert type(det).__name__ == 'MaskRCNN' and type(det.backbone).__name__ == 'PlainMambaAdapter'
    assert type(det.backbone.ad_norm1).__name__ == 'SyncBatchNorm'
    n = sum(p.numel() for p in det.parameters())
    assert int(n / 1e6) == 31, n
