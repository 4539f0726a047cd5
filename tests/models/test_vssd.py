"""VSSD-specific checks: parity with the official parameter / FLOP figures, checkpoint conversion, the mixers."""
import pytest
import timm
import torch

import vmamba_zoo  # noqa: F401
from vmamba_zoo.flops import _op_handles, count_params
from vmamba_zoo.models.vssd import NonCausalSSDMixer, VSSDBlock, checkpoint_filter_fn

# name: (official config, depths, embed dim, num_heads, d_state, exact official params, README params (M),
#        README GFLOPs, exact official FLOPs)
# README = YuHengsss/VSSD readme.md (14M/2.3G, 24M/4.5G, 40M/7.4G, 89M/16.1G); the yamls' comments give 13.5M 2.3G
# (micro), 24.27M 4.47G (tiny, truncated: the official count is 4.4754G), 40.01M 7.37G (small). Exact params and
# FLOPs: the official ``VMAMBA2`` (commit 87b753b, ``classification/models/mamba2.py``, Triton imports stubbed, CPU)
# built with each yaml, parameters by fvcore ``parameter_count`` and FLOPs by its own ``VMAMBA2.flops()`` recipe
# (fvcore ``flop_count`` at 1x3x224x224 with supported_ops silu/neg/exp/flip -> None). Built that way the official
# models give the zoo's logits to 6e-7 (64x96 and 96x160 inputs, weights through checkpoint_filter_fn).
TARGETS = {
    'vssd_micro': ('vssd_micro_e300.yaml', (2, 2, 8, 4), 48, (2, 4, 8, 16), 48, 13_512_964, 14, 2.3, 2_305_701_632),
    'vssd_tiny': ('vssd_tiny_e300.yaml', (2, 4, 8, 4), 64, (2, 4, 8, 16), 64, 24_270_724, 24, 4.5, 4_475_384_800),
    'vssd_small': ('vssd_small_e300.yaml', (3, 4, 21, 5), 64, (2, 4, 8, 16), 64, 40_075_650, 40, 7.4,
                   7_365_999_448),
    'vssd_base': ('vssd_base_e300.yaml', (3, 4, 21, 5), 96, (3, 6, 12, 24), 64, 88_823_151, 89, 16.1,
                  16_066_232_896),
}
NAMES = sorted(TARGETS)


def _create_meta(name, **kwargs):
    """The model with shapes only (no memory, no init): parameter and key checks of the large variants in ms."""
    with torch.device('meta'):
        return timm.create_model(name, **kwargs)


@pytest.mark.parametrize('name', NAMES)
def test_params_match_official(name):
    n = count_params(_create_meta(name))
    exact, readme = TARGETS[name][5], TARGETS[name][6]
    assert n == exact, f'{name}: {n} params vs official {exact}'
    assert round(n / 1e6) == readme  # the README rounds to 1M


def _flops_224(name, **kwargs):
    """FLOPs at 224^2 from one trace of a one-block-per-stage copy: blocks of a stage have identical shapes, so the
    full model's count is that trace's total plus (depth - 1) times each stage's first block (exact; a fraction of
    the CPU time of tracing the deep variants)."""
    from fvcore.nn import FlopCountAnalysis

    depths = TARGETS[name][1]
    model = timm.create_model(name, depths=(1, 1, 1, 1), **kwargs).eval()
    analysis = FlopCountAnalysis(model, (torch.randn(1, 3, 224, 224),)).set_op_handle(**_op_handles())
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings('none')
    per_module = analysis.by_module()
    unsupported = analysis.unsupported_ops()
    assert not any(op.startswith('prim::PythonOp') or 'attention' in op for op in unsupported), unsupported
    return int(analysis.total()) + sum((d - 1) * per_module[f'stages.{i}.blocks.0'] for i, d in enumerate(depths))


@pytest.mark.slow
@pytest.mark.parametrize('name', NAMES)
def test_flops_match_official(name):
    flops, gflops, official = _flops_224(name), TARGETS[name][7], TARGETS[name][8]
    assert round(flops / 1e9, 1) == gflops, f'{name}: {flops / 1e9:.3f} GFLOPs vs README {gflops}'
    # the zoo also counts the head's mean pool (the official AdaptiveAvgPool1d is uncounted, about +C*49), and
    # fvcore counts the official attention einsums through numpy's rounded einsum_path figure
    assert abs(flops - official) <= 1e-5 * official, f'{name}: {flops} FLOPs vs official model {official}'


