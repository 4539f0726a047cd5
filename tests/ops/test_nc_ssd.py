"""The non-causal SSD op: every path against the reference (naive.py), the reference against the per-token formula."""
import importlib

import pytest
import torch
from torch import nn

from vmamba_zoo.flops import count_flops
from vmamba_zoo.ops import nc_ssd
from vmamba_zoo.ops.nc_ssd import (ENV_BACKEND, NonCausalSSDFn, available_backends, nc_ssd_matmul, nc_ssd_naive,
                                   nc_ssd_true_macs, register_backend)
from vmamba_zoo.scans import get_scan, list_scans

# the package (``vmamba_zoo.ops.nc_ssd`` as an attribute is the function, re-exported by vmamba_zoo.ops)
nc_ssd_module = importlib.import_module('vmamba_zoo.ops.nc_ssd')


def make_inputs(batch=2, length=37, nheads=4, headdim=5, ngroups=1, d_state=6, dtype=torch.float32, with_D=True,
                seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0, shift=0.0):
        return (torch.randn(*shape, generator=g) * scale + shift).to(dtype).requires_grad_(requires_grad)

    dt = torch.nn.functional.softplus(torch.randn(batch, length, nheads, generator=g) - 1)
    return dict(
        x=rnd(batch, length, nheads, headdim),
        dt=dt.to(dtype).requires_grad_(requires_grad),
        A=(torch.rand(nheads, generator=g) * 3 + 0.5).to(dtype).requires_grad_(requires_grad),
        B=rnd(batch, length, ngroups, d_state, scale=0.5),
        C=rnd(batch, length, ngroups, d_state, scale=0.5),
        D=rnd(nheads) if with_D else None,
    )


def per_token_loops(x, dt, A, B, C, D=None):
    """The NC-SSD definition token by token (float64): y_l = sum_m <C_l, B_m> dt_m A x_m + D x_l, group h % G."""
    x, dt, A, B, C = (t.double() for t in (x, dt, A, B, C))
    batch, length, nheads, _ = x.shape
    ngroups = B.shape[2]
    y = torch.zeros_like(x)
    for l in range(length):
        for h in range(nheads):
            g = h % ngroups
            for m in range(length):
                y[:, l, h] += (C[:, l, g] * B[:, m, g]).sum(-1, keepdim=True) * dt[:, m, h, None] * A[h] * x[:, m, h]
            if D is not None:
                y[:, l, h] += D.double()[h] * x[:, l, h]
    return y


def assert_close(out, ref, atol, rtol):
    scale = ref.float().abs().max().clamp_min(1.0)
    torch.testing.assert_close(out.float(), ref.float(), atol=atol * scale.item(), rtol=rtol)


