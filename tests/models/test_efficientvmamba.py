"""EfficientVMamba-specific checks: parity with the official parameter / FLOP figures, the official atrous scan
at odd sizes, checkpoint conversion, training, scan swapping."""
import math

import pytest
import timm
import torch
import torch.nn.functional as F

import vmamba_zoo  # noqa: F401
from vmamba_zoo.flops import count_flops, count_params
from vmamba_zoo.models.efficientvmamba import EfficientVMamba, checkpoint_filter_fn
from vmamba_zoo.ops.selective_scan import selective_scan_naive
from vmamba_zoo.scans import get_scan

from .helpers import bn_shapes, random_state_dict, train_steps

# Targets (TerryPei/EfficientVMamba, commit 0bc5ee2):
# * exact params / FLOPs: the official ``EfficientVSSM`` (classification/models/vmamba_efficient.py) built on CPU
#   with the yaml values through ``build_vssm_model`` (S with embed dim 64, see below), 1000 classes, 224x224,
#   FLOPs counted as ``analyze/get_flops.py`` ``fvcore_flop_count`` does (fvcore + its selective-scan handle).
#   The params equal the training logs' "params: 6.494 / 11.274 / 33.717 M" (classification/logs/*.txt).
# * README "Main Results": params 6M / 11M / 33M, FLOPs 0.8G / 1.3G / 4.0G, top-1 76.5 / 78.7 / 81.8.
# EfficientVMamba-S: vssm_efficient_small.yaml says EMBED_DIM 96, but the released model is C=64 (its training log
# prints ``Conv2d(3, 64, kernel_size=(4, 4), ...)``; C=96 would give 24.757M params).
# name: (depths, dim, exact official params, exact official FLOPs, README params (M), README GFLOPs)
TARGETS = {
    'efficientvmamba_tiny': ((2, 2, 4, 2), 48, 6_493_660, 806_431_376, 6, 0.8),
    'efficientvmamba_small': ((2, 2, 4, 2), 64, 11_273_688, 1_342_576_368, 11, 1.3),
    'efficientvmamba_base': ((2, 2, 9, 2), 96, 33_717_136, 3_996_667_872, 33, 4.0),
}


@pytest.mark.parametrize('name', sorted(TARGETS))
def test_params_match_official(name):
    _, _, exact, _, readme_m, _ = TARGETS[name]
    n = count_params(timm.create_model(name))
    assert n == exact, f'{name}: {n} params vs official {exact}'
    assert int(n / 1e6) == readme_m  # the README truncates (33.717M -> 33M)


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(TARGETS))
def test_flops_match_official(name):
    *_, exact, _, gflops = TARGETS[name]
    flops, unsupported = count_flops(timm.create_model(name), (3, 224, 224), return_unsupported=True)
    # Ours counts the EVSS channel attention's spatial mean (aten::mean, 1 flop per element, as for timm's pooled
    # head), which the official fvcore run leaves unsupported (0), and fvcore rounds the official einsum costs to
    # 4 significant digits (numpy einsum_path); together +0.05% (B) .. +0.11% (T).
    assert abs(flops - exact) / exact < 0.002, f'{name}: {flops} FLOPs vs official {exact}'
    assert round(flops / 1e9, 1) == gflops
    assert 'prim::PythonOp.SelectiveScanFn' not in unsupported


def test_architecture_layout():
    model = timm.create_model('efficientvmamba_tiny')
    assert [type(s.blocks[0]).__name__ for s in model.stages] == ['EVSSBlock', 'EVSSBlock', 'InvertedResidual',
                                                                  'InvertedResidual']
    assert [len(s.blocks) for s in model.stages] == [2, 2, 4, 2]
    mixer = model.stages[0].blocks[0].mixer
    strategy = mixer.scan_strategy
    assert (strategy.name, strategy.step, strategy.pad) == ('atrous', 2, 'grid')
    assert (mixer.k_group, mixer.d_state, mixer.d_inner, mixer.dt_rank, mixer.gate) == (4, 16, 96, 3, True)
    assert model.feature_info == [dict(num_chs=48 * 2 ** i, reduction=4 * 2 ** i, module=f'stages.{i}')
                                  for i in range(4)]
    cfg = model.pretrained_cfg
    assert (cfg['input_size'], cfg['crop_pct'], cfg['interpolation']) == ((3, 224, 224), 0.875, 'bicubic')
    assert cfg['mean'] == (0.485, 0.456, 0.406) and cfg['std'] == (0.229, 0.224, 0.225)


