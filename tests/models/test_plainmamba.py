"""PlainMamba-specific checks: parity with the official parameter / FLOP figures, the zig-zag orders and the mixer
maths against the official construction, checkpoint conversion, training with another scan."""
import math

import pytest
import timm
import torch
import torch.nn.functional as F

import vmamba_zoo  # noqa: F401
from vmamba_zoo.flops import count_flops, count_params
from vmamba_zoo.models.plainmamba import (
    PlainMamba2D, checkpoint_filter_fn, codes_from_orders, step_direction_codes)
from vmamba_zoo.ops.selective_scan import selective_scan_naive
from vmamba_zoo.scans import get_scan

from .helpers import train_steps

# name: (embed_dim, depth, num_convs_patch_embed, layers_with_dwconv, README params (M), paper GFLOPs)
# Official architecture: ChenhongyiYang/PlainMamba mmcls/plain_mamba_dev/models/plain_mamba/plain_mamba.py arch_zoo.
# Params: README "Benchmark results" (7.3 / 25.7 / 50.5 M). They equal the BACKBONE parameters (classifier head
# excluded) truncated to 0.1M for all three variants; the full classifier has 7.55 / 26.15 / 50.96 M. The exact
# official count is asserted through the official key shapes below.
# FLOPs: not in the README; the paper (arXiv:2403.17695, Table 1) gives 3.0 / 8.1 / 14.4 G at 224^2 (as quoted
# e.g. by MambaOut arXiv:2405.07992 Table 1 and QuadMamba). Official counting (tools/analysis_tools/get_flops.py):
# mmcv get_model_complexity_info (MACs) + 4 directions x (9 L E N + L E) per layer for the selective scan.
TARGETS = {
    'plainmamba_l1': (192, 24, 1, (0,), 7.3, 3.0),
    'plainmamba_l2': (384, 24, 2, (), 25.7, 8.1),
    'plainmamba_l3': (448, 36, 2, (), 50.5, 14.4),
}


def official_shapes(dim, depth, num_convs, dw_layers, num_classes=1000, d_state=16):
    """Key -> shape of the state_dict the official mmcls ImageClassifier saves for PlainMamba (module names of
    plain_mamba.py / plain_mamba_layer.py / patch_embed.py, 'backbone.' and 'head.' prefixes)."""
    E, R = 2 * dim, math.ceil(dim / 16)
    shapes = {}

    def bn(prefix, c):
        shapes.update({prefix + 'weight': (c,), prefix + 'bias': (c,), prefix + 'running_mean': (c,),
                       prefix + 'running_var': (c,), prefix + 'num_batches_tracked': ()})

    shapes['backbone.patch_embed.stem.0.weight'] = (64, 3, 7, 7)
    bn('backbone.patch_embed.stem.1.', 64)
    for i in range(num_convs):
        shapes[f'backbone.patch_embed.convs.{3 * i}.weight'] = (64, 64, 3, 3)
        bn(f'backbone.patch_embed.convs.{3 * i + 1}.', 64)
    shapes.update({'backbone.patch_embed.projection.weight': (dim, 64, 8, 8),
                   'backbone.patch_embed.projection.bias': (dim,), 'backbone.pos_embed': (1, 196, dim)})
    for i in range(depth):
        p = f'backbone.layers.{i}.'
        shapes.update({
            p + 'norm.weight': (dim,), p + 'norm.bias': (dim,),
            p + 'mamba.in_proj.weight': (2 * E, dim), p + 'mamba.in_proj.bias': (2 * E,),
            p + 'mamba.conv2d.weight': (E, 1, 7, 7), p + 'mamba.conv2d.bias': (E,),
            p + 'mamba.x_proj.weight': (R + 2 * d_state, E),
            p + 'mamba.dt_proj.weight': (E, R), p + 'mamba.dt_proj.bias': (E,),
            p + 'mamba.A_log': (E, d_state), p + 'mamba.D': (E,),
            p + 'mamba.out_proj.weight': (dim, E), p + 'mamba.out_proj.bias': (dim,),
            p + 'mamba.direction_Bs': (5, d_state),
        })
        if i in dw_layers:
            shapes[p + 'dw.0.weight'] = (dim, 1, 3, 3)
            bn(p + 'dw.1.', dim)
    shapes.update({'backbone.ln1.weight': (dim,), 'backbone.ln1.bias': (dim,),
                   'head.fc.weight': (num_classes, dim), 'head.fc.bias': (num_classes,)})
    return shapes


