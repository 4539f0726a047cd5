"""Spatial-Mamba-specific checks: parity with the official parameter / FLOP figures, the mixer against the official
formulation, checkpoint conversion, scan swapping."""
import math

import pytest
import timm
import torch
import torch.nn.functional as F

import vmamba_zoo  # noqa: F401
from vmamba_zoo.flops import count_flops, count_params
from vmamba_zoo.models.spatialmamba import StructureAwareSSM, checkpoint_filter_fn
from vmamba_zoo.ops.selective_scan import selective_scan_naive

from .helpers import bn_shapes, random_state_dict
from .test_efficientvmamba import _num_params  # parameter count of a state_dict

# Targets (EdwardChasel/Spatial-Mamba, commit 71221eb):
# * exact params / FLOPs: the official ``SpatialMamba`` (classification/models/spatialmamba.py) built on CPU with
#   the yaml values through ``build_model``, 1000 classes, 224x224, FLOPs counted as its ``SpatialMamba.flops()``
#   does (fvcore ``flop_count`` in train mode, ``selective_scan_state_flop_jit`` = 7*B*L*D*N, the three dilated
#   fusion convs counted by fvcore) -- ``tools/verify_official_spatialmamba.py --flops``, CUDA ops replaced by
#   PyTorch stand-ins.
# * README "Image Classification on ImageNet-1K": params 27M / 43M / 96M, FLOPs 4.5G / 7.1G / 15.8G,
#   top-1 83.5 / 84.6 / 85.3.
# name: (config, depths, dim, exact official params, exact official FLOPs, README params (M), README GFLOPs)
TARGETS = {
    'spatialmamba_tiny': ('spatialmamba_tiny.yaml', (2, 4, 8, 4), 64, 26_748_862, 4_467_681_280, 27, 4.5),
    'spatialmamba_small': ('spatialmamba_small.yaml', (2, 4, 21, 5), 64, 43_074_280, 7_116_974_080, 43, 7.1),
    'spatialmamba_base': ('spatialmamba_base.yaml', (2, 4, 21, 5), 96, 95_745_592, 15_800_638_464, 96, 15.8),
}


@pytest.mark.parametrize('name', sorted(TARGETS))
def test_params_match_official(name):
    *_, exact, _, readme_m, _ = TARGETS[name]
    n = count_params(timm.create_model(name))
    assert n == exact, f'{name}: {n} params vs official {exact}'
    assert round(n / 1e6) == readme_m


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(TARGETS))
def test_flops_match_official(name):
    *_, exact, _, gflops = TARGETS[name]
    model = timm.create_model(name)
    bn_elements = {}  # BatchNorm output sizes, recorded while count_flops traces the model
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.register_forward_hook(lambda m, i, o: bn_elements.__setitem__(id(m), o.numel()))
    flops, unsupported = count_flops(model, (3, 224, 224), return_unsupported=True)
    assert abs(flops - exact) / exact < 0.002, f'{name}: {flops} FLOPs vs official {exact}'
    assert round(flops / 1e9, 1) == gflops
    assert 'prim::PythonOp.StateFusionScanFn' not in unsupported
    # The whole difference, exactly: the official count ran in train mode, where fvcore counts BatchNorm at 5 per
    # element, ours in eval mode (2 per element); and ours counts the pooled head's mean (1 per element), which the
    # official nn.AdaptiveAvgPool1d leaves unsupported.
    assert flops == exact - 3 * sum(bn_elements.values()) + model.num_features * 7 * 7


