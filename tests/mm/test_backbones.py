"""vmamba_zoo.mm: one registered backbone per family, the feature tuple, freezing, checkpoints, layer decay."""
import subprocess
import sys

import pytest
import timm
import torch
from timm.layers import DropPath

import vmamba_zoo

# the cheapest model of each family; a family missing here uses its first model
SMALLEST = {
    'vmamba': ('vmamba_tiny', dict(depths=(1, 1, 1, 1), dims=16)),
    'vim': ('vim_tiny_patch16_224', dict(depth=4, embed_dim=32)),
    'plainmamba': ('plainmamba_l1', dict(depth=4, embed_dim=32)),
    'efficientvmamba': ('efficientvmamba_tiny', dict(depths=(1, 1, 1, 1), dims=16)),
    'mambaout': ('mambaout_femto', dict(depths=(1, 1, 1, 1), dims=(16, 32, 48, 64))),
    'msvmamba': ('msvmamba_nano', dict(depths=(1, 1, 1, 1))),
    'spatialmamba': ('spatialmamba_tiny', dict(depths=(1, 1, 1, 1))),
    'vssd': ('vssd_micro', dict(depths=(1, 1, 1, 1))),
}


def _families():
    try:
        from vmamba_zoo.mm import family_of
    except Exception:  # no mm stack: conftest skips (or, with VMAMBA_ZOO_REQUIRE_MM=1, fails) every test here
        return ['(mm stack missing)']
    return sorted({family_of(name) for name in vmamba_zoo.list_models()})


def _build(family, **kwargs):
    from vmamba_zoo.mm import FAMILY_BACKBONES, family_of
    name, model_kwargs = SMALLEST.get(family) or (
        next(n for n in vmamba_zoo.list_models() if family_of(n) == family), {})
    return FAMILY_BACKBONES[family](name, model_kwargs=dict(model_kwargs, **kwargs.pop('model_kwargs', {})),
                                    **kwargs)


@pytest.mark.no_mm
def test_importing_the_zoo_imports_no_mm_package():
    code = ("import sys, vmamba_zoo, timm; timm.create_model('vmamba_tiny', depths=(1, 1, 1, 1), dims=16); "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('mmcv', 'mmdet', 'mmseg', 'mmengine') "
            "or m.startswith('vmamba_zoo.mm')); assert not bad, bad")
    subprocess.run([sys.executable, '-c', code], check=True)


def test_every_family_has_a_registered_backbone():
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG
    from vmamba_zoo.mm import FAMILY_BACKBONES
    families = _families()
    assert {'vmamba', 'vim', 'plainmamba', 'efficientvmamba', 'mambaout'} <= set(families)
    missing = [f for f in families if f not in FAMILY_BACKBONES]
    assert not missing, f'families without an mm backbone (add register_family in vmamba_zoo/mm/__init__.py): {missing}'
    for family in families:
        cls = FAMILY_BACKBONES[family]
        assert DET.get(cls.__name__) is cls and SEG.get(cls.__name__) is cls, cls.__name__


@pytest.mark.parametrize('family', _families())
def test_feature_tuple(family):
    backbone = _build(family).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = backbone(x)
    assert isinstance(feats, tuple) and len(feats) == len(backbone.out_channels) == 4
    for f, c, s in zip(feats, backbone.out_channels, backbone.out_strides):
        assert f.shape[:2] == (2, c)
        # strides 4..32 (plain models with the simple pyramid included); patch-16 convs see (64 - 16) // 16 + 1
        assert abs(f.shape[-1] - 64 / s) <= 1, (family, tuple(f.shape), s)
        assert torch.isfinite(f).all()


def test_plain_pyramid_none_keeps_one_stride_and_official_indices():
    backbone = _build('plainmamba', pyramid='none', model_kwargs=dict(depth=24, embed_dim=32)).eval()
    assert backbone.out_indices == (5, 11, 17, 23) and backbone.out_strides == [16, 16, 16, 16]
    feats = backbone(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape) for f in feats] == [(1, 32, 4, 4)] * 4
    assert len(backbone.model.blocks) == 24 and backbone.out_norms is not None


def test_bad_arguments_raise_clear_errors():
    from vmamba_zoo.mm import FAMILY_BACKBONES
    with pytest.raises(ValueError, match='unknown model_name'):
        FAMILY_BACKBONES['vmamba']('vim_tiny_patch16_224')
    with pytest.raises(ValueError, match='out_indices'):
        _build('vmamba', out_indices=(0, 4))
    with pytest.raises(ValueError, match='pyramid'):
        _build('vim', pyramid='fpn')


