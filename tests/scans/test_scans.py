"""Tests for vmamba_zoo.scans: index-map invariants for every registered strategy, scan/merge semantics,
hand-written expected orders for small maps, MSVMamba's multi-scale recipe, and error messages."""
import copy
import pickle

import pytest
import torch
import torch.nn.functional as F

from vmamba_zoo.scans import (ScanIndex, ScanStrategy, get_scan, list_scans, merge, register_scan, scan)
from vmamba_zoo.scans import base as scans_base

SIZES = [(1, 1), (1, 5), (5, 1), (3, 4), (3, 5), (7, 7), (8, 6), (14, 14)]
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
# Every registered strategy with its defaults (new ones are picked up automatically), plus option variants.
CASES = [(name, {}) for name in list_scans()] + [
    ('atrous', {'step': 1}), ('atrous', {'step': 3}), ('atrous', {'pad': 'grid'}), ('atrous', {'step': 3, 'pad': 'grid'}),
]
CASE_IDS = [name + ''.join(f'-{k}={v}' for k, v in opts.items()) for name, opts in CASES]


def leaves(strategy, H, W):
    """(ordinary strategy, h, w) pairs to test: the strategy itself, or each group of a composite one."""
    if strategy.composite:
        return [(g.strategy, *g.size(H, W)) for g in strategy.groups]
    return [(strategy, H, W)]