# ---------------------------------------------------------------------------------------------------------------
# The atrous scan against the official EfficientScan / cross_selective_scan / EfficientMerge
# ---------------------------------------------------------------------------------------------------------------
def _official_atrous_core(x, mixer):
    """The official ``cross_selective_scan`` (classification/models/vmamba_efficient.py) with step 2, written out:
    zero-pad W then H to even, 4 slices (x[::2, ::2]; x^T[::2, 1::2]; x[::2, 1::2]; x^T[1::2, 1::2]), per-direction
    projections, selective scan, slices scattered back into the padded map, crop, out_norm."""
    B, D, H, W = x.shape
    xp = F.pad(x, (0, W % 2, 0, H % 2))
    Hh, Wh = xp.shape[2] // 2, xp.shape[3] // 2
    xt = xp.transpose(2, 3)
    xs = torch.stack([xp[:, :, ::2, ::2].reshape(B, D, -1), xt[:, :, ::2, 1::2].reshape(B, D, -1),
                      xp[:, :, ::2, 1::2].reshape(B, D, -1), xt[:, :, 1::2, 1::2].reshape(B, D, -1)], dim=1)
    L = Hh * Wh
    R, N = mixer.dt_rank, mixer.d_state
    x_dbl = torch.einsum('bkdl,kcd->bkcl', xs, mixer.x_proj_weight)
    dts, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=2)
    dts = torch.einsum('bkrl,kdr->bkdl', dts, mixer.dt_projs_weight)
    ys = selective_scan_naive(xs.reshape(B, -1, L), dts.reshape(B, -1, L), -torch.exp(mixer.A_logs), Bs, Cs,
                              D=mixer.Ds, delta_bias=mixer.dt_projs_bias.reshape(-1), delta_softplus=True)
    ys = ys.view(B, 4, D, L)
    y = x.new_zeros(B, D, 2 * Hh, 2 * Wh)
    y[:, :, ::2, ::2] = ys[:, 0].reshape(B, D, Hh, Wh)
    y[:, :, 1::2, ::2] = ys[:, 1].reshape(B, D, Wh, Hh).transpose(2, 3)
    y[:, :, ::2, 1::2] = ys[:, 2].reshape(B, D, Hh, Wh)
    y[:, :, 1::2, 1::2] = ys[:, 3].reshape(B, D, Wh, Hh).transpose(2, 3)
    return mixer.out_norm(y[:, :, :H, :W].permute(0, 2, 3, 1))


@pytest.mark.parametrize('size', [(6, 8), (5, 7), (7, 4), (3, 3), (1, 5)])
def test_atrous_mixer_matches_official_at_odd_and_even_sizes(size):
    torch.manual_seed(0)
    block = timm.create_model('efficientvmamba_tiny').stages[0].blocks[0]
    mixer = block.mixer
    with torch.no_grad():
        for p in (mixer.x_proj_weight, mixer.dt_projs_weight, mixer.dt_projs_bias):
            p.add_(torch.randn_like(p) * 0.3)  # make dt / B / C of padded (zero) steps matter
        x = torch.randn(2, mixer.d_inner, *size)
        expected = _official_atrous_core(x, mixer)
        torch.testing.assert_close(mixer.forward_core(x), expected, rtol=1e-5, atol=1e-5)
        # the official padding matters at odd sizes: the 'end' layout gives different outputs there
        end = get_scan('atrous', step=2, pad='end')
        grid = mixer.scan_strategy
        try:
            mixer.scan_strategy = end
            other = mixer.forward_core(x)
        finally:
            mixer.scan_strategy = grid
        if size[0] % 2 == 0 and size[1] % 2 == 0:
            torch.testing.assert_close(other, expected, rtol=1e-5, atol=1e-5)
        elif size[0] > 1:
            assert (other - expected).abs().max() > 1e-3