def official_state_dict(depths, dim, num_heads, d_state, num_classes=1000, seed=0, device='cpu'):
    """A state_dict named and shaped as YuHengsss/VSSD saves its classifiers (``VMAMBA2``; module names from
    ``classification/models/mamba2.py`` and ``mamba_util.py``), filled with distinct random values (shapes only
    on the 'meta' device)."""
    g = torch.Generator().manual_seed(seed)
    shapes = {}

    def conv_bn(prefix, cin, cout, k, bias=False, norm=True):
        shapes[prefix + 'conv.weight'] = (cout, cin, k, k)
        if bias:
            shapes[prefix + 'conv.bias'] = (cout,)
        if norm:
            for p in ('weight', 'bias', 'running_mean', 'running_var'):
                shapes[prefix + 'norm.' + p] = (cout,)
            shapes[prefix + 'norm.num_batches_tracked'] = ()

    half = dim // 2
    conv_bn('patch_embed.conv1.', 3, half, 3)
    conv_bn('patch_embed.conv2.0.', half, half, 3)
    conv_bn('patch_embed.conv2.1.', half, half, 3)
    conv_bn('patch_embed.conv3.0.', half, 4 * dim, 3)
    conv_bn('patch_embed.conv3.1.', 4 * dim, dim, 1)
    dims = [dim * 2 ** i for i in range(len(depths))]
    for i, depth in enumerate(depths):
        d, heads = dims[i], num_heads[i]
        for j in range(depth):
            p = f'layers.{i}.blocks.{j}.'
            for cpe in ('cpe1.', 'cpe2.'):
                shapes.update({p + cpe + 'weight': (d, 1, 3, 3), p + cpe + 'bias': (d,)})
            for norm in ('norm1.', 'norm2.'):
                shapes.update({p + norm + 'weight': (d,), p + norm + 'bias': (d,)})
            shapes.update({p + 'mlp.fc1.weight': (4 * d, d), p + 'mlp.fc1.bias': (4 * d,),
                           p + 'mlp.fc2.weight': (d, 4 * d), p + 'mlp.fc2.bias': (d,)})
            if i < 3:  # ATTN_TYPES mamba2: Mamba2 with expand 2, ngroups 1
                e, conv_dim = 2 * d, 2 * d + 2 * d_state
                shapes.update({
                    p + 'attn.in_proj.weight': (2 * e + 2 * d_state + heads, d),
                    p + 'attn.conv2d.weight': (conv_dim, 1, 3, 3), p + 'attn.conv2d.bias': (conv_dim,),
                    p + 'attn.dt_bias': (heads,), p + 'attn.A_log': (heads,), p + 'attn.D': (heads,),
                    p + 'attn.norm.weight': (e,), p + 'attn.norm.bias': (e,),
                    p + 'attn.out_proj.weight': (d, e),
                })
            else:  # standard attention
                shapes.update({p + 'attn.to_qkv.weight': (3 * d, d),
                               p + 'attn.to_out.weight': (d, d), p + 'attn.to_out.bias': (d,)})
        if i < len(depths) - 1:
            p, hidden = f'layers.{i}.downsample.conv.', 8 * d  # PatchMerging: out 2d, ratio 4
            conv_bn(p + '0.', d, hidden, 1, bias=True, norm=False)
            shapes[p + '1.conv.weight'] = (hidden, 1, 3, 3)
            shapes[p + '1.conv.bias'] = (hidden,)
            conv_bn(p + '2.', hidden, 2 * d, 1, bias=True)
    shapes.update({'norm.weight': (dims[-1],), 'norm.bias': (dims[-1],),
                   'head.weight': (num_classes, dims[-1]), 'head.bias': (num_classes,)})
    if device == 'meta':
        return {k: torch.empty(s, device='meta') for k, s in shapes.items()}
    return {k: (torch.randn(s, generator=g) if s else torch.tensor(7)) for k, s in shapes.items()}


def _is_buffer(key):
    return key.endswith(('running_mean', 'running_var', 'num_batches_tracked'))


