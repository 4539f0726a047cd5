"""VMamba-specific checks: parity with the official parameter / FLOP figures, checkpoint conversion, training."""
import math

import pytest
import timm
import torch

import vmamba_zoo  # noqa: F401
from vmamba_zoo.flops import count_flops, count_params
from vmamba_zoo.models.vmamba import checkpoint_filter_fn

# Targets: MzeroMiko/VMamba README / assets/performance.md (params and FLOPs at 224^2, head included, fvcore with the
# selective-scan handle), and exact parameter counts of the official models built on CPU (shared/reference/specs.md).
# name: (official config, depths, dim, ssm_ratio, exact official params, README params (M), README GFLOPs)
TARGETS = {
    'vmamba_tiny': ('vmambav2v_tiny_224.yaml', (2, 2, 8, 2), 96, 1.0, 30_249_000, 30, 4.9),
    'vmamba_small': ('vmambav2_small_224.yaml', (2, 2, 15, 2), 96, 2.0, 50_148_000, 50, 8.7),
    'vmamba_base': ('vmambav2_base_224.yaml', (2, 2, 15, 2), 128, 2.0, 88_558_000, 89, 15.4),
}


@pytest.mark.parametrize('name', sorted(TARGETS))
def test_params_match_official(name):
    _, _, _, _, exact, readme_m, _ = TARGETS[name]
    n = count_params(timm.create_model(name))
    assert abs(n - exact) <= 1_000, f'{name}: {n} params vs official {exact} (rounded to 1e3)'
    assert round(n / 1e6) == readme_m


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(TARGETS))
def test_flops_match_readme(name):
    *_, gflops = TARGETS[name]
    flops, unsupported = count_flops(timm.create_model(name), (3, 224, 224), return_unsupported=True)
    assert round(flops / 1e9, 1) == gflops, f'{name}: {flops / 1e9:.3f} GFLOPs vs README {gflops}'
    assert 'prim::PythonOp.SelectiveScanFn' not in unsupported


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


def _train_steps(model, steps=4, size=64):
    torch.manual_seed(0)
    x, y = torch.randn(4, 3, size, size), torch.tensor([0, 1, 2, 3])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_vmamba_tiny_trains_a_step_on_cpu():
    model = timm.create_model('vmamba_tiny', num_classes=10, drop_path_rate=0.0).train()
    losses = _train_steps(model)
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize('scan', ['bidirectional', 'unidirectional', 'zigzag'])
def test_non_default_scan_strategy_runs_and_trains(scan):
    model = timm.create_model('vmamba_tiny', num_classes=10, scan=scan, depths=(1, 1, 1, 1), drop_path_rate=0.0)
    k = model.stages[0].blocks[0].mixer.k_group
    assert model.stages[0].blocks[0].mixer.x_proj_weight.shape[0] == k
    losses = _train_steps(model)
    assert losses[-1] < losses[0]


def test_unknown_scan_is_a_clear_error():
    with pytest.raises(ValueError, match='unknown scan'):
        timm.create_model('vmamba_tiny', scan='spiral-of-doom')