def test_architecture_layout():
    model = timm.create_model('spatialmamba_tiny')
    assert [len(s.blocks) for s in model.stages] == [2, 4, 8, 4]
    mixer = model.stages[1].blocks[0].mixer
    assert (mixer.k_group, mixer.d_state, mixer.d_inner, mixer.dt_rank, mixer.dilations) == (1, 1, 256, 8, (1, 3, 5))
    assert mixer.scan_strategy.name == 'unidirectional'
    assert torch.equal(mixer.fusion_weight, torch.ones(3, 256, 3, 3))  # the official init: ones
    assert model.feature_info == [dict(num_chs=64 * 2 ** i, reduction=4 * 2 ** i, module=f'stages.{i}')
                                  for i in range(4)]
    cfg = model.pretrained_cfg
    assert (cfg['input_size'], cfg['crop_pct'], cfg['interpolation']) == ((3, 224, 224), 0.875, 'bicubic')
    dpr = [b.drop_path.drop_prob for s in model.stages for b in s.blocks]
    assert dpr[0] == 0.0 and dpr[-1] == pytest.approx(0.2) and len(dpr) == 18  # linear 0 .. 0.2 over 18 blocks


# ---------------------------------------------------------------------------------------------------------------
# The mixer against the official StructureAwareSSM, written out
# ---------------------------------------------------------------------------------------------------------------
def _official_ssm(x, mixer, kernels, alpha):
    """``StructureAwareSSM.forward`` / ``ssm`` / ``StateFusion.forward`` (training path) of the official code, with
    the CUDA state scan replaced by the reference scan returning states: x (B, H, W, C)."""
    B, H, W, _ = x.shape
    E, R, N = mixer.d_inner, mixer.dt_rank, mixer.d_state
    xz = x @ mixer.in_proj.weight.t()
    xx, z = xz.chunk(2, dim=-1)
    xx = F.silu(mixer.conv2d(xx.permute(0, 3, 1, 2)))
    xs = xx.reshape(B, E, H * W)
    x_dbl = torch.matmul(mixer.x_proj_weight.view(1, -1, E), xs)
    dts, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=1)
    dts = torch.matmul(mixer.dt_projs_weight.view(1, E, -1), dts)
    h = selective_scan_naive(xs, dts, -torch.exp(mixer.A_logs), Bs, None, delta_bias=mixer.dt_projs_bias.view(-1),
                             delta_softplus=True, return_states=True).view(B, E, H, W)
    h = sum(alpha[i] * F.conv2d(F.pad(h, (d,) * 4, mode='replicate'), kernels[i], dilation=d, groups=E)
            for i, d in enumerate((1, 3, 5)))
    y = h.reshape(B, E, -1) * Cs + xs * mixer.Ds.view(-1, 1)
    y = mixer.out_norm(y.transpose(1, 2).reshape(B, H, W, E)) * F.silu(z)
    return y @ mixer.out_proj.weight.t()