def integer_map(B, C, H, W, dtype, seed=0):
    """Small integers: exactly representable in every float dtype, and so are their sums of <= 4 terms."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-8, 9, (B, C, H, W), generator=g).to(dtype)


# ----------------------------------------------------------------------------------------------------------------
# Invariants for every strategy
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('size', SIZES, ids=lambda s: f'{s[0]}x{s[1]}')
@pytest.mark.parametrize('name,opts', CASES, ids=CASE_IDS)
def test_index_invariants(name, opts, size):
    for strategy, H, W in leaves(get_scan(name, **opts), *size):
        idx = strategy.index(H, W)
        assert isinstance(idx, ScanIndex)
        HW, K, S = H * W, strategy.num_directions, idx.seq_len
        assert idx.orders.shape == (K, S) and idx.inverse.shape == (K, HW) and idx.coverage.shape == (HW,)
        for t in (idx.orders, idx.inverse, idx.coverage):
            assert t.dtype == torch.long and t.is_contiguous()
        assert (idx.orders >= 0).all() and (idx.orders <= HW).all()
        for k in range(K):
            order, inverse = idx.orders[k].tolist(), idx.inverse[k].tolist()
            real_steps = [s for s in range(S) if order[s] != HW]
            assert len(set(order[s] for s in real_steps)) == len(real_steps), 'a pixel read twice'
            for s in real_steps:  # every non-sentinel step maps back
                assert inverse[order[s]] == s
            for p in range(HW):  # every visited pixel: orders[k, inverse[k, p]] == p; unvisited ones never read
                if inverse[p] < S:
                    assert order[inverse[p]] == p
                else:
                    assert inverse[p] == S and p not in order
        visited = (idx.inverse < S).long()
        assert torch.equal(idx.coverage, visited.sum(0))
        assert idx.padded == bool((idx.orders == HW).any())
        assert idx.complete == bool(visited.all())
        idx.validate()


@pytest.mark.parametrize('name,opts', CASES, ids=CASE_IDS)
def test_coverage_values(name, opts):
    strategy = get_scan(name, **opts)
    for size in SIZES:
        for leaf, H, W in leaves(strategy, *size):
            cov = leaf.index(H, W).coverage
            expected = 1 if name == 'atrous' else leaf.num_directions  # atrous: each pixel in one sub-grid
            assert (cov == expected).all(), (leaf, H, W, cov)


@pytest.mark.parametrize('name,opts', CASES, ids=CASE_IDS)
def test_atrous_end_padding_is_trailing(name, opts):
    strategy = get_scan(name, **opts)
    if getattr(strategy, 'pad', 'end') != 'end':
        pytest.skip('grid padding sits where the padded pixels are')
    for size in SIZES:
        for leaf, H, W in leaves(strategy, *size):
            orders = leaf.index(H, W).orders
            is_pad = orders == H * W
            # once a direction hits the sentinel it stays there
            assert torch.equal(is_pad, is_pad.long().cummax(1).values.bool())


@pytest.mark.parametrize('dtype', DTYPES, ids=str)
@pytest.mark.parametrize('size', SIZES, ids=lambda s: f'{s[0]}x{s[1]}')
@pytest.mark.parametrize('name,opts', CASES, ids=CASE_IDS)
def test_scan_merge_roundtrip(name, opts, size, dtype):
    for strategy, H, W in leaves(get_scan(name, **opts), *size):
        idx = strategy.index(H, W)
        x = integer_map(2, 3, H, W, dtype)
        xs = scan(x, strategy)
        assert xs.shape == (2, strategy.num_directions, 3, idx.seq_len) and xs.dtype == dtype
        # reference by plain advanced indexing on the map with a zero slot appended
        x_ext = torch.cat([x.flatten(2), x.new_zeros(2, 3, 1)], dim=2)
        assert torch.equal(xs, x_ext[:, :, idx.orders].permute(0, 2, 1, 3))
        back = merge(xs, strategy, (H, W))
        assert back.shape == x.shape and back.dtype == dtype
        assert torch.equal(back, idx.coverage.view(H, W).to(dtype) * x)


@pytest.mark.parametrize('name,opts', CASES, ids=CASE_IDS)
def test_merge_matches_explicit_sum(name, opts):
    for strategy, H, W in leaves(get_scan(name, **opts), 3, 5):
        idx = strategy.index(H, W)
        K, S = idx.orders.shape
        y = torch.randn(2, K, 3, S, dtype=torch.float64)
        expected = torch.zeros(2, 3, H * W, dtype=torch.float64)
        for k in range(K):
            for s in range(S):
                p = int(idx.orders[k, s])
                if p < H * W:
                    expected[:, :, p] += y[:, k, :, s]
        torch.testing.assert_close(merge(y, strategy, (H, W)), expected.view(2, 3, H, W))


@pytest.mark.parametrize('name,opts', CASES, ids=CASE_IDS)
def test_gradcheck(name, opts):
    for strategy, H, W in leaves(get_scan(name, **opts), 3, 5):
        S = strategy.index(H, W).seq_len
        x = torch.randn(1, 2, H, W, dtype=torch.float64, requires_grad=True)
        y = torch.randn(1, strategy.num_directions, 2, S, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda t: scan(t, strategy), (x,))
        assert torch.autograd.gradcheck(lambda t: merge(t, strategy, (H, W)), (y,))
        assert torch.autograd.gradgradcheck(lambda t: scan(t, strategy), (x,))
        assert torch.autograd.gradgradcheck(lambda t: merge(t, strategy, (H, W)), (y,))


@pytest.mark.parametrize('name,opts', CASES, ids=CASE_IDS)
def test_scan_and_merge_are_adjoint(name, opts):
    """<scan(x), y> == <x, merge(y)>: the backward of one is the other."""
    for strategy, H, W in leaves(get_scan(name, **opts), 7, 6):
        S = strategy.index(H, W).seq_len
        x = torch.randn(2, 3, H, W, dtype=torch.float64)
        y = torch.randn(2, strategy.num_directions, 3, S, dtype=torch.float64)
        torch.testing.assert_close((scan(x, strategy) * y).sum(), (x * merge(y, strategy, (H, W))).sum())


@pytest.mark.parametrize('name,opts', CASES, ids=CASE_IDS)
def test_non_contiguous_input(name, opts):
    for strategy, H, W in leaves(get_scan(name, **opts), 7, 6):
        x = torch.randn(2, H, W, 5).permute(0, 3, 1, 2)  # NCHW view of NHWC data, as SS2D passes it
        xs = scan(x, strategy)
        assert torch.equal(xs, scan(x.contiguous(), strategy))
        y = xs.transpose(2, 3).contiguous().transpose(2, 3)  # same values, non-contiguous
        assert torch.equal(merge(y, strategy, (H, W)), merge(xs, strategy, (H, W)))


@pytest.mark.parametrize('name,opts', CASES, ids=CASE_IDS)
def test_caching(name, opts):
    strategy = get_scan(name, **opts)
    assert get_scan(name, **opts) is strategy
    for leaf, H, W in leaves(strategy, 7, 7):
        idx = leaf.index(H, W)
        assert leaf.index(H, W) is idx
        assert leaf.index(H, W, 'cpu') is idx and leaf.index(H, W, torch.device('cpu')) is idx
        assert leaf.index(H + 1, W) is not idx


def test_default_options_share_one_instance():
    assert get_scan('atrous') is get_scan('atrous', step=2) is get_scan('atrous', pad='end', step=2)
    assert get_scan('atrous', step=3) is not get_scan('atrous')
    assert get_scan('atrous', step=3) == get_scan('atrous', step=3)
    assert repr(get_scan('atrous', step=3)) == "AtrousScan(step=3, pad='end')"


@pytest.mark.parametrize('name', list_scans())
def test_strategy_pickles(name):
    strategy = get_scan(name)
    for leaf, H, W in leaves(strategy, 4, 4):
        leaf.index(H, W)
    clone = pickle.loads(pickle.dumps(strategy))
    assert clone == strategy and copy.deepcopy(strategy) == strategy
    for leaf, H, W in leaves(clone, 4, 4):
        assert torch.equal(leaf.index(H, W).orders, get_scan(leaf.name, **leaf.options()).index(H, W).orders)


# ----------------------------------------------------------------------------------------------------------------
# Each strategy against an explicit construction
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('size', SIZES, ids=lambda s: f'{s[0]}x{s[1]}')
def test_cross_equals_flip_transpose(size):
    H, W = size
    x = torch.randn(2, 3, H, W)
    row, col = x.flatten(2), x.transpose(2, 3).flatten(2)
    expected = torch.stack([row, col, row.flip(-1), col.flip(-1)], dim=1)
    assert torch.equal(scan(x, 'cross'), expected)
    # merge: VMamba's CrossMerge, written out
    y = torch.randn(2, 4, 3, H * W, dtype=torch.float64)
    ref = (y[:, 0] + y[:, 2].flip(-1)) + (y[:, 1] + y[:, 3].flip(-1)).view(2, 3, W, H).transpose(2, 3).reshape(2, 3, -1)
    torch.testing.assert_close(merge(y, 'cross', (H, W)), ref.view(2, 3, H, W))


# 3x4 map, pixel ids:   0  1  2  3
#                       4  5  6  7
#                       8  9 10 11
def test_unidirectional_3x4():
    assert get_scan('unidirectional').index(3, 4).orders.tolist() == [list(range(12))]
    x = torch.randn(1, 2, 3, 4)
    assert torch.equal(scan(x, 'unidirectional'), x.flatten(2).unsqueeze(1))


def test_bidirectional_3x4():
    assert get_scan('bidirectional').index(3, 4).orders.tolist() == [list(range(12)), list(range(11, -1, -1))]


def test_cross_3x4():
    assert get_scan('cross').index(3, 4).orders.tolist() == [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11],
        [11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
        [11, 7, 3, 10, 6, 2, 9, 5, 1, 8, 4, 0],
    ]


def test_zigzag_3x4():
    z = get_scan('zigzag')
    assert z.index(3, 4).orders.tolist() == [
        [0, 1, 2, 3, 7, 6, 5, 4, 8, 9, 10, 11],   # rows, snaking, from top-left
        [11, 10, 9, 8, 4, 5, 6, 7, 3, 2, 1, 0],   # H odd: starts bottom-right, snakes up
        [0, 4, 8, 9, 5, 1, 2, 6, 10, 11, 7, 3],   # columns, snaking, from top-left
        [3, 7, 11, 10, 6, 2, 1, 5, 9, 8, 4, 0],   # W even: starts top-right, snakes left
    ]
    # PlainMamba direction codes: 0 start, 1 right, 2 left, 3 up, 4 down
    assert z.step_directions(3, 4).tolist() == [
        [0, 1, 1, 1, 4, 2, 2, 2, 4, 1, 1, 1],
        [0, 2, 2, 2, 3, 1, 1, 1, 3, 2, 2, 2],
        [0, 4, 4, 1, 3, 3, 1, 4, 4, 1, 3, 3],
        [0, 4, 4, 2, 3, 3, 2, 4, 4, 2, 3, 3],
    ]


def plainmamba_walk(H, W, axis, start, heading):
    """Walk a snake the way PlainMamba's get_permute_order describes it: move along ``axis`` in ``heading``
    until the edge, then step one line across (away from the start) and turn around. Returns (ids, codes)."""
    (i, j), ids, codes, code = start, [], [], 0
    across = 1 if (start[0] if axis == 'row' else start[1]) == 0 else -1
    for _ in range(H * W):
        ids.append(i * W + j)
        codes.append(code)
        if axis == 'row':
            if 0 <= j + heading < W:
                j, code = j + heading, (1 if heading > 0 else 2)
            else:
                i, heading, code = i + across, -heading, (4 if across > 0 else 3)
        else:
            if 0 <= i + heading < H:
                i, code = i + heading, (4 if heading > 0 else 3)
            else:
                j, heading, code = j + across, -heading, (1 if across > 0 else 2)
    return ids, codes


@pytest.mark.parametrize('size', SIZES + [(2, 2), (4, 3), (6, 9)], ids=lambda s: f'{s[0]}x{s[1]}')
def test_zigzag_matches_plainmamba_walk(size):
    H, W = size
    walks = [
        plainmamba_walk(H, W, 'row', (0, 0), +1),
        plainmamba_walk(H, W, 'row', (H - 1, W - 1) if H % 2 else (H - 1, 0), -1 if H % 2 else +1),
        plainmamba_walk(H, W, 'col', (0, 0), +1),
        plainmamba_walk(H, W, 'col', (H - 1, W - 1) if W % 2 else (0, W - 1), -1 if W % 2 else +1),
    ]
    z = get_scan('zigzag')
    assert z.index(H, W).orders.tolist() == [ids for ids, _ in walks]
    assert z.step_directions(H, W).tolist() == [codes for _, codes in walks]
    assert z.step_directions(H, W) is z.step_directions(H, W)


def test_atrous_4x4_divisible():
    # sub-grids: (rows%2, cols%2) = (0,0) row-major, (1,0) column-major, (0,1) row-major, (1,1) column-major
    # 4x4 ids:  0  1  2  3 /  4  5  6  7 /  8  9 10 11 / 12 13 14 15
    expected = [[0, 2, 8, 10], [4, 12, 6, 14], [1, 3, 9, 11], [5, 13, 7, 15]]
    for pad in ('end', 'grid'):
        idx = get_scan('atrous', pad=pad).index(4, 4)
        assert idx.orders.tolist() == expected and not idx.padded


def test_atrous_3x4_and_3x3():
    s = 12  # sentinel for 3x4
    assert get_scan('atrous').index(3, 4).orders.tolist() == [
        [0, 2, 8, 10], [4, 6, s, s], [1, 3, 9, 11], [5, 7, s, s]]
    # 3x4 'grid': the padded row 3 lands at the end of each column of the column-major directions
    assert get_scan('atrous', pad='grid').index(3, 4).orders.tolist() == [
        [0, 2, 8, 10], [4, s, 6, s], [1, 3, 9, 11], [5, s, 7, s]]
    s = 9  # 3x3 ids: 0 1 2 / 3 4 5 / 6 7 8
    assert get_scan('atrous').index(3, 3).orders.tolist() == [[0, 2, 6, 8], [3, 5, s, s], [1, 7, s, s], [4, s, s, s]]
    assert get_scan('atrous', pad='grid').index(3, 3).orders.tolist() == [
        [0, 2, 6, 8], [3, s, 5, s], [1, s, 7, s], [4, s, s, s]]


def test_atrous_step3_and_step1():
    # 3x3, step 3: nine 1-pixel sub-grids, k = c0 * 3 + r0
    orders = get_scan('atrous', step=3).index(3, 3).orders
    assert orders.tolist() == [[0], [3], [6], [1], [4], [7], [2], [5], [8]]
    assert get_scan('atrous', step=1).index(3, 4).orders.tolist() == [list(range(12))]


def test_atrous_matches_efficientvmamba_slices():
    """EfficientVMamba's EfficientScan slices (step 2, even map), written out."""
    x = torch.randn(2, 3, 6, 8)
    expected = torch.stack([
        x[:, :, ::2, ::2].flatten(2),
        x.transpose(2, 3)[:, :, ::2, 1::2].flatten(2),
        x[:, :, ::2, 1::2].flatten(2),
        x.transpose(2, 3)[:, :, 1::2, 1::2].flatten(2),
    ], dim=1)
    assert torch.equal(scan(x, 'atrous'), expected)
    # odd map with the official zero-padding: 'grid' layout
    x = torch.randn(2, 3, 5, 7)
    xp = F.pad(x, (0, 1, 0, 1))
    expected = torch.stack([
        xp[:, :, ::2, ::2].flatten(2),
        xp.transpose(2, 3)[:, :, ::2, 1::2].flatten(2),
        xp[:, :, ::2, 1::2].flatten(2),
        xp.transpose(2, 3)[:, :, 1::2, 1::2].flatten(2),
    ], dim=1)
    assert torch.equal(scan(x, get_scan('atrous', pad='grid')), expected)