@pytest.mark.parametrize('ngroups,nheads', [(1, 2), (2, 4), (3, 6)])
@pytest.mark.parametrize('with_D', [True, False])
def test_naive_is_the_per_token_formula(ngroups, nheads, with_D):
    inputs = make_inputs(batch=2, length=9, nheads=nheads, headdim=3, ngroups=ngroups, d_state=4, with_D=with_D,
                         seed=ngroups)
    assert_close(nc_ssd_naive(**inputs), per_token_loops(**inputs), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize('ngroups,nheads', [(1, 1), (1, 4), (2, 4), (4, 4)])
@pytest.mark.parametrize('length', [1, 37, 130])
def test_matmul_matches_naive_fp32(ngroups, nheads, length):
    inputs = make_inputs(length=length, nheads=nheads, ngroups=ngroups, seed=length + nheads)
    ref = nc_ssd_naive(**inputs)
    for fn in (nc_ssd_matmul, nc_ssd):
        out = fn(**inputs)
        assert out.shape == ref.shape and out.dtype == ref.dtype
        assert_close(out, ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize('seed', range(4))
def test_matmul_matches_naive_random_shapes(seed):
    g = torch.Generator().manual_seed(100 + seed)
    pick = lambda *choices: choices[int(torch.randint(len(choices), (1,), generator=g))]  # noqa: E731
    ngroups = pick(1, 2, 3)
    inputs = make_inputs(batch=pick(1, 3), length=int(torch.randint(2, 300, (1,), generator=g)),
                         nheads=ngroups * pick(1, 2), headdim=pick(1, 8, 16), ngroups=ngroups,
                         d_state=pick(1, 16, 48), with_D=pick(True, False), seed=seed)
    assert_close(nc_ssd_matmul(**inputs), nc_ssd_naive(**inputs), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_low_precision_inputs_keep_fp32_accumulation(dtype):
    inputs = make_inputs(dtype=dtype, length=70, ngroups=2)
    ref32 = nc_ssd_naive(**{k: v.float() for k, v in inputs.items()})
    for fn in (nc_ssd_naive, nc_ssd_matmul, nc_ssd):
        out = fn(**inputs)
        assert out.dtype == dtype
        assert_close(out, ref32, atol=1e-2, rtol=1e-2)


def test_gradients_match_naive():
    inputs = make_inputs(length=29, ngroups=2, requires_grad=True, seed=3)
    grad_out = torch.randn(inputs['x'].shape, generator=torch.Generator().manual_seed(9))
    leaves = list(inputs.values())
    ref = torch.autograd.grad(nc_ssd_naive(**inputs), leaves, grad_out)
    got = torch.autograd.grad(nc_ssd_matmul(**inputs), leaves, grad_out)
    for a, b in zip(got, ref):
        assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize('fn', [nc_ssd_naive, nc_ssd_matmul], ids=['naive', 'matmul'])
def test_gradcheck_float64(fn):
    inputs = make_inputs(batch=1, length=6, nheads=2, headdim=2, ngroups=2, d_state=3, dtype=torch.float64,
                         requires_grad=True, seed=1)
    assert torch.autograd.gradcheck(lambda *a: fn(*a), tuple(inputs.values()))


def test_autograd_function_backward_matches_direct():
    """NonCausalSSDFn (the traced node) recomputes under autograd; its gradients equal the direct path's."""
    inputs = make_inputs(batch=1, length=6, nheads=2, headdim=2, ngroups=1, d_state=3, dtype=torch.float64,
                         requires_grad=True, seed=2)
    args = tuple(inputs.values())
    assert torch.autograd.gradcheck(lambda *a: NonCausalSSDFn.apply(*a, nc_ssd_matmul), args)
    inputs['D'] = None  # optional input: no gradient slot
    out = NonCausalSSDFn.apply(*inputs.values(), nc_ssd_matmul)
    out.sum().backward()
    assert inputs['x'].grad is not None


def _full_map_orders(strategy, height, width):
    """Flatten orders of the whole map a strategy produces: its directions that read every pixel, and for
    strategies whose directions split the map (atrous sub-grids) their concatenation."""
    strategies = [g.strategy for g in strategy.groups] if hasattr(strategy, 'groups') else [strategy]
    full = torch.arange(height * width)
    for s in strategies:
        orders = [o[o < height * width] for o in s.index(height, width).orders]
        for candidate in orders + [torch.cat(orders)]:
            if candidate.numel() == height * width and torch.equal(candidate.sort().values, full):
                yield candidate


@pytest.mark.parametrize('strategy', list_scans())
def test_no_scan_order_every_strategy_gives_the_same_result(strategy):
    """NC-SSD is order-free: reading the tokens in any strategy's flatten order permutes the output the same way,
    so a multi-scan of the non-causal SSD collapses to one global state (why VSSD takes no ``scan=``)."""
    height, width = 5, 6
    inputs = make_inputs(length=height * width, ngroups=2, seed=5)
    ref = nc_ssd(**inputs)
    checked = 0
    for order in _full_map_orders(get_scan(strategy), height, width):
        permuted = {k: (v[:, order] if k in ('x', 'dt', 'B', 'C') else v) for k, v in inputs.items()}
        assert_close(nc_ssd(**permuted), ref[:, order], atol=1e-5, rtol=1e-4)
        checked += 1
    assert checked >= 1


def test_backend_selection(monkeypatch):
    inputs = make_inputs(length=10)
    assert {'naive', 'matmul'} <= set(available_backends())
    calls = []

    def spy(*args, **kwargs):
        calls.append('spy')
        return nc_ssd_naive(*args, **kwargs)

    registry = nc_ssd_module._REGISTRY.copy()  # without the CUDA backends' preference, and thrown away after
    registry.preference.clear()
    monkeypatch.setattr(nc_ssd_module, '_REGISTRY', registry)
    register_backend('spy', spy, device_types=('cpu',), accepts=lambda x, *rest: x.shape[1] > 5)
    nc_ssd(**inputs)
    assert calls == ['spy']
    nc_ssd(**make_inputs(length=4))  # not accepted: falls back to the matmul path
    assert calls == ['spy']
    nc_ssd(**inputs, backend='matmul')
    assert calls == ['spy']
    monkeypatch.setenv(ENV_BACKEND, 'naive')
    nc_ssd(**inputs)
    assert calls == ['spy']
    with pytest.raises(ValueError, match='unknown backend'):
        nc_ssd(**inputs, backend='nope')


@pytest.mark.parametrize('change,match', [
    (dict(x=torch.zeros(2, 10, 4)), 'x must be'),
    (dict(dt=torch.zeros(2, 10, 3)), 'dt must be'),
    (dict(A=torch.zeros(4, 1)), 'A must be'),
    (dict(B=torch.zeros(2, 10, 6)), 'B must be'),
    (dict(C=torch.zeros(2, 10, 1, 5)), "C must have B's shape"),
    (dict(B=torch.zeros(2, 10, 3, 6), C=torch.zeros(2, 10, 3, 6)), 'do not split'),
    (dict(D=torch.zeros(3)), 'D must be'),
])
def test_bad_inputs_raise_clear_errors(change, match):
    inputs = dict(make_inputs(length=10), **change)
    for fn in (nc_ssd, nc_ssd_naive, nc_ssd_matmul):
        with pytest.raises(ValueError, match=match):
            fn(**inputs)


class _OneCall(nn.Module):
    def __init__(self, inputs):
        super().__init__()
        self.inputs = inputs
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, image):
        x = self.inputs['x'] * self.scale  # the image only drives the trace
        return nc_ssd(x, *(self.inputs[k] for k in ('dt', 'A', 'B', 'C', 'D')))


def test_flops_follow_the_official_count():
    """One traced NonCausalSSDFn node, counted as the official VMAMBA2.flops() counts its two matmuls:
    2 * batch * L * ngroups * d_state * headdim."""
    inputs = make_inputs(batch=2, length=12, nheads=4, headdim=5, ngroups=2, d_state=3)
    flops, unsupported = count_flops(_OneCall(inputs), (3, 4, 4), return_unsupported=True)
    assert 'prim::PythonOp.NonCausalSSDFn' not in unsupported
    assert flops == 2 * 2 * 12 * 2 * 3 * 5
    assert nc_ssd_true_macs(2, 12, 4, 5, 2, 3) == 2 * 2 * 12 * 3 * 4 * 5