@pytest.mark.parametrize('size', [(6, 8), (5, 7), (1, 4)])
def test_mixer_matches_official_formulation(size):
    torch.manual_seed(0)
    mixer = StructureAwareSSM(64)
    kernels = [torch.randn(mixer.d_inner, 1, 3, 3) * 0.3 for _ in range(3)]
    alpha = torch.randn(3)
    with torch.no_grad():
        for p in (mixer.x_proj_weight, mixer.dt_projs_bias, mixer.Ds):
            p.add_(torch.randn_like(p) * 0.3)
        mixer.fusion_weight.copy_(torch.stack([k[:, 0] for k in kernels]))
        mixer.fusion_alpha.copy_(alpha)
        x = torch.randn(2, *size, 64)
        torch.testing.assert_close(mixer(x), _official_ssm(x, mixer, kernels, alpha), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# Checkpoint conversion
# ---------------------------------------------------------------------------------------------------------------
def official_state_dict(depths, dim, num_classes=1000, seed=0):
    """A state_dict named and shaped as the official ``SpatialMamba`` saves it (module names of
    classification/models/spatialmamba.py and utils.py), distinct random values (BN running_var positive)."""
    half, shapes = dim // 2, {}
    for name, (cin, cout, k) in {'conv1': (3, half, 3), 'conv2.0': (half, half, 3), 'conv2.1': (half, half, 3),
                                 'conv3.0': (half, 4 * dim, 3), 'conv3.1': (4 * dim, dim, 1)}.items():
        shapes[f'patch_embed.{name}.conv.weight'] = (cout, cin, k, k)
        shapes.update(bn_shapes(f'patch_embed.{name}.norm.', cout))
    dims = [dim * 2 ** i for i in range(len(depths))]
    for i, depth in enumerate(depths):
        c = dims[i]
        e, r = 2 * c, math.ceil(c / 16)
        for j in range(depth):
            p = f'layers.{i}.blocks.{j}.'
            a = p + 'self_attention.'
            shapes.update({
                p + 'cpe1.weight': (c, 1, 3, 3), p + 'cpe1.bias': (c,), p + 'ln_1.weight': (c,), p + 'ln_1.bias': (c,),
                a + 'in_proj.weight': (2 * e, c), a + 'conv2d.weight': (e, 1, 3, 3), a + 'conv2d.bias': (e,),
                a + 'x_proj_weight': (r + 2, e), a + 'dt_projs_weight': (e, r), a + 'dt_projs_bias': (e,),
                a + 'A_logs': (e, 1), a + 'Ds': (e,), a + 'state_fusion.kernel_3': (e, 1, 3, 3),
                a + 'state_fusion.kernel_3_1': (e, 1, 3, 3), a + 'state_fusion.kernel_3_2': (e, 1, 3, 3),
                a + 'state_fusion.alpha': (3,), a + 'out_norm.weight': (e,), a + 'out_norm.bias': (e,),
                a + 'out_proj.weight': (c, e),
                p + 'cpe2.weight': (c, 1, 3, 3), p + 'cpe2.bias': (c,), p + 'ln_2.weight': (c,), p + 'ln_2.bias': (c,),
                p + 'mlp.fc1.weight': (4 * c, c), p + 'mlp.fc1.bias': (4 * c,), p + 'mlp.fc2.weight': (c, 4 * c),
                p + 'mlp.fc2.bias': (c,),
            })
        if i < len(depths) - 1:
            d = f'layers.{i}.downsample.conv.'
            shapes.update({d + '0.conv.weight': (8 * c, c, 1, 1), d + '0.conv.bias': (8 * c,),
                           d + '1.conv.weight': (8 * c, 1, 3, 3), d + '1.conv.bias': (8 * c,),
                           d + '2.conv.weight': (2 * c, 8 * c, 1, 1), d + '2.conv.bias': (2 * c,)})
            shapes.update(bn_shapes(d + '2.norm.', 2 * c))
    shapes.update({'norm.weight': (dims[-1],), 'norm.bias': (dims[-1],),
                   'head.weight': (num_classes, dims[-1]), 'head.bias': (num_classes,)})
    return random_state_dict(shapes, seed)


@pytest.mark.parametrize('name', sorted(TARGETS))
def test_checkpoint_filter_converts_official_checkpoint(name):
    _, depths, dim, exact, *_ = TARGETS[name]
    official = official_state_dict(depths, dim)
    assert _num_params(official) == exact  # the fake follows the real layout
    model = timm.create_model(name)
    converted = checkpoint_filter_fn({'model': official}, model)
    model.load_state_dict(converted, strict=True)
    sd = model.state_dict()
    b = 'layers.2.blocks.3.'
    pairs = {
        'stem.conv1.conv.weight': 'patch_embed.conv1.conv.weight',
        'stem.conv1.bn.running_var': 'patch_embed.conv1.norm.running_var',
        'stem.conv3.1.bn.bias': 'patch_embed.conv3.1.norm.bias',
        'stages.2.blocks.3.cpe1.weight': b + 'cpe1.weight',
        'stages.2.blocks.3.norm1.bias': b + 'ln_1.bias',
        'stages.2.blocks.3.mixer.in_proj.weight': b + 'self_attention.in_proj.weight',
        'stages.2.blocks.3.mixer.A_logs': b + 'self_attention.A_logs',
        'stages.2.blocks.3.mixer.fusion_alpha': b + 'self_attention.state_fusion.alpha',
        'stages.2.blocks.3.mixer.out_norm.weight': b + 'self_attention.out_norm.weight',
        'stages.2.blocks.3.norm2.weight': b + 'ln_2.weight',
        'stages.2.blocks.3.mlp.fc2.bias': b + 'mlp.fc2.bias',
        'stages.1.downsample.expand.weight': 'layers.0.downsample.conv.0.conv.weight',
        'stages.2.downsample.dw.bias': 'layers.1.downsample.conv.1.conv.bias',
        'stages.3.downsample.project.conv.weight': 'layers.2.downsample.conv.2.conv.weight',
        'stages.3.downsample.project.bn.running_mean': 'layers.2.downsample.conv.2.norm.running_mean',
        'norm.weight': 'norm.weight',
        'head.fc.weight': 'head.weight',
    }
    for ours, theirs in pairs.items():
        torch.testing.assert_close(sd[ours], official[theirs], msg=f'{ours} <- {theirs}')
    mixer = 'stages.2.blocks.3.mixer.'
    a = b + 'self_attention.'
    torch.testing.assert_close(sd[mixer + 'x_proj_weight'][0], official[a + 'x_proj_weight'])
    torch.testing.assert_close(sd[mixer + 'dt_projs_weight'][0], official[a + 'dt_projs_weight'])
    torch.testing.assert_close(sd[mixer + 'dt_projs_bias'][0], official[a + 'dt_projs_bias'])
    for i, part in enumerate(('kernel_3', 'kernel_3_1', 'kernel_3_2')):  # dilations 1, 3, 5
        torch.testing.assert_close(sd[mixer + 'fusion_weight'][i], official[a + 'state_fusion.' + part][:, 0])
    again = checkpoint_filter_fn(converted, model)  # already converted: unchanged
    assert sorted(again) == sorted(converted) and all(again[k] is converted[k] for k in converted)


def test_checkpoint_filter_accepts_official_wrappers_and_prefixes():
    official = official_state_dict((2, 4, 8, 4), 64)
    model = timm.create_model('spatialmamba_tiny')
    ref = checkpoint_filter_fn(official, model)
    backbone = {k: v for k, v in official.items() if not k.startswith(('norm.', 'head.'))}
    backbone.update({f'outnorm{i}.{p}': torch.ones(64 * 2 ** i) for i in range(4) for p in ('weight', 'bias')})
    for ckpt in ({'model': {'module.' + k: v for k, v in official.items()}}, {'state_dict': official}):
        out = checkpoint_filter_fn(ckpt, model)
        assert sorted(out) == sorted(ref)
        model.load_state_dict(out, strict=True)
    # detection backbone (Backbone_SpatialMamba): per-level outnorms dropped; its missing classifier is reported
    with pytest.raises(ValueError, match='missing head.fc.weight'):
        checkpoint_filter_fn({'model': backbone}, model)


def test_checkpoint_filter_rejects_wrong_variant_and_non_default_scan():
    official = official_state_dict((2, 4, 8, 4), 64)
    with pytest.raises(ValueError, match=r'checkpoint mismatch for Spatial-Mamba.*missing stages\.2\.blocks\.1\d'):
        checkpoint_filter_fn(official, timm.create_model('spatialmamba_small'))
    with pytest.raises(ValueError, match=r'x_proj_weight: checkpoint \(1, 6, 128\) vs model \(2, 6, 128\)'):
        checkpoint_filter_fn(official, timm.create_model('spatialmamba_tiny', scan='bidirectional'))


def test_converted_weights_reproduce_after_an_eval_forward():
    """The official eval path caches its merged kernel on the first forward (weights loaded later are ignored
    there); the zoo keeps no cache, so loading after an eval forward takes effect."""
    torch.manual_seed(0)
    model = timm.create_model('spatialmamba_tiny').eval()
    other = timm.create_model('spatialmamba_tiny').eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(torch.randn_like(p) * 0.02)  # fusion kernels and alpha included
        before = model(x)
        model.load_state_dict(other.state_dict())
        after = model(x)
        torch.testing.assert_close(after, other(x))
        assert (after - before).abs().max() > 1e-3


# ---------------------------------------------------------------------------------------------------------------
# scan=
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('scan', ['cross', 'zigzag'])
def test_other_scans_give_one_parameter_set_per_direction(scan):
    torch.manual_seed(0)
    model = timm.create_model('spatialmamba_tiny', scan=scan, num_classes=5)
    mixer = model.stages[0].blocks[0].mixer
    assert mixer.k_group == 4 and tuple(mixer.x_proj_weight.shape) == (4, 6, 128)
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 5) and torch.isfinite(out).all()