def test_frozen_stages_and_drop_path():
    backbone = _build('vmamba', frozen_stages=1, drop_path_rate=0.3).train()
    frozen = [n for n, p in backbone.model.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith(('stem.', 'stages.0.')) for n in frozen)
    assert any(n.startswith('stem.') for n in frozen) and any(n.startswith('stages.0.') for n in frozen)
    assert all(p.requires_grad for n, p in backbone.model.named_parameters() if n.startswith('stages.1.'))
    assert not backbone.model.stem.training and backbone.model.stages[1].training
    rates = [m.drop_prob for m in backbone.modules() if isinstance(m, DropPath)]
    assert rates and max(rates) == pytest.approx(0.3)
    sum(f.float().mean() for f in backbone(torch.randn(1, 3, 64, 64))).backward()
    assert all(p.grad is None for p in backbone.model.stem.parameters())


def test_gradient_checkpointing_matches():
    torch.manual_seed(0)
    ref = _build('vim', drop_path_rate=0.0)
    cp = _build('vim', drop_path_rate=0.0, with_cp=True)
    cp.load_state_dict(ref.state_dict())
    x = torch.randn(1, 3, 64, 64)
    outs = [sum(f.sum() for f in m(x)) for m in (ref, cp)]
    for o in outs:
        o.backward()
    torch.testing.assert_close(outs[0], outs[1])
    g = [dict(m.named_parameters())['model.blocks.0.mixer.in_proj.weight'].grad for m in (ref, cp)]
    torch.testing.assert_close(g[0], g[1])


def _same_model_weights(backbone, state_dict, prefix=''):
    own = backbone.model.state_dict()
    for k, v in own.items():
        torch.testing.assert_close(v, state_dict[prefix + k], msg=k)


def test_pretrained_zoo_file_safetensors_and_mm_checkpoint(tmp_path, monkeypatch):
    from safetensors.torch import save_file
    name, kwargs = SMALLEST['vmamba']
    source = timm.create_model(name, **kwargs)
    sd = source.state_dict()
    monkeypatch.setenv('VMAMBA_ZOO_WEIGHTS', str(tmp_path))
    save_file(sd, str(tmp_path / f'{name}.safetensors'))
    backbone = _build('vmamba', init_cfg=dict(type='Pretrained', checkpoint=f'zoo:{name}'))
    backbone.init_weights()
    _same_model_weights(backbone, sd)

    # an mm training checkpoint of the wrapper (as CheckpointHook saves it, minus the pickled extras)
    mm_file = tmp_path / 'mask_rcnn.pth'
    torch.save({'state_dict': {'backbone.' + k: v for k, v in backbone.state_dict().items()}}, mm_file)
    again = _build('vmamba', init_cfg=dict(type='Pretrained', checkpoint=str(mm_file), prefix='backbone.'))
    again.init_weights()
    _same_model_weights(again, sd)
    torch.testing.assert_close(again.out_norms[0].weight, backbone.out_norms[0].weight)

    with pytest.raises(FileNotFoundError, match='downloads nothing'):
        _build('vmamba', init_cfg=dict(type='Pretrained', checkpoint='zoo:vmamba_small')).init_weights()


