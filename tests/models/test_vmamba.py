"""VMamba-specific checks: parity with the official parameter / FLOP figures, checkpoint conversion, training."""
import math

import pytest
import timm
import torch

import vmamba_zoo  # noqa: F401
from vmamba_zoo.flops import count_flops, count_params
from vmamba_zoo.models.vmamba import checkpoint_filter_fn

from .helpers import train_steps

# Targets: MzeroMiko/VMamba README / assets/performance.md (params and FLOPs at 224^2, head included, fvcore with the
# selective-scan handle), and exact parameter counts of the official models built on CPU (shared/reference/specs.md).
# name: (official config, depths, dim, ssm_ratio, exact official params, README params (M), README GFLOPs)
TARGETS = {
    'vmamba_tiny': ('vmambav2v_tiny_224.yaml', (2, 2, 8, 2), 96, 1.0, 30_249_064, 30, 4.9),
    'vmamba_small': ('vmambav2_small_224.yaml', (2, 2, 15, 2), 96, 2.0, 50_147_752, 50, 8.7),
    'vmamba_base': ('vmambav2_base_224.yaml', (2, 2, 15, 2), 128, 2.0, 88_557_800, 89, 15.4),
    'vmamba_tiny_s2l5': ('vmambav2_tiny_224.yaml', (2, 2, 5, 2), 96, 2.0, 30_705_832, 31, 4.9),
    'vmamba_small_s1l20': ('vmambav2v_small_224.yaml', (2, 2, 20, 2), 96, 1.0, 49_012_840, 49, 8.6),
    'vmamba_base_s1l20': ('vmambav2v_base_224.yaml', (2, 2, 20, 2), 128, 1.0, 86_614_504, 87, 15.2),
}
# Vanilla-VMamba (forward_type v0): name -> (official config, depths, dim, exact official params, README params (M),
# README GFLOPs). Exact counts: the official builders vanilla_vmamba_{tiny,small,base} built on CPU (commit 2ed52ea).
VANILLA_TARGETS = {
    'vanilla_vmamba_tiny': ('vmambav0_tiny_224.yaml', (2, 2, 9, 2), 96, 22_893_448, 23, 5.6),
    'vanilla_vmamba_small': ('vmambav0_small_224.yaml', (2, 2, 27, 2), 96, 44_417_416, 44, 11.2),
    'vanilla_vmamba_base': ('vmambav0_base_224.yaml', (2, 2, 27, 2), 128, 76_254_056, 76, 18.0),
}
# Exact FLOPs of the official models: their own graph traced by fvcore with the official supported_ops of
# ``VSSM.flops()`` and the official scan formula (csms6s.flops_selective_scan_fn), the CUDA scan swapped for the zoo
# op so it traces on CPU. The v0 einsum projections are counted by fvcore through numpy's einsum_path, whose
# printed FLOP figure is rounded to 4 digits: noise of up to a few 1e-5 there (vanilla T: 5,626,895,040
# official vs 5,626,902,528 here, 1.3e-6 relative; vanilla B: 18,020,115,136 vs 18,019,627,008, 2.7e-5), so the
# official-graph check allows 1e-4 -- still 200x tighter than the 2% and far below one block's FLOPs.
OFFICIAL_FLOPS = {
    'vmamba_tiny': 4_905_609_984,
    'vmamba_tiny_s2l5': 4_857_742_080,
    'vmamba_small_s1l20': 8_612_211_456,
    'vmamba_base_s1l20': 15_220_859_904,
    'vanilla_vmamba_tiny': 5_626_895_040,
    'vanilla_vmamba_small': 11_231_522_784,
    'vanilla_vmamba_base': 18_020_115_136,
}


def _depths(name):
    return TARGETS[name][1] if name in TARGETS else VANILLA_TARGETS[name][1]


def _readme(name):
    """(README params in M, README GFLOPs)"""
    t = TARGETS.get(name) or VANILLA_TARGETS[name]
    return t[-2], t[-1]