# ----------------------------------------------------------------------------------------------------------------
# multiscale (MSVMamba)
# ----------------------------------------------------------------------------------------------------------------
def test_multiscale_structure():
    ms = get_scan('multiscale')
    assert ms.composite and ms.num_directions == 4 and ms.num_param_sets == 2
    low, full = ms.groups
    assert low.strategy is get_scan('cross_without_row') and low.stride == 2 and low.chained
    assert low.param_slice == slice(0, 1) and low.param_sets == 1
    assert full.strategy is get_scan('unidirectional') and full.stride == 1 and not full.chained
    assert full.param_slice == slice(1, 2)
    assert ms.upsample_mode == 'bilinear' and ms.align_corners is False
    # group sizes are what MSVMamba's stride-2, k=7, p=3 depth-wise conv produces
    conv = torch.nn.Conv2d(2, 2, groups=2, **{k: v for k, v in ms.downsample.items() if k != 'depthwise'})
    for H, W in SIZES:
        out = conv(torch.zeros(1, 2, H, W))
        assert ms.group_sizes(H, W) == [tuple(out.shape[-2:]), (H, W)]


def test_multiscale_low_res_directions_and_packing():
    ms = get_scan('multiscale')
    low = ms.groups[0]
    x = torch.randn(2, 3, 4, 5)
    hori_r = x.flatten(2).flip(-1)
    vert = x.transpose(2, 3).flatten(2)
    vert_r = vert.flip(-1)
    packed = low.pack(scan(x, low.strategy))
    assert torch.equal(packed, torch.cat([hori_r, vert, vert_r], dim=2).unsqueeze(1))  # one 3*h*w sequence
    assert torch.equal(low.unpack(packed), scan(x, low.strategy))
    # merge of the low-res outputs == MSVMamba's un-flip / un-transpose / sum, written out (channel-first)
    y = torch.randn(2, 1, 3, 3 * 20, dtype=torch.float64)
    seq = y[:, 0]
    ref = (seq[..., :20].flip(-1).view(2, 3, 4, 5)
           + seq[..., 20:40].view(2, 3, 5, 4).transpose(2, 3)
           + seq[..., 40:].flip(-1).view(2, 3, 5, 4).transpose(2, 3))
    torch.testing.assert_close(merge(low.unpack(y), low.strategy, (4, 5)), ref)
    full = ms.groups[1]  # not chained: pack / unpack leave the (B, 1, C, H*W) row-major sequence alone
    assert torch.equal(full.pack(scan(x, full.strategy)), x.flatten(2)[:, None])
    assert torch.equal(full.unpack(scan(x, full.strategy)), x.flatten(2)[:, None])