def test_pretrained_official_vim_file_interpolates_pos_embed(tmp_path):
    """An official-layout Vim file (training checkpoint with 'model' and an argparse 'args') at 224 loads into a
    backbone built for another size through vim.checkpoint_filter_fn, pos_embed resampled."""
    import argparse
    from vmamba_zoo.models.vim import _DIRECTION_PARAMS, resample_pos_embed
    name, kwargs = SMALLEST['vim']
    source = timm.create_model(name, **kwargs)
    official = {}
    for k, v in source.state_dict().items():
        k = k.replace('blocks.', 'layers.', 1).replace('norm.', 'norm_f.', 1) if k.startswith('norm.') else \
            k.replace('blocks.', 'layers.', 1)
        prefix, _, leaf = k.rpartition('mixer.')
        if leaf in _DIRECTION_PARAMS:
            fwd, bwd, how = _DIRECTION_PARAMS[leaf]
            parts = v.chunk(2) if how == 'cat' else v.unbind(0)
            official[prefix + 'mixer.' + fwd], official[prefix + 'mixer.' + bwd] = parts
        else:
            official[k] = v
    path = tmp_path / 'vim_official.pth'
    torch.save({'model': official, 'args': argparse.Namespace(lr=1e-3), 'epoch': 299}, path)
    backbone = _build('vim', model_kwargs=dict(img_size=128), init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    backbone.init_weights()
    expected = resample_pos_embed(source.pos_embed.detach(), (8, 8), (14, 14))
    torch.testing.assert_close(backbone.model.pos_embed.detach(), expected)
    torch.testing.assert_close(backbone.model.blocks[0].mixer.A_logs, source.blocks[0].mixer.A_logs)


def test_checkpoint_with_code_objects_is_refused(tmp_path):
    from vmamba_zoo.mm import load_checkpoint_file
    path = tmp_path / 'pickled.pth'
    torch.save({'state_dict': {}, 'hook': subprocess.Popen}, path)
    with pytest.raises(ValueError, match='weights_only=True'):
        load_checkpoint_file(path)


def _vim_detector_groups(weight_decay, **paramwise_cfg):
    """A Vim backbone + linear head through the zoo's layer-decay constructor (AdamW lr 1e-3): the model, and
    each parameter's lr and weight decay by id."""
    from torch import nn
    from vmamba_zoo.mm import ZooLayerDecayOptimWrapperConstructor

    class Detector(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = _build('vim')
            self.head = nn.Linear(4, 4)

    model = Detector()
    ctor = ZooLayerDecayOptimWrapperConstructor(
        dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=weight_decay)),
        paramwise_cfg=paramwise_cfg)
    groups = ctor(model).optimizer.param_groups
    lr_of = {id(p): g['lr'] for g in groups for p in g['params']}
    wd_of = {id(p): g['weight_decay'] for g in groups for p in g['params']}
    return model, lr_of, wd_of


def test_layer_decay_constructor():
    model, lr_of, wd_of = _vim_detector_groups(0.05, layer_decay_rate=0.5)
    params = dict(model.named_parameters())
    depth = len(model.backbone.model.blocks)
    assert lr_of[id(params['head.weight'])] == pytest.approx(1e-3)
    last = lr_of[id(params[f'backbone.model.blocks.{depth - 1}.mixer.in_proj.weight'])]
    first = lr_of[id(params['backbone.model.blocks.0.mixer.in_proj.weight'])]
    assert first == pytest.approx(last * 0.5 ** (depth - 1))
    assert lr_of[id(params['backbone.model.patch_embed.proj.weight'])] == pytest.approx(first * 0.5)
    assert wd_of[id(params['backbone.model.pos_embed'])] == 0 and wd_of[id(params['head.bias'])] == 0
    assert wd_of[id(params['head.weight'])] == pytest.approx(0.05)


def test_vim_residual_feature_is_residual_plus_block_output():
    """feature='residual' (VimDet's last_layer_process='add'): residual stream + last block output, no norm."""
    torch.manual_seed(0)
    block = _build('vim', out_indices=(3,), pyramid='none', out_norm=False, drop_path_rate=0.0).eval()
    res = _build('vim', out_indices=(3,), pyramid='none', out_norm=False, drop_path_rate=0.0,
                 feature='residual').eval()
    res.load_state_dict(block.state_dict())
    x = torch.randn(1, 3, 64, 64)
    model = res.model
    with torch.no_grad():
        hidden, (gh, gw), strategy, size = model._embed(x)
        residual = None
        for blk in model.blocks:
            hidden, residual = blk(hidden, residual, size, strategy)
        t = (hidden.shape[1] - 1) // 2
        expected = residual + hidden
        expected = torch.cat([expected[:, :t], expected[:, t + 1:]], 1).reshape(1, gh, gw, -1).permute(0, 3, 1, 2)
        (got,), (mixer_out,) = res(x), block(x)
    assert res.out_strides == [16] and res.out_channels == [32]
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, mixer_out)
    with pytest.raises(ValueError, match='residual'):
        _build('plainmamba', pyramid='none', feature='residual')