@pytest.mark.parametrize('name', NAMES)
def test_checkpoint_filter_maps_every_official_key(name):
    """Keys and shapes of every variant (on 'meta': no values); checkpoint_filter_fn raises on any mismatch."""
    _, depths, dim, heads, d_state, exact = TARGETS[name][:6]
    official = official_state_dict(depths, dim, heads, d_state, device='meta')
    assert sum(v.numel() for k, v in official.items() if not _is_buffer(k)) == exact  # the fake is the real layout
    model = _create_meta(name)
    converted = checkpoint_filter_fn({'model': official}, model)
    target = model.state_dict()
    assert converted.keys() == target.keys()
    assert all(converted[k].shape == target[k].shape for k in target)


def test_checkpoint_filter_converts_official_checkpoint():
    _, depths, dim, heads, d_state = TARGETS['vssd_micro'][:5]
    official = official_state_dict(depths, dim, heads, d_state)
    model = timm.create_model('vssd_micro')
    converted = checkpoint_filter_fn({'model': official}, model)
    model.load_state_dict(converted, strict=True)
    sd = model.state_dict()
    pairs = {
        'stem.conv1.bn.running_var': 'patch_embed.conv1.norm.running_var',
        'stem.conv3.1.conv.weight': 'patch_embed.conv3.1.conv.weight',
        'stages.1.downsample.expand.bias': 'layers.0.downsample.conv.0.conv.bias',
        'stages.2.downsample.dw.weight': 'layers.1.downsample.conv.1.conv.weight',
        'stages.3.downsample.project.bn.weight': 'layers.2.downsample.conv.2.norm.weight',
        'stages.3.downsample.project.conv.bias': 'layers.2.downsample.conv.2.conv.bias',
        'stages.2.blocks.1.mixer.A_log': 'layers.2.blocks.1.attn.A_log',
        'stages.0.blocks.0.mixer.in_proj.weight': 'layers.0.blocks.0.attn.in_proj.weight',
        'stages.3.blocks.1.mixer.qkv.weight': 'layers.3.blocks.1.attn.to_qkv.weight',
        'stages.3.blocks.0.mixer.proj.bias': 'layers.3.blocks.0.attn.to_out.bias',
        'stages.1.blocks.0.cpe2.weight': 'layers.1.blocks.0.cpe2.weight',
        'norm.weight': 'norm.weight',
        'head.fc.weight': 'head.weight',
    }
    for ours, theirs in pairs.items():
        torch.testing.assert_close(sd[ours], official[theirs])
    # a converted checkpoint passes through; 'state_dict' wrapper, 'module.' prefixes and the detection
    # backbone's per-level norms (outnorm{i}) are accepted too
    assert checkpoint_filter_fn(converted, model).keys() == converted.keys()
    wrapped = {'state_dict': {'module.' + k: v for k, v in official.items()}}
    wrapped['state_dict']['outnorm0.weight'] = torch.ones(dim)
    model.load_state_dict(checkpoint_filter_fn(wrapped, model), strict=True)


def test_checkpoint_filter_rejects_other_variant():
    _, depths, dim, heads, d_state = TARGETS['vssd_tiny'][:5]
    official = official_state_dict(depths, dim, heads, d_state, device='meta')
    with pytest.raises(ValueError, match='checkpoint mismatch for VSSD.*(missing|unexpected|shape)'):
        checkpoint_filter_fn(official, _create_meta('vssd_micro'))
    with pytest.raises(ValueError, match='unexpected'):
        checkpoint_filter_fn({'model': {'layers.0.blocks.0.attn.foo': torch.zeros(1)}}, _create_meta('vssd_micro'))


