"""MambaOut in the zoo = timm's MambaOut, listed through ``expose_timm_model``: identity with timm, parity with the
official yuweihao/MambaOut models (params, MACs, outputs of an official-format checkpoint)."""
import pytest
import timm
import torch
import torch.nn.functional as F
from timm.models import model_entrypoint as get_model_entrypoint

import vmamba_zoo
from vmamba_zoo.flops import count_flops, count_params
from vmamba_zoo.models._registry import expose_timm_model, is_exposed_timm_model
from vmamba_zoo.models.mambaout import OFFICIAL_VARIANTS, MambaOut, checkpoint_filter_fn

# name: (depths, dims, exact official params, README params (M), README GMACs)
# README: yuweihao/MambaOut README.md "Models" (commit 9f2f234; its column is MACs, the zoo's count_flops counts
# MACs too). Exact params: the official builders of models/mambaout.py built on CPU (1000 classes, head included).
TARGETS = {
    'mambaout_femto': ((3, 3, 9, 3), (48, 96, 192, 288), 7_304_536, 7.3, 1.2),
    'mambaout_kobe': ((3, 3, 15, 3), (48, 96, 192, 288), 9_141_208, 9.1, 1.5),
    'mambaout_tiny': ((3, 3, 9, 3), (96, 192, 384, 576), 26_545_096, 26.5, 4.5),
    'mambaout_small': ((3, 4, 27, 3), (96, 192, 384, 576), 48_488_072, 48.5, 9.0),
    'mambaout_base': ((3, 4, 27, 3), (128, 256, 512, 768), 84_813_092, 84.8, 15.8),
}


def test_zoo_lists_timm_mambaout_without_reregistering():
    assert set(OFFICIAL_VARIANTS) == set(TARGETS)
    assert set(vmamba_zoo.list_models('mambaout*')) == set(TARGETS)  # timm's *_rw experiments are not listed
    for name in TARGETS:
        assert is_exposed_timm_model(name)
        assert get_model_entrypoint(name).__module__ == 'timm.models.mambaout'  # timm's own entrypoint
    assert not is_exposed_timm_model('vmamba_tiny')
    assert expose_timm_model('mambaout_tiny') == 'mambaout_tiny'  # idempotent
    assert vmamba_zoo.list_models().count('mambaout_tiny') == 1
    with pytest.raises(ValueError, match='no model named'):
        expose_timm_model('mambaout_galactic')


@pytest.mark.parametrize('name', sorted(TARGETS))
def test_params_match_official(name):
    depths, dims, exact, readme_m, _ = TARGETS[name]
    model = timm.create_model(name)
    assert type(model) is MambaOut and type(model) is timm.models.mambaout.MambaOut
    assert [s.blocks.__len__() for s in model.stages] == list(depths)
    assert [i['num_chs'] for i in model.feature_info] == list(dims)
    n = count_params(model)
    assert n == exact, f'{name}: {n} params vs official {exact}'
    assert abs(n / 1e6 - readme_m) <= 0.005 * readme_m


@pytest.mark.parametrize('name', [
    'mambaout_femto', 'mambaout_kobe', 'mambaout_tiny',
    pytest.param('mambaout_small', marks=pytest.mark.slow), pytest.param('mambaout_base', marks=pytest.mark.slow),
])
def test_macs_match_readme(name):
    """fvcore sees every MAC-bearing op of MambaOut (convs, linears, LayerNorms, the mean pool); it leaves out the
    element-wise GELU(g) * cat(i, conv) gate and the residual adds, < 0.3% of the total at 224^2. The README rounds
    to 0.1G: femto's 1.156G is "1.2G" (3.6% from the rounded figure), the others are within 1%."""
    gmacs = TARGETS[name][4]
    flops, unsupported = count_flops(timm.create_model(name), (3, 224, 224), return_unsupported=True)
    assert not unsupported, unsupported
    assert round(flops / 1e9, 1) == gmacs, f'{name}: {flops / 1e9:.3f} GMACs vs README {gmacs}'
    assert abs(flops / 1e9 - gmacs) <= max(0.02 * gmacs, 0.05), f'{name}: {flops / 1e9:.3f} GMACs vs {gmacs}'