def _exact_params(name):
    return TARGETS[name][4] if name in TARGETS else VANILLA_TARGETS[name][3]


ALL_NAMES = sorted(TARGETS) + sorted(VANILLA_TARGETS)


@pytest.mark.parametrize('name', ALL_NAMES)
def test_params_match_official(name):
    n = count_params(timm.create_model(name))
    assert n == _exact_params(name), f'{name}: {n} params vs official {_exact_params(name)}'
    assert round(n / 1e6) == _readme(name)[0]  # the README rounds to 1M


def _flops_224(name, **kwargs):
    flops, unsupported = count_flops(timm.create_model(name, **kwargs), (3, 224, 224), return_unsupported=True)
    assert 'prim::PythonOp.SelectiveScanFn' not in unsupported
    return flops


def _flops(name):
    """FLOPs at 224^2. Deep variants are counted on two shallow copies: every stage-3 block has the same shapes,
    so FLOPs are affine in the stage-3 depth -- exact, and a fraction of the CPU time of tracing the full model."""
    d0, d1, d2, d3 = _depths(name)
    if d2 <= 9:
        return _flops_224(name)
    f1 = _flops_224(name, depths=(d0, d1, 1, d3))
    f2 = _flops_224(name, depths=(d0, d1, 2, d3))
    return f1 + (d2 - 1) * (f2 - f1)


@pytest.mark.slow
@pytest.mark.parametrize('name', ALL_NAMES)
def test_flops_match_readme(name):
    gflops = _readme(name)[1]
    flops = _flops(name)
    assert round(flops / 1e9, 1) == gflops, f'{name}: {flops / 1e9:.3f} GFLOPs vs README {gflops}'
    if name in OFFICIAL_FLOPS:
        official = OFFICIAL_FLOPS[name]
        assert abs(flops - official) <= 1e-4 * official, f'{name}: {flops} FLOPs vs official model {official}'