def test_vitdet_simple_fpn_levels_and_norms():
    from mmdet.registry import MODELS as DET
    from vmamba_zoo.mm import LN2d, ViTDetSimpleFPN
    neck = DET.build(dict(type='ViTDetSimpleFPN', in_channels=[32], out_channels=16))
    assert isinstance(neck, ViTDetSimpleFPN)
    x = torch.randn(2, 32, 8, 8)
    outs = neck((x,))
    assert [tuple(o.shape) for o in outs] == [(2, 16, 32, 32), (2, 16, 16, 16), (2, 16, 8, 8), (2, 16, 4, 4),
                                             (2, 16, 2, 2)]
    # x4 branch: deconv C -> C/2, LN, GELU, deconv -> C/4; convs without bias before each LN (eps 1e-6)
    x4 = neck.stages[0]
    assert [type(m).__name__ for m in x4] == ['ConvTranspose2d', 'LN2d', 'GELU', 'ConvTranspose2d', 'Conv2d', 'LN2d',
                                              'Conv2d', 'LN2d']
    assert x4[0].out_channels == 16 and x4[3].out_channels == 8 and x4[4].bias is None and x4[1].eps == 1e-6
    torch.testing.assert_close(outs[4], outs[3][..., ::2, ::2])  # top level: stride-2 subsampling of the last
    ln = LN2d(16)
    y = torch.randn(2, 16, 3, 3)
    torch.testing.assert_close(ln(y), torch.nn.functional.layer_norm(
        y.permute(0, 2, 3, 1), (16,), eps=1e-6).permute(0, 3, 1, 2))
    plain = ViTDetSimpleFPN(32, out_channels=16, norm_cfg=None, num_outs=4)
    assert len(plain((x,))) == 4 and plain.stages[2][0].bias is not None
    with pytest.raises(ValueError, match='one backbone map'):
        ViTDetSimpleFPN([32, 32])


def test_layer_decay_constructor_no_decay_names():
    """no_decay_names replaces the 1-D / bias rule (VimDet: every parameter but pos_embed is decayed)."""
    model, _, wd_of = _vim_detector_groups(0.1, layer_decay_rate=0.5, no_decay_names=['backbone.model.pos_embed'])
    params = dict(model.named_parameters())
    assert wd_of[id(params['backbone.model.pos_embed'])] == 0
    for name in ('head.bias', 'backbone.model.blocks.0.norm.weight', 'backbone.model.blocks.0.mixer.Ds',
                 'backbone.model.cls_token', 'head.weight'):
        assert wd_of[id(params[name])] == pytest.approx(0.1), name


# -- PlainMamba-Adapter (vmamba_zoo/mm/adapter.py) -------------------------------------------------------------------
# a cheap adapter for the numerical tests: 4 blocks of width 48 (6 heads of 8), one block per interaction
_SMALL_ADAPTER = dict(model_name='plainmamba_l1', model_kwargs=dict(depth=4, embed_dim=48), norm_cfg=dict(type='BN'))


def _adapter(**kwargs):
    from vmamba_zoo.mm import PlainMambaAdapter
    return PlainMambaAdapter(**dict(_SMALL_ADAPTER, **kwargs))