def test_multiscale_recipe_end_to_end():
    """The module docstring's recipe with identity 'selective scans': fuse == upsampled low merge + full merge."""
    ms = get_scan('multiscale')
    H, W = 7, 9
    x = torch.randn(2, 3, H, W)
    maps = [F.avg_pool2d(x, 2, ceil_mode=True), x]
    merged = []
    for group, xg in zip(ms.groups, maps):
        seq = group.pack(scan(xg, group.strategy))
        assert seq.shape[1] == group.param_sets
        merged.append(merge(group.unpack(seq), group.strategy, xg.shape[-2:]))
    y = ms.fuse(merged, (H, W))
    expected = F.interpolate(3 * maps[0], size=(H, W), mode='bilinear', align_corners=False) + x
    torch.testing.assert_close(y, expected)
    with pytest.raises(ValueError, match='one per group'):
        ms.fuse(merged[:1], (H, W))
    with pytest.raises(ValueError, match='group'):
        ms.fuse([merged[1], merged[1]], (H, W))


def test_multiscale_scan_and_merge_point_to_groups():
    x = torch.randn(1, 2, 4, 4)
    with pytest.raises(ValueError, match='groups'):
        scan(x, 'multiscale')
    with pytest.raises(ValueError, match='groups'):
        merge(torch.randn(1, 4, 2, 16), 'multiscale', (4, 4))