def official_state_dict(depths, dim, ssm_ratio, d_state=1, num_classes=1000, seed=0):
    """A state_dict named and shaped as MzeroMiko/VMamba saves its v2 classifiers (``VSSM`` with ln2d /
    Linear2d; keys from ``classification/models/vmamba.py``), filled with distinct random values."""
    g = torch.Generator().manual_seed(seed)
    shapes = {}
    c = dim
    shapes.update({
        'patch_embed.0.weight': (c // 2, 3, 3, 3), 'patch_embed.0.bias': (c // 2,),
        'patch_embed.2.weight': (c // 2,), 'patch_embed.2.bias': (c // 2,),
        'patch_embed.5.weight': (c, c // 2, 3, 3), 'patch_embed.5.bias': (c,),
        'patch_embed.7.weight': (c,), 'patch_embed.7.bias': (c,),
    })
    dims = [dim * 2 ** i for i in range(len(depths))]
    for i, depth in enumerate(depths):
        d = dims[i]
        d_inner, rank = int(ssm_ratio * d), math.ceil(d / 16)
        for j in range(depth):
            p = f'layers.{i}.blocks.{j}.'
            shapes.update({
                p + 'norm.weight': (d,), p + 'norm.bias': (d,),
                p + 'op.in_proj.weight': (d_inner, d),
                p + 'op.conv2d.weight': (d_inner, 1, 3, 3),
                p + 'op.x_proj_weight': (4, rank + 2 * d_state, d_inner),
                p + 'op.dt_projs_weight': (4, d_inner, rank), p + 'op.dt_projs_bias': (4, d_inner),
                p + 'op.A_logs': (4 * d_inner, d_state), p + 'op.Ds': (4 * d_inner,),
                p + 'op.out_norm.weight': (d_inner,), p + 'op.out_norm.bias': (d_inner,),
                p + 'op.out_proj.weight': (d, d_inner),
                p + 'norm2.weight': (d,), p + 'norm2.bias': (d,),
                p + 'mlp.fc1.weight': (4 * d, d), p + 'mlp.fc1.bias': (4 * d,),
                p + 'mlp.fc2.weight': (d, 4 * d), p + 'mlp.fc2.bias': (d,),
            })
        if i < len(depths) - 1:
            p = f'layers.{i}.downsample.'
            shapes.update({p + '1.weight': (dims[i + 1], d, 3, 3), p + '1.bias': (dims[i + 1],),
                           p + '3.weight': (dims[i + 1],), p + '3.bias': (dims[i + 1],)})
    shapes.update({'classifier.norm.weight': (dims[-1],), 'classifier.norm.bias': (dims[-1],),
                   'classifier.head.weight': (num_classes, dims[-1]), 'classifier.head.bias': (num_classes,)})
    return {k: torch.randn(s, generator=g) for k, s in shapes.items()}


@pytest.mark.parametrize('name', sorted(TARGETS))
def test_checkpoint_filter_converts_official_checkpoint(name):
    _, depths, dim, ratio, exact, _, _ = TARGETS[name]
    official = official_state_dict(depths, dim, ratio)
    assert abs(sum(v.numel() for v in official.values()) - exact) <= 1_000  # the fake follows the real layout
    model = timm.create_model(name)
    converted = checkpoint_filter_fn({'model': official}, model)
    model.load_state_dict(converted, strict=True)
    sd = model.state_dict()
    torch.testing.assert_close(sd['stem.conv2.weight'], official['patch_embed.5.weight'])
    torch.testing.assert_close(sd['stages.1.downsample.conv.weight'], official['layers.0.downsample.1.weight'])
    torch.testing.assert_close(sd['stages.3.downsample.norm.bias'], official['layers.2.downsample.3.bias'])
    torch.testing.assert_close(sd['stages.2.blocks.1.mixer.A_logs'], official['layers.2.blocks.1.op.A_logs'])
    torch.testing.assert_close(sd['norm.weight'], official['classifier.norm.weight'])
    torch.testing.assert_close(sd['head.fc.weight'], official['classifier.head.weight'])
    # an already converted checkpoint passes through; 'module.' prefixes and 1x1-conv-shaped Linear2d weights too
    assert checkpoint_filter_fn(converted, model) is not None
    wrapped = {'state_dict': {'module.' + k: (v[..., None, None] if k.endswith('in_proj.weight') else v)
                              for k, v in official.items()}}
    model.load_state_dict(checkpoint_filter_fn(wrapped, model), strict=True)


def official_v0_state_dict(depths, dim, num_classes=1000, seed=0, old_names=False):
    """A state_dict named and shaped as MzeroMiko/VMamba saves Vanilla-VMamba (``VSSM`` with forward_type v0,
    PATCHEMBED v1, DOWNSAMPLE v1 = ``PatchMerging2D``, channel-last LayerNorm, no MLP; d_state 16, ssm_ratio 2).
    ``old_names``: the first public code's names (Jan 2024) that ``VSSM._load_from_state_dict`` still renames:
    patch_embed.proj/norm, blocks.j.ln_1, blocks.j.self_attention, norm, head."""
    g = torch.Generator().manual_seed(seed)
    d_state = 16
    pe = ('patch_embed.proj.', 'patch_embed.norm.') if old_names else ('patch_embed.0.', 'patch_embed.2.')
    shapes = {pe[0] + 'weight': (dim, 3, 4, 4), pe[0] + 'bias': (dim,), pe[1] + 'weight': (dim,), pe[1] + 'bias': (dim,)}
    dims = [dim * 2 ** i for i in range(len(depths))]
    for i, depth in enumerate(depths):
        d = dims[i]
        d_inner, rank = 2 * d, math.ceil(d / 16)
        for j in range(depth):
            p = f'layers.{i}.blocks.{j}.'
            norm, op = (p + 'ln_1.', p + 'self_attention.') if old_names else (p + 'norm.', p + 'op.')
            shapes.update({
                norm + 'weight': (d,), norm + 'bias': (d,),
                op + 'in_proj.weight': (2 * d_inner, d),
                op + 'conv2d.weight': (d_inner, 1, 3, 3), op + 'conv2d.bias': (d_inner,),
                op + 'x_proj_weight': (4, rank + 2 * d_state, d_inner),
                op + 'dt_projs_weight': (4, d_inner, rank), op + 'dt_projs_bias': (4, d_inner),
                op + 'A_logs': (4 * d_inner, d_state), op + 'Ds': (4 * d_inner,),
                op + 'out_norm.weight': (d_inner,), op + 'out_norm.bias': (d_inner,),
                op + 'out_proj.weight': (d, d_inner),
            })
        if i < len(depths) - 1:
            p = f'layers.{i}.downsample.'
            shapes.update({p + 'reduction.weight': (dims[i + 1], 4 * d),
                           p + 'norm.weight': (4 * d,), p + 'norm.bias': (4 * d,)})
    head = ('norm.', 'head.') if old_names else ('classifier.norm.', 'classifier.head.')
    shapes.update({head[0] + 'weight': (dims[-1],), head[0] + 'bias': (dims[-1],),
                   head[1] + 'weight': (num_classes, dims[-1]), head[1] + 'bias': (num_classes,)})
    return {k: torch.randn(s, generator=g) for k, s in shapes.items()}


@pytest.mark.parametrize('old_names', [False, True], ids=['current_names', 'jan2024_names'])
def test_checkpoint_filter_converts_official_vanilla_checkpoint(old_names):
    _, depths, dim, exact, _, _ = VANILLA_TARGETS['vanilla_vmamba_tiny']
    official = official_v0_state_dict(depths, dim, old_names=old_names)
    assert sum(v.numel() for v in official.values()) == exact  # the fake follows the real layout
    model = timm.create_model('vanilla_vmamba_tiny')
    model.load_state_dict(checkpoint_filter_fn({'model': official}, model), strict=True)
    sd = model.state_dict()
    pe = 'patch_embed.proj.' if old_names else 'patch_embed.0.'
    blk = 'layers.2.blocks.3.self_attention.' if old_names else 'layers.2.blocks.3.op.'
    torch.testing.assert_close(sd['stem.proj.weight'], official[pe + 'weight'])
    torch.testing.assert_close(sd['stages.2.blocks.3.mixer.in_proj.weight'], official[blk + 'in_proj.weight'])
    torch.testing.assert_close(sd['stages.2.blocks.3.mixer.conv2d.bias'], official[blk + 'conv2d.bias'])
    torch.testing.assert_close(sd['stages.2.blocks.3.mixer.out_norm.weight'], official[blk + 'out_norm.weight'])
    torch.testing.assert_close(sd['stages.1.downsample.reduction.weight'],
                               official['layers.0.downsample.reduction.weight'])
    torch.testing.assert_close(sd['stages.3.downsample.norm.bias'], official['layers.2.downsample.norm.bias'])
    torch.testing.assert_close(sd['norm.weight'], official['norm.weight' if old_names else 'classifier.norm.weight'])
    # a v2 checkpoint does not fit a vanilla model, and vice versa
    with pytest.raises(ValueError, match='checkpoint mismatch'):
        checkpoint_filter_fn(official_state_dict((2, 2, 9, 2), 96, 2.0), model)
    with pytest.raises(ValueError, match='checkpoint mismatch'):
        checkpoint_filter_fn(official, timm.create_model('vmamba_tiny'))


def test_pretrained_vanilla_from_local_official_file(tmp_path):
    path = tmp_path / 'vssmtiny_dp01_ckpt_epoch_292.pth'
    official = official_v0_state_dict((2, 2, 9, 2), 96, old_names=True)
    torch.save({'model': official}, path)
    model = timm.create_model('vanilla_vmamba_tiny', pretrained=True, num_classes=10,
                              pretrained_cfg_overlay=dict(file=str(path)))
    assert model.head.fc.out_features == 10
    torch.testing.assert_close(model.stem.proj.weight.detach(), official['patch_embed.proj.weight'])
    with torch.no_grad():
        assert torch.isfinite(model.eval()(torch.randn(1, 3, 64, 64))).all()


def test_patch_merging_matches_official_order():
    """Vanilla-VMamba's downsample is the official PatchMerging2D: 2x2 neighbours concatenated in the order
    (0,0), (1,0), (0,1), (1,1) (row, col offsets; ``_patch_merging_pad_channel_last``) -> LayerNorm(4C) ->
    Linear(4C, 2C, no bias), applied at the end of stages 0..2 (here: start of stages 1..3)."""
    model = timm.create_model('vanilla_vmamba_tiny', depths=(1, 1, 1, 1))
    ds = model.stages[1].downsample
    x = torch.randn(2, 6, 10, 96)
    ref = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
    ref = torch.nn.functional.linear(torch.nn.functional.layer_norm(ref, (384,), ds.norm.weight, ds.norm.bias),
                                     ds.reduction.weight)
    torch.testing.assert_close(ds(x), ref)
    assert ds.reduction.bias is None and ds.reduction.weight.shape == (192, 384)
    mixer = model.stages[0].blocks[0].mixer
    assert mixer.gate and mixer.d_state == 16 and mixer.d_inner == 192 and mixer.dt_rank == 6
    assert mixer.conv2d.bias is not None and mixer.in_proj.bias is None and mixer.out_proj.bias is None
    assert model.stages[0].blocks[0].mlp is None


def test_checkpoint_filter_rejects_wrong_variant():
    official = official_state_dict((2, 2, 8, 2), 96, 1.0)
    with pytest.raises(ValueError, match='checkpoint mismatch'):
        checkpoint_filter_fn({'model': official}, timm.create_model('vmamba_small'))
    del official['layers.0.blocks.0.op.A_logs']
    with pytest.raises(ValueError, match='missing'):
        checkpoint_filter_fn(official, timm.create_model('vmamba_tiny'))


def test_pretrained_from_local_official_file(tmp_path):
    """timm's pretrained path with a local file of official weights converts through checkpoint_filter_fn."""
    path = tmp_path / 'vssm1_tiny_0230s_ckpt_epoch_264.pth'
    torch.save({'model': official_state_dict((2, 2, 8, 2), 96, 1.0)}, path)
    model = timm.create_model('vmamba_tiny', pretrained=True, num_classes=10,
                              pretrained_cfg_overlay=dict(file=str(path)))
    assert model.head.fc.out_features == 10
    with torch.no_grad():
        assert torch.isfinite(model.eval()(torch.randn(1, 3, 64, 64))).all()




def test_vmamba_tiny_trains_a_step_on_cpu():
    model = timm.create_model('vmamba_tiny', num_classes=10, drop_path_rate=0.0).train()
    losses = train_steps(model, steps=4, size=64)
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]


def test_vanilla_vmamba_trains_a_step_on_cpu():
    model = timm.create_model('vanilla_vmamba_tiny', num_classes=10, depths=(1, 1, 1, 1), drop_path_rate=0.0).train()
    losses = train_steps(model, steps=4, size=64)
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]


def test_unknown_stem_or_downsample_type_is_a_clear_error():
    with pytest.raises(ValueError, match='stem_type'):
        timm.create_model('vmamba_tiny', stem_type='hexagonal')
    with pytest.raises(ValueError, match='downsample_type'):
        timm.create_model('vmamba_tiny', downsample_type='pool')


@pytest.mark.parametrize('scan', ['bidirectional', 'unidirectional', 'zigzag'])
def test_non_default_scan_strategy_runs_and_trains(scan):
    model = timm.create_model('vmamba_tiny', num_classes=10, scan=scan, depths=(1, 1, 1, 1), drop_path_rate=0.0)
    k = model.stages[0].blocks[0].mixer.k_group
    assert model.stages[0].blocks[0].mixer.x_proj_weight.shape[0] == k
    losses = train_steps(model, steps=4, size=64)
    assert losses[-1] < losses[0]


def test_unknown_scan_is_a_clear_error():
    with pytest.raises(ValueError, match='unknown scan'):
        timm.create_model('vmamba_tiny', scan='spiral-of-doom')