def test_plainmamba_adapter_l1_official_structure_and_forward():
    """L1 with the official arguments (l1_maskrcnn_1x.py): interactions over blocks [0,5]..[18,23], 6 heads x 4
    points, gamma 0, 2 extra extractors in the last interaction only, no final norm; a 2x3x128x128 image gives 4 maps
    of 192 channels at strides 4 / 8 / 16 / 32."""
    from mmdet.registry import MODELS as DET
    from vmamba_zoo.mm import PlainMambaAdapter
    torch.manual_seed(0)
    adapter = DET.build(dict(type='PlainMambaAdapter', model_name='plainmamba_l1', drop_path_rate=0.1,
                             norm_cfg=dict(type='BN')))
    assert isinstance(adapter, PlainMambaAdapter)
    assert adapter.interaction_indexes == [(0, 5), (6, 11), (12, 17), (18, 23)]
    assert adapter.out_channels == [192] * 4 and adapter.out_strides == [4, 8, 16, 32]
    blocks = adapter.interactions
    assert len(blocks) == 4 and [b.extra_extractors is not None for b in blocks] == [False, False, False, True]
    inj = blocks[0].injector
    assert (inj.attn.num_heads, inj.attn.num_levels, inj.attn.num_points) == (6, 3, 4)
    assert blocks[0].extractor.attn.num_levels == 1 and blocks[3].extra_extractors[1].attn.num_levels == 1
    assert all(float(b.injector.gamma.detach().abs().max()) == 0 for b in blocks)
    assert inj.query_norm.eps == 1e-6 and blocks[0].extractor.ffn.fc1.out_features == 48  # cffn_ratio 0.25
    assert blocks[0].extractor.drop_path.drop_prob == pytest.approx(0.1)  # the full rate, as the official code
    assert max(m.drop_prob for m in adapter.model.modules() if isinstance(m, DropPath)) == pytest.approx(0.1)
    assert isinstance(adapter.model.norm, torch.nn.Identity) and adapter.level_embed.shape == (3, 192)
    assert [tuple(c.out_channels for c in (adapter.spm.fc1, adapter.spm.conv2[0], adapter.spm.conv3[0],
                                           adapter.spm.conv4[0]))] == [(192, 128, 256, 256)]
    # 9.80M: the PlainMamba-L1 tokenizer, pos_embed and 24 blocks (7.36M, the official README's 7.3M) + spatial
    # prior, interactions, up, ad_norms; the official README states 31M for the whole L1 Mask R-CNN only
    # (tests/mm/test_configs.py checks that)
    n_params = sum(p.numel() for p in adapter.parameters())
    plain = sum(p.numel() for n, p in adapter.model.named_parameters())
    assert n_params == pytest.approx(9.796e6, rel=1e-3) and plain == pytest.approx(7.358e6, rel=1e-3)
    adapter.eval()
    with torch.no_grad():
        feats = adapter(torch.randn(2, 3, 128, 128))
    assert isinstance(feats, tuple) and [tuple(f.shape) for f in feats] == [
        (2, 192, 32, 32), (2, 192, 16, 16), (2, 192, 8, 8), (2, 192, 4, 4)]
    assert all(torch.isfinite(f).all() for f in feats)
    with pytest.raises(ValueError, match='divisible by 32'):
        adapter(torch.randn(1, 3, 112, 128))


def test_plainmamba_adapter_backward_and_gamma_zero_keeps_the_plain_model():
    torch.manual_seed(0)
    adapter = _adapter(drop_path_rate=0.0).train()
    feats = adapter(torch.randn(2, 3, 64, 96))
    assert [tuple(f.shape) for f in feats] == [(2, 48, 16, 24), (2, 48, 8, 12), (2, 48, 4, 6), (2, 48, 2, 3)]
    sum(f.pow(2).mean() for f in feats).backward()
    grads = {n: p.grad for n, p in adapter.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values()), \
        [n for n, g in grads.items() if g is None]
    assert all(float(grads[f'interactions.{i}.injector.gamma'].abs().sum()) > 0 for i in range(4))
    # gamma = 0: the injectors add nothing, so the tokens leaving the last block are the plain model's
    adapter.eval()
    x = torch.randn(1, 3, 64, 64)
    seen = {}
    handle = adapter.model.blocks[-1].register_forward_hook(lambda m, i, o: seen.setdefault('last', o))
    with torch.no_grad():
        adapter(x)
        handle.remove()
        plain = adapter.model.forward_intermediates(x, indices=[3], intermediates_only=True, output_fmt='NHWC')[0]
    torch.testing.assert_close(seen['last'], plain)


def test_plainmamba_adapter_gradient_checkpointing_matches():
    torch.manual_seed(0)
    ref = _adapter(drop_path_rate=0.0)
    cp = _adapter(drop_path_rate=0.0, with_cp=True)
    cp.load_state_dict(ref.state_dict())
    with torch.no_grad():  # non-zero gamma so the injectors take part
        for m in (ref, cp):
            for b in m.interactions:
                b.injector.gamma.fill_(0.5)
    x = torch.randn(1, 3, 64, 64)
    outs = [sum(f.sum() for f in m(x)) for m in (ref, cp)]
    for o in outs:
        o.backward()
    torch.testing.assert_close(outs[0], outs[1])
    for name in ('model.blocks.0.mixer.in_proj.weight', 'interactions.0.injector.attn.value_proj.weight',
                 'interactions.3.extra_extractors.1.ffn.fc1.weight', 'spm.conv2.0.weight'):
        g = [dict(m.named_parameters())[name].grad for m in (ref, cp)]
        torch.testing.assert_close(g[0], g[1], msg=name)