# ----------------------------------------------------------------------------------------------------------------
# registry and errors
# ----------------------------------------------------------------------------------------------------------------
def test_list_and_unknown_name():
    names = list_scans()
    assert names == sorted(names)
    assert {'cross', 'unidirectional', 'bidirectional', 'zigzag', 'atrous', 'multiscale'} <= set(names)
    with pytest.raises(ValueError) as err:
        get_scan('foo')
    assert str(err.value) == f"unknown scan strategy 'foo'; known: {', '.join(names)}"
    assert 'known: atrous, bidirectional, cross' in str(err.value)


@pytest.mark.parametrize('opts,match', [
    ({'step': 0}, 'step must be an int >= 1'),
    ({'step': -2}, 'step must be an int >= 1'),
    ({'step': 1.5}, 'step must be an int >= 1'),
    ({'step': True}, 'step must be an int >= 1'),
    ({'pad': 'middle'}, "pad must be 'end' or 'grid'"),
    ({'stride': 2}, "has no option 'stride'; its options: step, pad"),
])
def test_bad_atrous_options(opts, match):
    with pytest.raises(ValueError, match=match):
        get_scan('atrous', **opts)


def test_bad_options_elsewhere():
    with pytest.raises(ValueError, match="'cross' has no option 'step'; its options: none"):
        get_scan('cross', step=2)
    with pytest.raises(ValueError, match='only apply when a strategy is given by name'):
        get_scan(get_scan('cross'), step=2)
    with pytest.raises(ValueError, match='name or a ScanStrategy'):
        get_scan(3)
    assert get_scan(get_scan('zigzag')) is get_scan('zigzag')