def official_state_dict(depths, dims, num_classes=1000, seed=0):
    """A state_dict named and shaped as yuweihao/MambaOut saves its models (plain state_dict of ``MambaOut`` in
    ``models/mambaout.py``: downsample_layers, stages.i.j, norm, head.fc1/norm/fc2), filled with random values."""
    g = torch.Generator().manual_seed(seed)
    c0 = dims[0]
    shapes = {
        'downsample_layers.0.conv1.weight': (c0 // 2, 3, 3, 3), 'downsample_layers.0.conv1.bias': (c0 // 2,),
        'downsample_layers.0.norm1.weight': (c0 // 2,), 'downsample_layers.0.norm1.bias': (c0 // 2,),
        'downsample_layers.0.conv2.weight': (c0, c0 // 2, 3, 3), 'downsample_layers.0.conv2.bias': (c0,),
        'downsample_layers.0.norm2.weight': (c0,), 'downsample_layers.0.norm2.bias': (c0,),
    }
    for i, (depth, c) in enumerate(zip(depths, dims)):
        if i > 0:
            p = f'downsample_layers.{i}.'
            shapes.update({p + 'conv.weight': (c, dims[i - 1], 3, 3), p + 'conv.bias': (c,),
                           p + 'norm.weight': (c,), p + 'norm.bias': (c,)})
        hidden = int(8 / 3 * c)
        for j in range(depth):
            p = f'stages.{i}.{j}.'
            shapes.update({p + 'norm.weight': (c,), p + 'norm.bias': (c,),
                           p + 'fc1.weight': (2 * hidden, c), p + 'fc1.bias': (2 * hidden,),
                           p + 'conv.weight': (c, 1, 7, 7), p + 'conv.bias': (c,),
                           p + 'fc2.weight': (c, hidden), p + 'fc2.bias': (c,)})
    c = dims[-1]
    shapes.update({'norm.weight': (c,), 'norm.bias': (c,),
                   'head.fc1.weight': (4 * c, c), 'head.fc1.bias': (4 * c,),
                   'head.norm.weight': (4 * c,), 'head.norm.bias': (4 * c,),
                   'head.fc2.weight': (num_classes, 4 * c), 'head.fc2.bias': (num_classes,)})
    sd = {k: torch.randn(s, generator=g) * 0.1 for k, s in shapes.items()}
    for k in sd:  # norms near 1 so activations stay in range through the depth
        if 'norm' in k and k.endswith('weight'):
            sd[k] += 1
    return sd


def official_forward(sd, x, depths):
    """The official MambaOut forward (yuweihao/MambaOut models/mambaout.py: StemLayer, DownsampleLayer,
    GatedCNNBlock, forward_features, MlpHead; all LayerNorms eps 1e-6), written out functionally over the
    official-named state_dict."""
    def ln(t, p):
        return F.layer_norm(t, t.shape[-1:], sd[p + '.weight'], sd[p + '.bias'], eps=1e-6)

    def conv(t, p, **kw):
        return F.conv2d(t, sd[p + '.weight'], sd[p + '.bias'], **kw)

    p = 'downsample_layers.0.'
    x = ln(conv(x, p + 'conv1', stride=2, padding=1).permute(0, 2, 3, 1), p + 'norm1').permute(0, 3, 1, 2)
    x = ln(conv(F.gelu(x), p + 'conv2', stride=2, padding=1).permute(0, 2, 3, 1), p + 'norm2')
    for i, depth in enumerate(depths):
        if i > 0:
            p = f'downsample_layers.{i}.'
            x = ln(conv(x.permute(0, 3, 1, 2), p + 'conv', stride=2, padding=1).permute(0, 2, 3, 1), p + 'norm')
        for j in range(depth):
            p = f'stages.{i}.{j}.'
            c = x.shape[-1]
            hidden = int(8 / 3 * c)
            h = F.linear(ln(x, p + 'norm'), sd[p + 'fc1.weight'], sd[p + 'fc1.bias'])
            g, ident, cc = torch.split(h, (hidden, hidden - c, c), dim=-1)
            cc = conv(cc.permute(0, 3, 1, 2), p + 'conv', padding=3, groups=c).permute(0, 2, 3, 1)
            x = x + F.linear(F.gelu(g) * torch.cat((ident, cc), -1), sd[p + 'fc2.weight'], sd[p + 'fc2.bias'])
    x = ln(x.mean((1, 2)), 'norm')
    x = ln(F.gelu(F.linear(x, sd['head.fc1.weight'], sd['head.fc1.bias'])), 'head.norm')
    return F.linear(x, sd['head.fc2.weight'], sd['head.fc2.bias'])


@pytest.mark.parametrize('name', ['mambaout_femto', 'mambaout_tiny'])
def test_official_checkpoint_gives_official_output(name, tmp_path):
    depths, dims, exact, _, _ = TARGETS[name]
    official = official_state_dict(depths, dims)
    assert sum(v.numel() for v in official.values()) == exact  # the fake follows the real layout
    model = timm.create_model(name).eval()
    model.load_state_dict(checkpoint_filter_fn(official, model), strict=True)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        ref = official_forward(official, x, depths)
        torch.testing.assert_close(model(x), ref, rtol=1e-4, atol=1e-4)
    # the same file through timm's pretrained path (official release files are plain state_dicts)
    path = tmp_path / f'{name}.pth'
    torch.save(official, path)
    loaded = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path))).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), ref, rtol=1e-4, atol=1e-4)


def test_features_and_intermediates():
    """timm's feature extraction for MambaOut: features_only maps are NHWC (timm's default for this model), the
    getter path gives NCHW."""
    torch.manual_seed(0)  # same seed: both wrappers build the same randomly initialised MambaOut
    model = timm.create_model('mambaout_femto', features_only=True).eval()
    assert model.output_fmt == 'NHWC'
    torch.manual_seed(0)
    getter = timm.create_model('mambaout_femto', features_only=True, feature_cls='getter').eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        nhwc, nchw = model(x), getter(x)
    for a, b, c, r in zip(nhwc, nchw, (48, 96, 192, 288), (4, 8, 16, 32)):
        assert b.shape == (1, c, 64 // r, 64 // r)
        torch.testing.assert_close(a.permute(0, 3, 1, 2), b)


def test_mambaout_femto_trains_a_step_on_cpu():
    torch.manual_seed(0)
    model = timm.create_model('mambaout_femto', num_classes=10).train()
    x, y = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 3])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(4):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