def official_state_dict(dim, depth, num_convs, dw_layers, seed=0, ema=False):
    """An official checkpoint's state_dict (see ``official_shapes``) filled with distinct random values."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    shapes = official_shapes(dim, depth, num_convs, dw_layers)
    for k, s in shapes.items():
        sd[k] = torch.tensor(7) if k.endswith('num_batches_tracked') else torch.randn(s, generator=g)
        if k.endswith('running_var'):
            sd[k] = sd[k].abs() + 0.5  # a variance
    if ema:  # mmcls EMACheckpointHook buffers (L2/L3 training): one per parameter, '.' replaced by '_'
        sd.update({'ema_' + k.replace('.', '_'): v.clone() for k, v in list(sd.items())
                   if not k.endswith(('running_mean', 'running_var', 'num_batches_tracked'))})
    return sd


def _official_param_count(shapes):
    return sum(math.prod(s) for k, s in shapes.items()
               if not k.endswith(('running_mean', 'running_var', 'num_batches_tracked')))


@pytest.mark.parametrize('name', sorted(TARGETS))
def test_params_match_official(name):
    dim, depth, convs, dw, readme_m, _ = TARGETS[name]
    model = timm.create_model(name)
    n = count_params(model)
    assert n == _official_param_count(official_shapes(dim, depth, convs, dw))  # exact official layout
    assert {k: tuple(v.shape) for k, v in checkpoint_filter_fn(
        {'state_dict': {k: torch.empty(s) for k, s in official_shapes(dim, depth, convs, dw).items()}}, model).items()
    } == {k: tuple(v.shape) for k, v in model.state_dict().items()}
    backbone = n - count_params(model.head)
    assert math.floor(backbone / 1e5) / 10 == readme_m, f'{name}: backbone {backbone} vs README {readme_m}M'


def _flops(name, depth, size=224):
    return count_flops(timm.create_model(name, depth=depth), (3, size, size), return_unsupported=True)


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(TARGETS))
def test_flops_match_paper(name):
    """Every layer costs the same, so FLOPs(depth) = F(1) + (depth - 1) * (F(2) - F(1)) exactly (layer 0 of L1 with
    its extra DWConv is in F(1)); counting 1- and 2-layer models keeps this cheap on CPU."""
    _, depth, _, _, _, gflops = TARGETS[name]
    f1, unsupported = _flops(name, 1)
    f2, _ = _flops(name, 2)
    total = f1 + (depth - 1) * (f2 - f1)
    assert abs(total / 1e9 - gflops) / gflops < 0.02, f'{name}: {total / 1e9:.3f} GFLOPs vs paper {gflops}'
    assert 'prim::PythonOp.SelectiveScanFn' not in unsupported
    # the scan term is the official one: 4 directions x (9 L E N + L E) per layer
    E, L, N = 2 * TARGETS[name][0], 14 * 14, 16
    scan = 4 * (9 * L * E * N + L * E)
    assert f2 - f1 > scan


@pytest.mark.slow
def test_flops_are_linear_in_depth():
    f1, f2, f3 = (_flops('plainmamba_l1', d, size=64)[0] for d in (1, 2, 3))
    assert f3 - f2 == f2 - f1 > 0


# --- zig-zag orders: our ``zigzag`` strategy vs PlainMamba's walk -------------------------------------------------

def official_permute_order(H, W):
    """PlainMamba2D.get_permute_order re-expressed: four snake walks (rows from the top-left; rows from the bottom,
    starting where the first one ended; columns from the top-left; columns from the right, starting where the third
    one ended) and the code of the move into each step [start, right, left, up, down] = [0, 1, 2, 3, 4]."""
    def walk(start, forward, outer_step, along_rows):
        (i, j), order, moves = start, [], []
        n_outer = H if along_rows else W
        for _ in range(n_outer):
            for k in range(W if along_rows else H):
                order.append(i * W + j)
                last_inner = k == (W if along_rows else H) - 1
                if along_rows:
                    if last_inner:
                        i += outer_step
                        moves.append(4 if outer_step > 0 else 3)
                    else:
                        j += 1 if forward else -1
                        moves.append(1 if forward else 2)
                else:
                    if last_inner:
                        j += outer_step
                        moves.append(1 if outer_step > 0 else 2)
                    else:
                        i += 1 if forward else -1
                        moves.append(4 if forward else 3)
            forward = not forward
        return order, [0] + moves[:-1]

    o1 = walk((0, 0), True, 1, True)
    o2 = walk((H - 1, W - 1), False, -1, True) if H % 2 else walk((H - 1, 0), True, -1, True)
    o3 = walk((0, 0), True, 1, False)
    o4 = walk((H - 1, W - 1), False, -1, False) if W % 2 else walk((0, W - 1), True, -1, False)
    return [o[0] for o in (o1, o2, o3, o4)], [o[1] for o in (o1, o2, o3, o4)]


@pytest.mark.parametrize('H', [1, 2, 3, 4, 5, 14])
@pytest.mark.parametrize('W', [1, 2, 3, 6, 7, 14])
def test_zigzag_orders_and_directions_match_official(H, W):
    orders, directions = official_permute_order(H, W)
    strategy = get_scan('zigzag')
    assert strategy.index(H, W).orders.tolist() == orders
    assert strategy.step_directions(H, W).tolist() == directions
    # the generic rule used for other strategies gives the same codes on the zig-zag orders
    assert codes_from_orders(strategy.index(H, W).orders, W).tolist() == directions


def test_direction_codes_for_other_strategies():
    codes = step_direction_codes(get_scan('cross'), 2, 3)
    # row-major: start, right, right, (wrap to next row) down, right, right
    assert codes[0].tolist() == [0, 1, 1, 4, 1, 1]
    # column-major: start, down, (wrap) up, down, up, down
    assert codes[1].tolist() == [0, 4, 3, 4, 3, 4]
    assert codes[2].tolist() == [0, 2, 2, 3, 2, 2]


# --- the mixer against the official forward -----------------------------------------------------------------------

def official_mixer_forward(m: PlainMamba2D, x, H, W):
    """PlainMamba2D.forward written out as the official code does it: one selective scan per direction with u
    permuted, dt/B/C in raster order, B + direction_Bs[d], dt = dt_proj(dt) plus delta_bias, outputs un-permuted
    and summed, gated by SiLU(z)."""
    b, L, _ = x.shape
    E = m.d_inner
    xz = m.in_proj(x)
    xi, z = xz.chunk(2, dim=-1)
    xc = F.silu(m.conv2d(xi.reshape(b, H, W, E).permute(0, 3, 1, 2))).permute(0, 2, 3, 1).reshape(b, L, E)
    dt, Bm, Cm = torch.split(m.x_proj(xc), [m.dt_rank, m.d_state, m.d_state], dim=-1)
    dt = m.dt_proj(dt).permute(0, 2, 1)
    Bm, Cm = Bm.permute(0, 2, 1), Cm.permute(0, 2, 1)
    A = -torch.exp(m.A_log.float())
    orders, directions = official_permute_order(H, W)
    y = 0
    for o, d in zip(orders, directions):
        inv = [0] * L
        for step, token in enumerate(o):
            inv[token] = step
        dB = m.direction_Bs[torch.tensor(d)].t().unsqueeze(0)
        ys = selective_scan_naive(xc[:, o, :].permute(0, 2, 1), dt, A, Bm + dB, Cm, m.D.float(),
                                  delta_bias=m.dt_proj.bias.float(), delta_softplus=True)
        y = y + ys.permute(0, 2, 1)[:, inv, :]
    return m.out_proj(y * F.silu(z))


@pytest.mark.parametrize('H,W', [(5, 6), (4, 3)])
def test_mixer_matches_official_forward(H, W):
    torch.manual_seed(0)
    m = PlainMamba2D(16, d_state=4).double()
    with torch.no_grad():  # make every term matter: non-trivial biases and direction vectors
        m.dt_proj.bias.normal_(0, 1)
        m.direction_Bs.normal_(0, 1)
        m.D.normal_(0, 1)
    x = torch.randn(2, H * W, 16, dtype=torch.float64)
    ours = m(x.view(2, H, W, 16)).reshape(2, H * W, 16)
    torch.testing.assert_close(ours, official_mixer_forward(m, x, H, W), rtol=1e-9, atol=1e-9)


def test_pos_embed_resized_like_mmcls():
    model = timm.create_model('plainmamba_l1', depth=1).eval()
    tokens = torch.zeros(1, 16, 12, 192)
    grid = model.pos_embed.reshape(1, 14, 14, 192).permute(0, 3, 1, 2)
    expect = F.interpolate(grid, size=(16, 12), mode='bicubic', align_corners=False).permute(0, 2, 3, 1)
    torch.testing.assert_close(model._pos_embed(tokens), expect)
    torch.testing.assert_close(model._pos_embed(torch.zeros(1, 14, 14, 192)), grid.permute(0, 2, 3, 1))


# --- checkpoints ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('name', ['plainmamba_l1', 'plainmamba_l2'])  # L3 differs only in sizes: shapes checked above
def test_checkpoint_filter_converts_official_checkpoint(name):
    dim, depth, convs, dw, _, _ = TARGETS[name]
    official = official_state_dict(dim, depth, convs, dw, ema=name != 'plainmamba_l1')
    model = timm.create_model(name)
    converted = checkpoint_filter_fn({'meta': {'epoch': 300}, 'state_dict': official}, model)
    model.load_state_dict(converted, strict=True)
    sd = model.state_dict()
    torch.testing.assert_close(sd['patch_embed.stem.0.weight'], official['backbone.patch_embed.stem.0.weight'])
    torch.testing.assert_close(sd['patch_embed.convs.1.running_var'],
                               official['backbone.patch_embed.convs.1.running_var'])
    torch.testing.assert_close(sd['patch_embed.proj.weight'], official['backbone.patch_embed.projection.weight'])
    torch.testing.assert_close(sd['pos_embed'], official['backbone.pos_embed'])
    last = depth - 1
    for key in ('A_log', 'direction_Bs', 'dt_proj.bias', 'x_proj.weight', 'conv2d.weight'):
        torch.testing.assert_close(sd[f'blocks.{last}.mixer.{key}'], official[f'backbone.layers.{last}.mamba.{key}'])
    torch.testing.assert_close(sd['blocks.3.norm.weight'], official['backbone.layers.3.norm.weight'])
    if dw:
        torch.testing.assert_close(sd['blocks.0.dw.1.running_mean'], official['backbone.layers.0.dw.1.running_mean'])
    torch.testing.assert_close(sd['norm.weight'], official['backbone.ln1.weight'])
    torch.testing.assert_close(sd['head.fc.weight'], official['head.fc.weight'])
    # already converted passes through; a bare backbone (no 'backbone.' prefix, no head) with 'module.' prefixes too
    again = checkpoint_filter_fn(converted, model)
    assert again.keys() == converted.keys() and all(again[k] is converted[k] for k in again)
    bare = {'module.' + k[len('backbone.'):]: v for k, v in official.items() if k.startswith('backbone.')}
    out = checkpoint_filter_fn(bare, model)
    assert not any(k.startswith('head.') for k in out)
    model.load_state_dict(out, strict=False)


def test_checkpoint_filter_rejects_wrong_variant():
    official = official_state_dict(192, 24, 1, (0,))
    with pytest.raises(ValueError, match='checkpoint mismatch'):
        checkpoint_filter_fn({'state_dict': official}, timm.create_model('plainmamba_l2', depth=2))
    del official['backbone.layers.5.mamba.direction_Bs']
    with pytest.raises(ValueError, match='missing'):
        checkpoint_filter_fn(official, timm.create_model('plainmamba_l1'))


def test_pretrained_from_local_official_file_and_other_img_size(tmp_path):
    """timm's pretrained path with a local official file converts through checkpoint_filter_fn; a model built for
    another img_size gets the 14x14 pos_embed resized."""
    path = tmp_path / 'l1.pth'
    torch.save({'meta': {'epoch': 300}, 'state_dict': official_state_dict(192, 24, 1, (0,))}, path)
    model = timm.create_model('plainmamba_l1', pretrained=True, num_classes=10, img_size=256,
                              pretrained_cfg_overlay=dict(file=str(path)))
    assert model.head.fc.out_features == 10
    assert model.pos_embed.shape == (1, 256, 192)
    with torch.no_grad():
        assert torch.isfinite(model.eval()(torch.randn(1, 3, 64, 64))).all()


# --- training, scans, features, errors ------------------------------------------------------------------------------



@pytest.mark.parametrize('scan,direction_aware', [('zigzag', True), ('cross', True), ('bidirectional', False)])
def test_scan_strategies_train(scan, direction_aware):
    torch.manual_seed(0)
    model = timm.create_model('plainmamba_l1', num_classes=10, depth=2, scan=scan, direction_aware=direction_aware,
                              drop_path_rate=0.0)
    mixer = model.blocks[0].mixer
    assert mixer.k_group == get_scan(scan).num_directions
    assert (mixer.direction_Bs is not None) == direction_aware
    losses = train_steps(model, steps=4, size=64)
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]


def test_scan_errors():
    with pytest.raises(ValueError, match='unknown scan'):
        timm.create_model('plainmamba_l1', scan='spiral-of-doom')
    with pytest.raises(ValueError, match='exactly once'):  # atrous: each direction reads a quarter of the tokens
        timm.create_model('plainmamba_l1', depth=1, scan='atrous')


def test_bad_arguments():
    with pytest.raises(ValueError, match='odd'):
        timm.create_model('plainmamba_l1', depth=1, conv_size=4)
    with pytest.raises(ValueError, match='even'):
        timm.create_model('plainmamba_l1', depth=1, patch_size=15)
    with pytest.raises(ValueError, match='layers_with_dwconv'):
        timm.create_model('plainmamba_l1', depth=1, layers_with_dwconv=(3,))


@pytest.mark.parametrize('name,indices', [('plainmamba_l1', (5, 11, 17, 23)), ('plainmamba_l3', (8, 17, 26, 35))])
def test_features_follow_official_segmentation_out_indices(name, indices):
    """Default features_only levels = the official UperNet configs' out_indices
    (downstream/mmsegmentation/plain_mamba_seg_configs/l{1,3}_upernet.py), all at stride 16."""
    feat = timm.create_model(name, features_only=True, embed_dim=16)  # the levels depend on depth only
    assert tuple(feat.feature_info.out_indices) == indices
    assert feat.feature_info.reduction() == [16] * 4


def test_features_corner_padding_and_intermediates():
    model = timm.create_model('plainmamba_l1', depth=4, embed_dim=32, num_classes=0).eval()
    x = torch.randn(1, 3, 100, 72)  # 100 -> stem 50 -> padded to 56 -> 7 tokens; 72 -> 36 -> 40 -> 5
    with torch.no_grad():
        final, feats = model.forward_intermediates(x, indices=[1, 3])
        assert [f.shape for f in feats] == [(1, 32, 7, 5)] * 2
        torch.testing.assert_close(final, model.forward_features(x))