def _official_adapter_layout(state_dict):
    """Our adapter keys -> the official PlainMambaAdapter's (mmcls PlainMamba names at the top level)."""
    import re
    out = {}
    for k, v in state_dict.items():
        k = k.replace('model.patch_embed.proj.', 'patch_embed.projection.')
        k = re.sub(r'^model\.blocks\.(\d+)\.mixer\.', r'layers.\1.mamba.', k)
        k = re.sub(r'^model\.blocks\.(\d+)\.', r'layers.\1.', k)
        out[k[len('model.'):] if k.startswith('model.') else k] = v
    return out


def test_plainmamba_adapter_loads_an_official_detector_checkpoint(tmp_path):
    """A synthetic official-layout Mask R-CNN checkpoint (backbone.patch_embed.projection / backbone.layers.i.mamba /
    backbone.spm / backbone.interactions / backbone.ad_norm*, plus neck keys) loads through init_cfg with
    prefix='backbone.'; convert_official_adapter maps every key and refuses a checkpoint that does not fit."""
    from vmamba_zoo.mm import convert_official_adapter, official_adapter_key
    torch.manual_seed(0)
    source = _adapter()
    with torch.no_grad():
        for b in source.interactions:
            b.injector.gamma.normal_()
    sd = source.state_dict()
    official = _official_adapter_layout(sd)
    assert {'patch_embed.projection.weight', 'pos_embed', 'layers.0.mamba.in_proj.weight', 'layers.0.dw.0.weight',
            'level_embed', 'spm.stem.0.weight', 'interactions.0.injector.attn.sampling_offsets.weight',
            'interactions.3.extra_extractors.1.ffn.dwconv.dwconv.weight', 'up.weight',
            'ad_norm4.running_var'} <= set(official)
    assert official_adapter_key('layers.3.mamba.direction_Bs') == 'model.blocks.3.mixer.direction_Bs'
    assert official_adapter_key('patch_embed.stem.1.running_mean') == 'model.patch_embed.stem.1.running_mean'
    assert official_adapter_key('interactions.0.injector.gamma') == 'interactions.0.injector.gamma'
    path = tmp_path / 'l1_1x.pth'
    detector = {'backbone.' + k: v for k, v in official.items()}
    detector['neck.lateral_convs.0.conv.weight'] = torch.zeros(4, 48, 1, 1)
    torch.save({'state_dict': detector, 'meta': {'epoch': 12}}, path)
    target = _adapter(init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='backbone.'))
    missing, unexpected = target.load_pretrained(str(path), prefix='backbone.')
    assert not missing and not unexpected
    for k, v in target.state_dict().items():
        torch.testing.assert_close(v, sd[k], msg=k)
    torch.testing.assert_close(convert_official_adapter(detector, target)['model.blocks.1.mixer.A_log'],
                               sd['model.blocks.1.mixer.A_log'])
    broken = dict(official)
    del broken['interactions.2.extractor.attn.value_proj.weight']
    with pytest.raises(ValueError, match='missing interactions.2.extractor.attn.value_proj.weight'):
        convert_official_adapter(broken, target)
    # an mm checkpoint of the zoo adapter itself (keys model.*, spm.*, ...) loads as well
    torch.save({'state_dict': {'backbone.' + k: v for k, v in sd.items()}}, tmp_path / 'ours.pth')
    again = _adapter()
    assert again.load_pretrained(str(tmp_path / 'ours.pth'), prefix='backbone.') == ([], [])
    torch.testing.assert_close(again.interactions[1].injector.gamma, source.interactions[1].injector.gamma)


def test_plainmamba_adapter_imagenet_init_keeps_the_adapter_init(tmp_path):
    """init_cfg with an ImageNet PlainMamba (official mmcls layout) fills the plain model only."""
    name, kwargs = 'plainmamba_l1', dict(depth=4, embed_dim=48)
    source = timm.create_model(name, **kwargs)
    official = {}
    for k, v in _official_adapter_layout({'model.' + k: v for k, v in source.state_dict().items()}).items():
        if k.startswith('norm.'):  # the classifier's final norm is mmcls 'ln1'
            k = 'ln1.' + k[len('norm.'):]
        official[k if k.startswith('head.') else 'backbone.' + k] = v
    path = tmp_path / 'l1.pth'
    torch.save({'state_dict': official}, path)
    torch.manual_seed(0)
    adapter = _adapter(init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    spm_before = adapter.spm.fc2.weight.detach().clone()
    adapter.init_weights()
    _same_model_weights(adapter, {k: v for k, v in source.state_dict().items()})
    torch.testing.assert_close(adapter.spm.fc2.weight, spm_before)