def test_wrong_ranks_and_shapes():
    x = torch.randn(2, 3, 4, 5)
    xs = scan(x, 'cross')
    for bad in (torch.randn(3, 4, 5), torch.randn(1, 2, 3, 4, 5)):
        with pytest.raises(ValueError, match=r'scan expects x of shape \(B, C, H, W\)'):
            scan(bad, 'cross')
    with pytest.raises(ValueError, match=r'merge expects y of shape \(B, K, C, S\)'):
        merge(xs[0], 'cross', (4, 5))
    with pytest.raises(ValueError, match=r"'cross' at 4x5 expects y of shape \(B, 4, C, 20\)"):
        merge(xs[:, :2], 'cross', (4, 5))  # wrong K
    with pytest.raises(ValueError, match=r"'cross' at 5x5 expects y of shape \(B, 4, C, 25\); got \(2, 4, 3, 20\)"):
        merge(xs, 'cross', (5, 5))  # wrong S for that size
    with pytest.raises(ValueError, match=r'expects y of shape \(B, 4, C, 9\)'):
        merge(scan(torch.randn(1, 2, 4, 4), 'atrous'), 'atrous', (5, 5))  # atrous 5x5 needs S = 3*3
    with pytest.raises(ValueError, match=r'size must be \(H, W\)'):
        merge(xs, 'cross', 20)
    with pytest.raises(ValueError, match='H must be >= 1'):
        get_scan('cross').index(0, 3)
    with pytest.raises(ValueError, match='W must be an int'):
        get_scan('cross').index(3, 2.5)


