"""The state-fusion op (Spatial-Mamba) and the selective scan's ``return_states`` mode it is built on: every path
against the sequential reference (naive.py), the reference against the official formulation, gradients, dispatch,
errors, tracing / FLOPs."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vmamba_zoo.flops import count_flops
from vmamba_zoo.ops.selective_scan import selective_scan, selective_scan_chunked, selective_scan_naive
from vmamba_zoo.ops.state_fusion import (ENV_BACKEND, StateFusionScanFn, available_backends, state_fusion_scan,
                                         state_fusion_scan_chunked, state_fusion_scan_naive)


def make_inputs(batch=2, groups=1, per_group=4, d_state=1, size=(5, 7), grouped=False, n_dil=3, kernel=3,
                with_D=True, with_bias=True, dtype=torch.float32, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    channels, length = groups * per_group, size[0] * size[1]

    def rnd(*shape, scale=1.0, shift=0.0):
        return (torch.randn(*shape, generator=g) * scale + shift).to(dtype).requires_grad_(requires_grad)

    bc = (batch, groups, d_state, length) if grouped else (batch, d_state, length)
    A = (-torch.rand(channels, d_state, generator=g).add(0.3)).to(dtype).requires_grad_(requires_grad)
    return dict(u=rnd(batch, channels, length), delta=rnd(batch, channels, length, scale=0.5), A=A,
                B=rnd(*bc), C=rnd(*bc), weight=rnd(n_dil, channels, kernel, kernel, scale=0.3), size=size,
                D=rnd(channels) if with_D else None, delta_bias=rnd(channels, scale=0.1) if with_bias else None)


def random_order(groups, length, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(length, generator=g) for _ in range(groups)])


def assert_close(out, ref, atol=1e-5, rtol=1e-4):
    scale = ref.float().abs().max().clamp_min(1.0)
    torch.testing.assert_close(out.float(), ref.float(), atol=atol * scale, rtol=rtol)


# ---------------------------------------------------------------------------------------------------------------
# selective_scan(return_states=True)
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('d_state', [1, 4])
@pytest.mark.parametrize('grouped', [False, True])
def test_return_states_reads_out_to_the_plain_scan(d_state, grouped):
    inp = make_inputs(groups=2, d_state=d_state, grouped=grouped, seed=d_state)
    args = (inp['u'], inp['delta'], inp['A'], inp['B'])
    kw = dict(delta_bias=inp['delta_bias'], delta_softplus=True)
    states, last = selective_scan_naive(*args, None, return_states=True, return_last_state=True, **kw)
    batch, channels, length = inp['u'].shape
    assert states.shape == (batch, channels, d_state, length) and states.dtype == torch.float32
    torch.testing.assert_close(last, states[..., -1])
    # <C_t, h_t> + D u_t is the ordinary selective-scan output
    C = inp['C'].view(batch, -1, 1, d_state, length)
    y = (states.view(batch, C.shape[1], -1, d_state, length) * C).sum(-2).reshape(batch, channels, length)
    y = y + inp['D'][:, None] * inp['u']
    assert_close(y, selective_scan_naive(*args, inp['C'], D=inp['D'], **kw))
    for chunk_size in (None, 8, 5):
        assert_close(selective_scan_chunked(*args, None, return_states=True, chunk_size=chunk_size, **kw), states)
    assert_close(selective_scan(*args, None, return_states=True, **kw), states)


def test_return_states_with_steep_decay_takes_the_split_path_exactly():
    """dt * |A| of tens per step overflows the closed form inside a chunk; the chunked scan splits such chunks
    (``_too_steep``), in the states mode as in the plain one, with and without autograd."""
    inp = make_inputs(groups=2, d_state=2, grouped=True, size=(6, 9))
    args = (inp['u'], inp['delta'] * 4 + 6, inp['A'] * 8, inp['B'])
    ref = selective_scan_naive(*args, None, delta_softplus=True, return_states=True)
    assert torch.isfinite(ref).all()
    assert_close(selective_scan_chunked(*args, None, delta_softplus=True, return_states=True, chunk_size=32), ref)
    leaf = args[0].clone().requires_grad_(True)
    out = selective_scan_chunked(leaf, *args[1:], None, delta_softplus=True, return_states=True, chunk_size=32)
    assert_close(out, ref)
    out.sum().backward()
    assert torch.isfinite(leaf.grad).all()


def test_return_states_gradients_match_naive():
    inp = make_inputs(groups=2, d_state=2, grouped=True, requires_grad=True)
    args = [inp[k] for k in ('u', 'delta', 'A', 'B', 'delta_bias')]
    probe = torch.randn(2, 8, 2, 35)

    def grads(fn, **extra):
        out = fn(*args[:4], None, delta_bias=args[4], delta_softplus=True, return_states=True, **extra)
        return torch.autograd.grad((out * probe).sum(), args)

    for ours, ref in zip(grads(selective_scan_chunked, chunk_size=8), grads(selective_scan_naive)):
        assert_close(ours, ref, atol=1e-5, rtol=1e-4)


def test_return_states_rejects_readout_arguments_and_non_state_backends(monkeypatch):
    inp = make_inputs()
    args = (inp['u'], inp['delta'], inp['A'], inp['B'])
    with pytest.raises(ValueError, match='pass C, D=None'):
        selective_scan(*args, inp['C'], D=inp['D'], return_states=True)
    with pytest.raises(ValueError, match='C is required'):
        selective_scan(*args, None)
    with pytest.raises(ValueError, match="'triton' cannot return the hidden states"):
        selective_scan(*args, None, return_states=True, backend='triton')
    # a backend pinned for every call by the environment falls back for this mode instead of failing
    monkeypatch.setenv('VMAMBA_ZOO_SCAN_BACKEND', 'triton')
    assert_close(selective_scan(*args, None, return_states=True), selective_scan_naive(*args, None, return_states=True))


# ---------------------------------------------------------------------------------------------------------------
# state_fusion_scan: reference vs the official formulation, fast path vs reference
# ---------------------------------------------------------------------------------------------------------------
def test_naive_equals_the_official_state_fusion_both_modes():
    """Official ``StateFusion`` (EdwardChasel/Spatial-Mamba classification/models/spatialmamba.py): training mode =
    alpha-weighted sum of three replicate-padded dilated 3x3 convs; eval mode = one 11x11 kernel they merge into,
    with a replicate border of 5 (kernels/dwconv2d); then y = h * C + u * D (N = 1, row-major scan)."""
    inp = make_inputs(batch=2, per_group=5, size=(9, 12), seed=3)
    u, D, C = inp['u'], inp['D'], inp['C']
    g = torch.Generator().manual_seed(1)
    kernels = [torch.randn(5, 1, 3, 3, generator=g) for _ in range(3)]
    alpha = torch.randn(3, generator=g)
    h = selective_scan_naive(u, inp['delta'], inp['A'], inp['B'], None, delta_bias=inp['delta_bias'],
                             delta_softplus=True, return_states=True).view(2, 5, 9, 12)
    train = sum(alpha[i] * F.conv2d(F.pad(h, (d,) * 4, mode='replicate'), kernels[i], dilation=d, groups=5)
                for i, d in enumerate((1, 3, 5)))
    merged = torch.zeros(5, 1, 11, 11)
    for i, d in enumerate((1, 3, 5)):
        merged[..., 5 - d::d, 5 - d::d][..., :3, :3] += alpha[i] * kernels[i]
    evaluated = F.conv2d(F.pad(h, (5,) * 4, mode='replicate'), merged, groups=5)
    torch.testing.assert_close(evaluated, train, atol=1e-5, rtol=1e-5)
    expected = train.reshape(2, 5, -1) * C + u * D[:, None]
    weight = torch.stack([alpha[i] * kernels[i][:, 0] for i in range(3)])
    out = state_fusion_scan_naive(u, inp['delta'], inp['A'], inp['B'], C, weight, (9, 12), D=D,
                                  delta_bias=inp['delta_bias'], delta_softplus=True)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('case', [
    dict(),
    dict(d_state=4),
    dict(groups=2, grouped=True, order='random'),
    dict(groups=4, per_group=2, grouped=True, d_state=2, order='random', size=(4, 4)),
    dict(size=(1, 9), with_D=False, with_bias=False),
    dict(size=(1, 1)),
    dict(size=(3, 2), kernel=5, n_dil=2, dilations=(2, 1)),
    dict(size=(11, 6), dilations=(1, 3, 5)),
])
def test_chunked_matches_naive(case):
    case = dict(case)
    order, dilations = case.pop('order', None), case.pop('dilations', None)
    inp = make_inputs(seed=len(case), **case)
    groups = inp['B'].shape[1] if inp['B'].dim() == 4 else 1
    length = inp['u'].shape[-1]
    extra = dict(delta_softplus=True, order=random_order(groups, length) if order else None)
    if dilations is not None:
        extra['dilations'] = dilations
    elif inp['weight'].shape[0] != 3:
        extra['dilations'] = (1,) * inp['weight'].shape[0]
    ref = state_fusion_scan_naive(**inp, **extra)
    for chunk_size in (None, 4):
        out = state_fusion_scan_chunked(**inp, **extra, chunk_size=chunk_size)
        assert out.shape == ref.shape == inp['u'].shape and out.dtype == ref.dtype
        assert_close(out, ref)
    assert_close(state_fusion_scan(**inp, **extra), ref)


@pytest.mark.parametrize('seed', range(3))
def test_chunked_matches_naive_random_shapes(seed):
    g = torch.Generator().manual_seed(50 + seed)
    pick = lambda *choices: choices[int(torch.randint(len(choices), (1,), generator=g))]  # noqa: E731
    groups = pick(1, 2, 4)
    size = (int(torch.randint(1, 13, (1,), generator=g)), int(torch.randint(1, 13, (1,), generator=g)))
    inp = make_inputs(batch=pick(1, 3), groups=groups, per_group=pick(1, 3, 8), d_state=pick(1, 2, 4), size=size,
                      grouped=True, seed=seed)
    order = random_order(groups, size[0] * size[1], seed) if pick(True, False) else None
    ref = state_fusion_scan_naive(**inp, delta_softplus=True, order=order)
    assert_close(state_fusion_scan_chunked(**inp, delta_softplus=True, order=order), ref)


def test_row_major_order_equals_no_order():
    inp = make_inputs(groups=2, grouped=True)
    identity = torch.arange(35).expand(2, 35).contiguous()
    for fn in (state_fusion_scan_naive, state_fusion_scan_chunked):
        torch.testing.assert_close(fn(**inp, order=identity), fn(**inp))


def test_bf16_inputs_keep_fp32_states():
    inp = make_inputs(dtype=torch.bfloat16, d_state=2, size=(6, 6), per_group=8)
    ref32 = state_fusion_scan_naive(**{k: v.float() if torch.is_tensor(v) else v for k, v in inp.items()},
                                    delta_softplus=True)
    for fn in (state_fusion_scan_naive, state_fusion_scan_chunked, state_fusion_scan):
        out = fn(**inp, delta_softplus=True)
        assert out.dtype == torch.bfloat16
        assert_close(out, ref32, atol=1e-2, rtol=1e-2)


# ---------------------------------------------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------------------------------------------
def _differentiable(inp):
    return [inp[k] for k in ('u', 'delta', 'A', 'B', 'C', 'weight', 'D', 'delta_bias')]


def _call(fn, tensors, size, **extra):
    u, delta, A, B, C, weight, D, bias = tensors
    return fn(u, delta, A, B, C, weight, size, D=D, delta_bias=bias, delta_softplus=True, **extra)


def test_chunked_gradients_match_naive():
    inp = make_inputs(groups=2, grouped=True, d_state=2, size=(4, 5), requires_grad=True)
    tensors, order = _differentiable(inp), random_order(2, 20)
    probe = torch.randn(2, 8, 20)
    ref = torch.autograd.grad((_call(state_fusion_scan_naive, tensors, (4, 5), order=order) * probe).sum(), tensors)
    ours = torch.autograd.grad((_call(state_fusion_scan_chunked, tensors, (4, 5), order=order, chunk_size=6)
                                * probe).sum(), tensors)
    for a, b in zip(ours, ref):
        assert_close(a, b)


@pytest.mark.parametrize('fn', [state_fusion_scan_naive, state_fusion_scan_chunked])
def test_gradcheck_float64(fn):
    inp = make_inputs(batch=1, groups=2, per_group=2, grouped=True, d_state=2, size=(3, 4), dtype=torch.float64,
                      requires_grad=True)
    order = random_order(2, 12)
    assert torch.autograd.gradcheck(lambda *t: _call(fn, t, (3, 4), order=order), _differentiable(inp),
                                    eps=1e-6, atol=1e-6)


def test_traced_node_backward_matches_direct():
    inp = make_inputs(requires_grad=True)
    tensors = _differentiable(inp)
    probe = torch.randn(2, 4, 35)
    direct = torch.autograd.grad((_call(state_fusion_scan_chunked, tensors, (5, 7)) * probe).sum(), tensors)
    out = StateFusionScanFn.apply(state_fusion_scan_chunked, dict(size=(5, 7), delta_softplus=True,
                                                                  dilations=(1, 3, 5)), *tensors, None)
    for a, b in zip(torch.autograd.grad((out * probe).sum(), tensors), direct):
        torch.testing.assert_close(a, b)


# ---------------------------------------------------------------------------------------------------------------
# dispatch, errors, tracing / FLOPs
# ---------------------------------------------------------------------------------------------------------------
def test_dispatch_and_backend_selection(monkeypatch):
    assert {'naive', 'chunked'} <= set(available_backends())
    inp = make_inputs()
    ref = state_fusion_scan_naive(**inp)
    torch.testing.assert_close(state_fusion_scan(**inp, backend='naive'), ref)
    monkeypatch.setenv(ENV_BACKEND, 'naive')
    torch.testing.assert_close(state_fusion_scan(**inp), ref)
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        state_fusion_scan(**inp, backend='nope')


@pytest.mark.parametrize('change, message', [
    (dict(weight=torch.ones(3, 5, 3, 3)), r'weight must be \(len\(dilations\)=3, K\*D=4'),
    (dict(weight=torch.ones(2, 4, 3, 3)), r'weight must be \(len\(dilations\)=3'),
    (dict(weight=torch.ones(3, 4, 2, 2)), 'kernel sizes must be odd'),
    (dict(size=(5, 6)), 'does not hold the L=35 steps'),
    (dict(size=5), r'size must be \(H, W\)'),
    (dict(dilations=(1, 0, 2)), 'dilations must be positive'),
    (dict(order=torch.zeros(1, 35, dtype=torch.long)), 'visit each of the H\\*W pixels exactly once'),
    (dict(order=torch.arange(35)), r'order must be an int64 \(K=1, L=35\)'),
    (dict(C=torch.ones(2, 1, 34)), "C must have B's shape"),
])
def test_bad_inputs_raise_clear_errors(change, message):
    inp = dict(make_inputs(), **change)
    for fn in (state_fusion_scan, state_fusion_scan_naive, state_fusion_scan_chunked):
        with pytest.raises(ValueError, match=message):
            fn(**inp)


class _FusionModule(nn.Module):
    def __init__(self, inp):
        super().__init__()
        self.inp = inp
        self.scale = nn.Parameter(torch.ones(1))  # count_flops reads the device from a parameter

    def forward(self, x):
        inp = dict(self.inp, u=self.inp['u'] + (x * self.scale).mean())
        return state_fusion_scan(**inp, delta_softplus=True)


def test_trace_shows_one_node_counted_with_the_official_formula():
    inp = make_inputs(batch=2, per_group=6, d_state=2, size=(4, 5))
    module = _FusionModule(inp)
    graph = torch.jit.trace(module, (torch.randn(1),), check_trace=False).inlined_graph
    assert [n.pyname() for n in graph.nodes() if n.kind() == 'prim::PythonOp'] == ['StateFusionScanFn']
    flops, unsupported = count_flops(module, (1,), return_unsupported=True)
    B, D, N, L = 2, 6, 2, 20
    # 7*B*L*D*N (official selective_scan_state_flop_jit) + 3 dilations x 9 taps per state
    assert flops == 7 * B * L * D * N + 27 * B * D * N * L + 1  # + the input's mean (1 element)
    assert 'prim::PythonOp.StateFusionScanFn' not in unsupported


def test_bench_ops_reports_the_state_fusion_ratio(tmp_path):
    """tools/bench_ops.py runs its state_fusion row (Tiny stage-1 shapes) and writes the ratio; one round only."""
    import importlib.util
    import json
    from pathlib import Path
    path = Path(__file__).resolve().parents[2] / 'tools' / 'bench_ops.py'
    spec = importlib.util.spec_from_file_location('tool_bench_ops', path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    report = bench.main(['--ops', 'state_fusion', '--rounds', '1', '--json', str(tmp_path / 'ops.json')])
    row = report['ops']['state_fusion']
    assert row['naive_ms'] > 0 and row['fast_ms'] > 0 and row['speedup'] == row['naive_ms'] / row['fast_ms']
    assert row['max_abs_diff'] < 1e-4
    assert json.loads((tmp_path / 'ops.json').read_text())['ops']['state_fusion']['shape'].startswith('B=1 ')