# ---------------------------------------------------------------------------------------------------------------
# Checkpoint conversion
# ---------------------------------------------------------------------------------------------------------------
def official_state_dict(depths, dim, num_classes=1000, d_state=16, seed=0):
    """A state_dict named and shaped as TerryPei/EfficientVMamba's ``EfficientVSSM`` saves it (module names of
    classification/models/vmamba_efficient.py and lib/models/operations.py ``InvertedResidual``), distinct
    random values (BN running_var positive)."""
    shapes = {}
    dims = [dim * 2 ** i for i in range(len(depths))]
    shapes.update({'patch_embed.0.weight': (dim, 3, 4, 4), 'patch_embed.0.bias': (dim,),
                   'patch_embed.2.weight': (dim,), 'patch_embed.2.bias': (dim,)})
    for i, depth in enumerate(depths):
        c = dims[i]
        if i < 2:
            e, r = 2 * c, math.ceil(c / 16)
            for j in range(depth):
                p = f'layers.{i}.blocks.{j}.'
                shapes.update({
                    p + 'norm.weight': (c,), p + 'norm.bias': (c,),
                    p + 'op.x_proj_weight': (4, r + 2 * d_state, e), p + 'op.dt_projs_weight': (4, e, r),
                    p + 'op.dt_projs_bias': (4, e), p + 'op.A_logs': (4 * e, d_state), p + 'op.Ds': (4 * e,),
                    p + 'op.out_norm.weight': (e,), p + 'op.out_norm.bias': (e,),
                    p + 'op.in_proj.weight': (2 * e, c), p + 'op.conv2d.weight': (e, 1, 3, 3),
                    p + 'op.conv2d.bias': (e,), p + 'op.out_proj.weight': (c, e),
                    p + 'conv_branch.0.weight': (c, 1, 3, 3), p + 'conv_branch.0.bias': (c,),
                    p + 'conv_branch.3.weight': (c, c, 1, 1), p + 'conv_branch.3.bias': (c,),
                    p + 'se.norm.weight': (c,), p + 'se.norm.bias': (c,),
                    p + 'se.global_reduce.weight': (c // 8, c), p + 'se.global_reduce.bias': (c // 8,),
                    p + 'se.channel_select.weight': (c, c // 8), p + 'se.channel_select.bias': (c,),
                })
                shapes.update(bn_shapes(p + 'conv_branch.1.', c))
            down = f'layers.{i}.downsample.'
        else:
            m = 4 * c
            for n in range(1, depth + 1):  # index 0 of the Sequential is a Permute
                p = f'layers.{i}.{n}.'
                shapes.update({p + 'conv_pw.0.weight': (m, c, 1, 1), p + 'conv_dw.0.weight': (m, 1, 3, 3),
                               p + 'se.conv_reduce.weight': (m // 8, m, 1, 1), p + 'se.conv_reduce.bias': (m // 8,),
                               p + 'se.conv_expand.weight': (m, m // 8, 1, 1), p + 'se.conv_expand.bias': (m,),
                               p + 'conv_pw2.0.weight': (c, m, 1, 1)})
                shapes.update(bn_shapes(p + 'conv_pw.1.', m))
                shapes.update(bn_shapes(p + 'conv_dw.1.', m))
                shapes.update(bn_shapes(p + 'conv_pw2.1.', c))
            down = f'layers.{i}.{depth + 2}.'  # after the trailing Permute
        if i < len(depths) - 1:
            shapes.update({down + 'reduction.weight': (2 * c, 4 * c), down + 'norm.weight': (4 * c,),
                           down + 'norm.bias': (4 * c,)})
    shapes.update({'classifier.norm.weight': (dims[-1],), 'classifier.norm.bias': (dims[-1],),
                   'classifier.head.weight': (num_classes, dims[-1]), 'classifier.head.bias': (num_classes,)})
    return random_state_dict(shapes, seed)


def _num_params(sd):
    buffers = ('running_mean', 'running_var', 'num_batches_tracked')
    return sum(v.numel() for k, v in sd.items() if not k.endswith(buffers))


@pytest.mark.parametrize('name', sorted(TARGETS))
def test_checkpoint_filter_converts_official_checkpoint(name):
    depths, dim, exact, *_ = TARGETS[name]
    official = official_state_dict(depths, dim)
    assert _num_params(official) == exact  # the fake follows the real layout
    model = timm.create_model(name)
    converted = checkpoint_filter_fn({'model': official}, model)
    model.load_state_dict(converted, strict=True)
    sd = model.state_dict()
    last_ir = depths[2] + 2
    pairs = {
        'stem.proj.weight': 'patch_embed.0.weight',
        'stem.norm.bias': 'patch_embed.2.bias',
        'stages.0.blocks.1.mixer.A_logs': 'layers.0.blocks.1.op.A_logs',
        'stages.1.blocks.0.mixer.x_proj_weight': 'layers.1.blocks.0.op.x_proj_weight',
        'stages.0.blocks.0.conv_branch.conv_dw.weight': 'layers.0.blocks.0.conv_branch.0.weight',
        'stages.0.blocks.0.conv_branch.bn.running_var': 'layers.0.blocks.0.conv_branch.1.running_var',
        'stages.1.blocks.1.conv_branch.conv_pw.bias': 'layers.1.blocks.1.conv_branch.3.bias',
        'stages.1.blocks.1.se.channel_select.weight': 'layers.1.blocks.1.se.channel_select.weight',
        'stages.1.downsample.reduction.weight': 'layers.0.downsample.reduction.weight',
        'stages.2.downsample.norm.weight': 'layers.1.downsample.norm.weight',
        'stages.2.blocks.0.conv_pw.weight': 'layers.2.1.conv_pw.0.weight',
        'stages.2.blocks.0.bn1.running_mean': 'layers.2.1.conv_pw.1.running_mean',
        'stages.2.blocks.1.bn2.weight': 'layers.2.2.conv_dw.1.weight',
        'stages.2.blocks.1.se.conv_expand.weight': 'layers.2.2.se.conv_expand.weight',
        f'stages.2.blocks.{depths[2] - 1}.conv_pwl.weight': f'layers.2.{depths[2]}.conv_pw2.0.weight',
        'stages.3.blocks.1.bn3.bias': 'layers.3.2.conv_pw2.1.bias',
        'stages.3.downsample.reduction.weight': f'layers.2.{last_ir}.reduction.weight',
        'stages.3.downsample.norm.bias': f'layers.2.{last_ir}.norm.bias',
        'norm.weight': 'classifier.norm.weight',
        'head.fc.weight': 'classifier.head.weight',
    }
    for ours, theirs in pairs.items():
        torch.testing.assert_close(sd[ours], official[theirs], msg=f'{ours} <- {theirs}')
    # already converted: passes through unchanged
    again = checkpoint_filter_fn(converted, model)
    assert sorted(again) == sorted(converted) and all(again[k] is converted[k] for k in converted)


def test_checkpoint_filter_accepts_official_wrappers_and_prefixes():
    official = official_state_dict((2, 2, 4, 2), 48)
    model = timm.create_model('efficientvmamba_tiny')
    ref = checkpoint_filter_fn(official, model)
    variants = [
        {'model': {'module.' + k: v for k, v in official.items()}},  # DDP, cls main.py / lib trainer
        {'state_dict': {'module.module.' + k: v for k, v in official.items()}},  # Backbone_EfficientVSSM
        {'ema_model': {'module.module.' + k: v for k, v in official.items()}},  # lib trainer EMA of a DDP model
        # detection backbone: per-level norms, no classifier norm difference
        dict(official, **{'outnorm0.weight': torch.ones(48), 'outnorm0.bias': torch.zeros(48)}),
    ]
    for ckpt in variants:
        out = checkpoint_filter_fn(ckpt, model)
        assert sorted(out) == sorted(ref)
        model.load_state_dict(out, strict=True)


def test_checkpoint_filter_rejects_wrong_variant():
    official = official_state_dict((2, 2, 4, 2), 48)
    with pytest.raises(ValueError, match='checkpoint mismatch'):
        checkpoint_filter_fn({'model': official}, timm.create_model('efficientvmamba_small'))
    with pytest.raises(ValueError, match='checkpoint mismatch.*unexpected'):  # stage 2 depth 4 vs base's 9
        checkpoint_filter_fn({'model': official_state_dict((2, 2, 9, 2), 48)},
                             timm.create_model('efficientvmamba_tiny'))
    del official['layers.2.1.conv_dw.0.weight']
    with pytest.raises(ValueError, match='missing'):
        checkpoint_filter_fn(official, timm.create_model('efficientvmamba_tiny'))


def test_pretrained_from_local_official_file(tmp_path):
    """timm's pretrained path with a local file of official weights converts through checkpoint_filter_fn."""
    path = tmp_path / 'efficientvmamba_tiny.pth'
    official = official_state_dict((2, 2, 4, 2), 48)
    torch.save({'model': official}, path)
    model = timm.create_model('efficientvmamba_tiny', pretrained=True, num_classes=10,
                              pretrained_cfg_overlay=dict(file=str(path)))
    assert model.head.fc.out_features == 10
    torch.testing.assert_close(model.stages[2].blocks[3].conv_pwl.weight, official['layers.2.4.conv_pw2.0.weight'])
    with torch.no_grad():
        assert torch.isfinite(model.eval()(torch.randn(1, 3, 32, 32))).all()
    feats = timm.create_model('efficientvmamba_tiny', pretrained=True, features_only=True,
                              pretrained_cfg_overlay=dict(file=str(path)))
    with torch.no_grad():
        outs = feats(torch.randn(1, 3, 32, 44))
    assert [tuple(o.shape) for o in outs] == [(1, 48, 8, 11), (1, 96, 4, 6), (1, 192, 2, 3), (1, 384, 1, 2)]


# ---------------------------------------------------------------------------------------------------------------
# Training, scan swapping, errors
# ---------------------------------------------------------------------------------------------------------------


def test_efficientvmamba_tiny_trains_on_cpu_at_odd_size():
    # 36 -> 9x9 in stage 0 and 5x5 in stage 1: the atrous scan pads (official 'grid' layout) in training too.
    # Shallower than T to keep CI cheap; the full variants' backward runs in tests/test_models.py.
    model = timm.create_model('efficientvmamba_tiny', num_classes=10, depths=(2, 1, 2, 1), drop_path_rate=0.1)
    losses = train_steps(model.train(), steps=3, size=36)
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize('scan', ['cross', 'bidirectional'])
def test_non_default_scan_strategy_trains(scan):
    model = timm.create_model('efficientvmamba_tiny', num_classes=10, scan=scan, depths=(1, 1, 1, 1),
                              drop_path_rate=0.0)
    mixer = model.stages[0].blocks[0].mixer
    k = get_scan(scan).num_directions
    assert mixer.scan_strategy is get_scan(scan) and mixer.k_group == k
    assert mixer.x_proj_weight.shape[0] == k and mixer.A_logs.shape[0] == k * mixer.d_inner
    losses = train_steps(model, steps=3, size=32)
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]


def test_scan_instance_and_atrous_options():
    end = get_scan('atrous', step=2, pad='end')
    model = timm.create_model('efficientvmamba_tiny', scan=end, depths=(1, 1, 1, 1))
    assert all(b.mixer.scan_strategy is end for s in model.stages[:2] for b in s.blocks)
    model = timm.create_model('efficientvmamba_tiny', scan=get_scan('atrous', step=3), depths=(1, 1, 1, 1))
    assert model.stages[0].blocks[0].mixer.k_group == 9
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 72, 40)).shape == (1, 1000)


def test_bad_scan_and_config_are_clear_errors():
    with pytest.raises(ValueError, match='unknown scan'):
        timm.create_model('efficientvmamba_tiny', scan='spiral-of-doom')
    with pytest.raises(ValueError, match='composite'):
        timm.create_model('efficientvmamba_tiny', scan='multiscale')
    with pytest.raises(ValueError, match='one entry per stage'):
        EfficientVMamba(depths=(2, 2, 4, 2), dims=(48, 96, 192))
    with pytest.raises(ValueError, match='num_ssm_stages'):
        EfficientVMamba(num_ssm_stages=5)


def test_bad_input_is_a_clear_error():
    model = timm.create_model('efficientvmamba_tiny', depths=(1, 1, 1, 1)).eval()
    with pytest.raises(ValueError, match='input channels'):
        model(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match='at least 32x32'):
        model(torch.randn(1, 3, 31, 64))
    with torch.no_grad():  # the smallest allowed size, odd at every stage but the first
        assert model(torch.randn(1, 3, 32, 36)).shape == (1, 1000)


def test_num_ssm_stages_option():
    model = EfficientVMamba(depths=(1, 1, 1, 1), dims=16, num_ssm_stages=3, num_classes=5)
    assert type(model.stages[2].blocks[0]).__name__ == 'EVSSBlock'
    assert type(model.stages[3].blocks[0]).__name__ == 'InvertedResidual'
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 5)