def _copy_direction(bi, k, uni, silence_other=True):
    """Give direction k of a bidirectional mixer the parameters of a unidirectional one; silence the other
    direction (no input to its states: B rows of x_proj zero; D zero), so the output is direction k's alone."""
    E, R, N = uni.d_inner, uni.dt_rank, uni.d_state
    with torch.no_grad():
        for name in ('in_proj', 'conv2d', 'out_norm', 'out_proj'):
            getattr(bi, name).load_state_dict(getattr(uni, name).state_dict())
        bi.fusion_weight.copy_(uni.fusion_weight)
        bi.fusion_alpha.copy_(uni.fusion_alpha)
        bi.x_proj_weight[k] = uni.x_proj_weight[0]
        bi.dt_projs_weight[k] = uni.dt_projs_weight[0]
        bi.dt_projs_bias[k] = uni.dt_projs_bias[0]
        bi.A_logs[k * E:(k + 1) * E] = uni.A_logs
        bi.Ds[k * E:(k + 1) * E] = uni.Ds
        other = 1 - k
        bi.x_proj_weight[other, R:R + N] = 0
        bi.Ds[other * E:(other + 1) * E] = 0


def test_bidirectional_directions_are_the_row_major_ssm_forwards_and_backwards():
    """Direction 0 of 'bidirectional' is the row-major SSM; direction 1 reads the map in reverse, i.e. it is the
    row-major SSM on the map rotated by 180 degrees (with the depth-wise and fusion kernels rotated too)."""
    torch.manual_seed(0)
    uni = StructureAwareSSM(64)
    with torch.no_grad():
        for p in (uni.fusion_weight, uni.conv2d.weight, uni.x_proj_weight):
            p.add_(torch.randn_like(p) * 0.3)  # asymmetric kernels, so a wrong orientation shows
    bi = StructureAwareSSM(64, scan='bidirectional')
    x = torch.randn(2, 5, 6, 64)
    with torch.no_grad():
        _copy_direction(bi, 0, uni)
        torch.testing.assert_close(bi(x), uni(x), rtol=1e-5, atol=1e-5)
        _copy_direction(bi, 1, uni)
        rotated = StructureAwareSSM(64)
        rotated.load_state_dict(uni.state_dict())
        rotated.conv2d.weight.copy_(uni.conv2d.weight.flip(-1, -2))
        rotated.fusion_weight.copy_(uni.fusion_weight.flip(-1, -2))
        expected = rotated(x.flip(1, 2)).flip(1, 2)
        torch.testing.assert_close(bi(x), expected, rtol=1e-5, atol=1e-5)


def test_scans_that_skip_pixels_are_rejected():
    with pytest.raises(ValueError, match="scan strategy 'atrous' must visit every pixel once per direction"):
        timm.create_model('spatialmamba_tiny', scan='atrous')
    with pytest.raises(ValueError, match='unknown|Unknown'):
        timm.create_model('spatialmamba_tiny', scan='no_such_scan')