def test_register_custom_strategy_and_validation():
    @register_scan('test_transpose_only')
    class TransposeOnly(ScanStrategy):
        num_directions = 1

        def build_orders(self, H, W):
            return torch.arange(H * W).view(H, W).t().reshape(1, -1)

    @register_scan('test_broken')
    class Broken(ScanStrategy):
        num_directions = 1

        def build_orders(self, H, W):
            return torch.zeros(1, H * W, dtype=torch.long)  # reads pixel 0 H*W times

    try:
        assert 'test_transpose_only' in list_scans()
        x = torch.randn(1, 2, 3, 4)
        assert torch.equal(scan(x, 'test_transpose_only')[:, 0], x.transpose(2, 3).flatten(2))
        with pytest.raises(ValueError, match='already registered'):
            register_scan('cross')(TransposeOnly)
        with pytest.raises(ValueError, match="'test_broken' direction 0 reads a pixel more than once"):
            get_scan('test_broken').index(2, 2)
    finally:
        for name in ('test_transpose_only', 'test_broken'):
            scans_base._REGISTRY.pop(name, None)
            for key in [k for k in scans_base._INSTANCES if k[0] == name]:
                del scans_base._INSTANCES[key]


def test_validate_catches_corruption():
    idx = get_scan('cross').index(3, 3)
    bad = ScanIndex(idx.orders, idx.inverse.flip(1).contiguous(), idx.coverage, idx.seq_len, 3, 3,
                    idx.padded, idx.complete, idx.identity)
    with pytest.raises(ValueError, match='not inverse'):
        bad.validate()


# ----------------------------------------------------------------------------------------------------------------
# CUDA (skipped without a GPU)
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize('name,opts', CASES, ids=CASE_IDS)
def test_cuda_matches_cpu(name, opts):
    strategy = get_scan(name, **opts)
    for leaf, H, W in leaves(strategy, 7, 6):
        assert leaf.index(H, W, 'cuda') is leaf.index(H, W, f'cuda:{torch.cuda.current_device()}')
        for dtype in (torch.float32, torch.bfloat16):
            x = integer_map(2, 3, H, W, dtype)
            xs = scan(x.cuda(), leaf)
            assert xs.is_cuda and torch.equal(xs.cpu(), scan(x, leaf))
            assert torch.equal(merge(xs, leaf, (H, W)).cpu(), merge(scan(x, leaf), leaf, (H, W)))
        x = torch.randn(1, 2, H, W, dtype=torch.float64, device='cuda', requires_grad=True)
        assert torch.autograd.gradcheck(lambda t: scan(t, leaf), (x,))


def test_index_built_in_inference_mode_serves_autograd_later():
    """The index cache outlives the call: maps first built under torch.inference_mode() (a model's first,
    inference-only forward) must still work when a later training step scans through them."""
    strategy = get_scan('cross')
    strategy._cache.clear()
    with torch.inference_mode():
        scan(torch.randn(1, 3, 5, 7), strategy)
    x = torch.randn(1, 3, 5, 7, requires_grad=True)
    merge(scan(x, strategy), strategy, (5, 7)).sum().backward()
    torch.testing.assert_close(x.grad, torch.full_like(x, 4.0))


def test_index_carries_an_int32_order_table():
    index = get_scan('zigzag').index(5, 7)
    assert index.orders_int32.dtype == torch.int32 and index.orders_int32.is_contiguous()
    assert torch.equal(index.orders_int32.long(), index.orders)