def test_pretrained_file_loads_through_timm(tmp_path):
    _, depths, dim, heads, d_state = TARGETS['vssd_micro'][:5]
    official = official_state_dict(depths, dim, heads, d_state, seed=3)
    path = tmp_path / 'vssd_micro_best.pth'
    torch.save({'model': official, 'epoch': 299}, path)
    model = timm.create_model('vssd_micro', pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    torch.testing.assert_close(model.state_dict()['stages.0.blocks.0.mixer.D'], official['layers.0.blocks.0.attn.D'])


def _official_mamba2_nc_forward(mixer: NonCausalSSDMixer, x):
    """The official ``Mamba2.forward`` with ``linear_attn_duality=True, ssd_positve_dA=True``
    (YuHengsss/VSSD mamba2.py) restated on (B, L, C) tokens, to check the mixer's wiring against it."""
    batch, height, width, _ = x.shape
    u = x.reshape(batch, height * width, -1)
    e, n, h = mixer.d_inner, mixer.d_state, mixer.nheads
    z, xbc, dt = torch.split(mixer.in_proj(u), [e, e + 2 * n, h], dim=-1)
    dt = torch.nn.functional.softplus(dt + mixer.dt_bias)
    xbc = xbc.view(batch, height, width, -1).permute(0, 3, 1, 2)
    xbc = torch.nn.functional.silu(mixer.conv2d(xbc)).permute(0, 2, 3, 1).reshape(batch, height * width, -1)
    xs, B, C = torch.split(xbc, [e, n, n], dim=-1)
    V = xs.view(batch, height * width, h, -1).permute(0, 2, 1, 3)
    dA = -(dt.permute(0, 2, 1).unsqueeze(-1) * -torch.exp(mixer.A_log).view(1, -1, 1, 1))
    KV = B.unsqueeze(1).transpose(-2, -1) @ (V * dA)
    y = C.unsqueeze(1) @ KV + V * mixer.D.view(1, -1, 1, 1)
    y = y.permute(0, 2, 1, 3).reshape(batch, height * width, e)
    y = mixer.norm(y) * z
    return mixer.out_proj(y).view(batch, height, width, -1)


def test_mixer_matches_official_formulation():
    torch.manual_seed(0)
    mixer = NonCausalSSDMixer(32, num_heads=4, d_state=8).eval()
    with torch.no_grad():
        mixer.D.normal_()
        mixer.norm.weight.uniform_(0.5, 1.5)
        x = torch.randn(2, 5, 7, 32)
        torch.testing.assert_close(mixer(x), _official_mamba2_nc_forward(mixer, x), atol=1e-5, rtol=1e-4)


def test_attention_matches_official_standard_attention():
    """timm's Attention in the last stage computes the official StandardAttention (einsum form) exactly."""
    torch.manual_seed(0)
    attn = VSSDBlock(64, num_heads=4, mixer='attention').mixer.eval()
    x = torch.randn(2, 9, attn.qkv.in_features)
    heads = attn.num_heads
    with torch.no_grad():
        q, k, v = (t.reshape(2, 9, heads, -1).transpose(1, 2) for t in attn.qkv(x).chunk(3, dim=-1))
        dots = torch.einsum('bhid,bhjd->bhij', q, k) * q.shape[-1] ** -0.5
        out = torch.einsum('bhij,bhjd->bhid', dots.softmax(-1), v).transpose(1, 2).reshape(2, 9, -1)
        torch.testing.assert_close(attn(x), attn.proj(out), atol=1e-5, rtol=1e-4)


def test_last_stage_is_attention_and_options():
    model = _create_meta('vssd_tiny')
    assert [type(s.blocks[0].mixer).__name__ for s in model.stages] == ['NonCausalSSDMixer'] * 3 + ['Attention']
    assert model.stages[0].blocks[0].mixer.headdim == 64 and model.stages[2].blocks[0].mixer.nheads == 8
    nwd = model.no_weight_decay()
    assert 'stages.0.blocks.0.mixer.A_log' in nwd and 'stages.2.blocks.7.mixer.dt_bias' in nwd
    # the other sign of dA (official SSD_POSITIVE_DA False) and grouped B/C run
    other = timm.create_model('vssd_micro', depths=(1, 1, 1, 1), positive_dA=False, ssd_ngroups=2,
                              num_classes=5).eval()
    with torch.no_grad():
        assert torch.isfinite(other(torch.randn(1, 3, 64, 64))).all()
    with pytest.raises(ValueError, match='no scan order'):
        timm.create_model('vssd_micro', scan='cross')
    with pytest.raises(ValueError, match='mixer must be'):
        timm.create_model('vssd_micro', mixers=('nc_ssd', 'nc_ssd', 'nc_ssd', 'mlp'))
