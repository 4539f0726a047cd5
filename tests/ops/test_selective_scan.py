"""Every selective-scan path against the sequential reference (naive.py)."""
import importlib

import pytest
import torch

from vmamba_zoo.flops import count_flops
from vmamba_zoo.ops import available_backends, selective_scan
from vmamba_zoo.ops.selective_scan import (ENV_BACKEND, SelectiveScanFn, selective_scan_chunked,
                                           selective_scan_naive)
from vmamba_zoo.ops.selective_scan.chunked import default_chunk_size


def make_inputs(batch=2, groups=4, per_group=3, d_state=1, length=37, grouped=True, dtype=torch.float32,
                with_D=True, with_z=False, with_bias=True, delta_scale=0.5, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    channels = groups * per_group

    def rnd(*shape, scale=1.0, shift=0.0):
        return (torch.randn(*shape, generator=g) * scale + shift).to(dtype).requires_grad_(requires_grad)

    bc_shape = (batch, groups, d_state, length) if grouped else (batch, d_state, length)
    A = (-torch.rand(channels, d_state, generator=g).mul(2).exp()).to(dtype).requires_grad_(requires_grad)
    return dict(
        u=rnd(batch, channels, length), delta=rnd(batch, channels, length, scale=delta_scale),
        A=A, B=rnd(*bc_shape), C=rnd(*bc_shape),
        D=rnd(channels) if with_D else None,
        z=rnd(batch, channels, length) if with_z else None,
        delta_bias=rnd(channels, scale=0.1) if with_bias else None,
    )


def assert_close_to_naive(inputs, out, naive_out, atol, rtol):
    scale = naive_out.float().abs().max().clamp_min(1.0)
    torch.testing.assert_close(out.float(), naive_out.float(), atol=atol * scale, rtol=rtol)


@pytest.mark.parametrize('d_state', [1, 16])
@pytest.mark.parametrize('grouped', [True, False])
@pytest.mark.parametrize('length', [1, 37, 130])
@pytest.mark.parametrize('extras', ['none', 'D', 'D+z+bias+softplus', 'z'])
def test_chunked_matches_naive_fp32(d_state, grouped, length, extras):
    inputs = make_inputs(d_state=d_state, grouped=grouped, length=length, with_D='D' in extras,
                         with_z='z' in extras, with_bias='bias' in extras, seed=length + d_state)
    softplus = 'softplus' in extras
    ref, ref_state = selective_scan_naive(**inputs, delta_softplus=softplus, return_last_state=True)
    for chunk_size in (None, 16, 7):  # chunk sizes that do not divide L exercise the carry between chunks
        out, state = selective_scan_chunked(**inputs, delta_softplus=softplus, return_last_state=True,
                                            chunk_size=chunk_size)
        assert out.shape == ref.shape and out.dtype == ref.dtype
        assert_close_to_naive(inputs, out, ref, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(state, ref_state, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize('seed', range(4))
def test_chunked_matches_naive_random_shapes(seed):
    g = torch.Generator().manual_seed(100 + seed)
    pick = lambda *choices: choices[int(torch.randint(len(choices), (1,), generator=g))]  # noqa: E731
    inputs = make_inputs(batch=pick(1, 3), groups=pick(1, 2, 4), per_group=pick(1, 5, 8), d_state=pick(1, 4, 16),
                         length=int(torch.randint(2, 300, (1,), generator=g)), grouped=pick(True, False),
                         with_z=pick(True, False), seed=seed)
    ref = selective_scan_naive(**inputs, delta_softplus=True)
    assert_close_to_naive(inputs, selective_scan_chunked(**inputs, delta_softplus=True), ref, 1e-5, 1e-4)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_low_precision_inputs_keep_fp32_state(dtype):
    inputs = make_inputs(dtype=dtype, with_z=True, length=70, d_state=4)
    ref = selective_scan_naive(**inputs, delta_softplus=True)
    # the reference on the same low-precision values, upcast: only the final rounding may differ
    ref32 = selective_scan_naive(**{k: (v.float() if v is not None else None) for k, v in inputs.items()},
                                 delta_softplus=True)
    for fn in (selective_scan_chunked, selective_scan):
        out = fn(**inputs, delta_softplus=True)
        assert out.dtype == dtype
        assert_close_to_naive(inputs, out, ref32, atol=1e-2, rtol=1e-2)
        assert_close_to_naive(inputs, out, ref, atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize('softplus', [False, True])  # True: monotone decay, the guard's one-column check
def test_large_decay_is_stable(softplus):
    """dt * |A| of hundreds per chunk overflows exp(-S) in a naive closed form; the guard must keep results
    exact and finite."""
    inputs = make_inputs(length=200, delta_scale=1.0, with_bias=False)
    inputs['delta'] = inputs['delta'].abs() * 60 + 1
    ref = selective_scan_naive(**inputs, delta_softplus=softplus)
    for requires_grad in (False, True):  # the inference and the autograd paths guard separately
        args = {k: v.clone().requires_grad_(requires_grad) for k, v in inputs.items() if v is not None}
        out = selective_scan_chunked(**args, chunk_size=64, delta_softplus=softplus)
        assert torch.isfinite(out).all()
        assert_close_to_naive(inputs, out.detach(), ref, 1e-5, 1e-4)


def test_strided_inputs_as_ss2d_passes_them():
    """SS2D hands B and C over as slices of one projection (non-contiguous views): no copy is required."""
    inputs = make_inputs(length=50, d_state=4)
    projection = torch.randn(2, 4, 3 + 2 * 4, 50)
    inputs['B'], inputs['C'] = projection[:, :, 3:7], projection[:, :, 7:]
    assert not inputs['B'].is_contiguous()
    ref = selective_scan_naive(**inputs, delta_softplus=True)
    assert_close_to_naive(inputs, selective_scan_chunked(**inputs, delta_softplus=True), ref, 1e-5, 1e-4)


@pytest.mark.parametrize('d_state', [1, 3])
def test_chunked_gradients_match_naive(d_state):
    inputs = make_inputs(d_state=d_state, length=45, with_z=True, requires_grad=True)
    grads = []
    for fn in (selective_scan_naive, lambda **kw: selective_scan_chunked(**kw, chunk_size=16)):
        out = fn(**inputs, delta_softplus=True)
        weights = torch.linspace(-1, 1, out.numel()).view_as(out)
        grads.append(torch.autograd.grad((out * weights).sum(), list(inputs.values())))
    for name, g_ref, g in zip(inputs, *grads):
        torch.testing.assert_close(g, g_ref, atol=1e-4, rtol=1e-3, msg=lambda m: f'grad of {name}: {m}')


@pytest.mark.parametrize('grouped', [True, False])
def test_gradcheck_float64(grouped):
    inputs = make_inputs(batch=1, groups=2, per_group=2, d_state=2, length=11, grouped=grouped, with_z=True,
                         dtype=torch.float64, requires_grad=True)
    names = list(inputs)

    def fn(*tensors):
        return selective_scan_chunked(**dict(zip(names, tensors)), delta_softplus=True, chunk_size=4)

    assert torch.autograd.gradcheck(fn, tuple(inputs.values()), eps=1e-6, atol=1e-5)


def test_dispatch_and_backend_selection(monkeypatch):
    inputs = make_inputs(length=20)
    assert {'naive', 'chunked'} <= set(available_backends())
    ref = selective_scan_naive(**inputs)
    for backend in ('naive', 'chunked', None):
        assert_close_to_naive(inputs, selective_scan(**inputs, backend=backend), ref, 1e-5, 1e-4)
    with pytest.raises(ValueError, match="unknown backend 'fast'.*chunked"):
        selective_scan(**inputs, backend='fast')
    monkeypatch.setenv(ENV_BACKEND, 'nope')
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        selective_scan(**inputs)


def test_return_last_state_continues_the_sequence():
    """Scanning [0, L) in one call equals scanning halves while feeding nothing but the first half's state:
    the second half's state must equal the full run's last state (checks the state is the true h_L)."""
    inputs = make_inputs(length=40, with_D=False, with_bias=False)
    _, state = selective_scan(**inputs, return_last_state=True)
    _, ref_state = selective_scan_naive(**inputs, return_last_state=True)
    assert state.shape == (2, 12, 1)
    torch.testing.assert_close(state, ref_state, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize('bad, message', [
    (dict(u=torch.randn(2, 12)), 'u must be'),
    (dict(delta=torch.randn(2, 12, 5)), 'delta must have'),
    (dict(A=torch.randn(11, 1)), 'A must be'),
    (dict(B=torch.randn(2, 4, 2, 37)), 'B must be'),
    (dict(C=torch.randn(2, 4, 1, 36)), 'C must have'),
    (dict(B=torch.randn(2, 5, 1, 37), C=torch.randn(2, 5, 1, 37)), 'do not split into K=5'),
    (dict(D=torch.randn(13)), 'D must be'),
    (dict(z=torch.randn(2, 12, 36)), 'z must have'),
])
@pytest.mark.parametrize('fn', [selective_scan, selective_scan_naive, selective_scan_chunked])
def test_bad_shapes_raise_clear_errors(fn, bad, message):
    inputs = make_inputs()
    inputs.update(bad)
    with pytest.raises(ValueError, match=message):
        fn(**inputs)


def test_trace_shows_one_selective_scan_node_counted_by_flops():
    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.A = torch.nn.Parameter(-torch.ones(12, 1))

        def forward(self, u):
            B = u.new_ones(u.shape[0], 4, 1, u.shape[-1])
            return selective_scan(u, u, self.A, B, B, D=torch.ones(12), delta_softplus=True)

    model = Wrapper()
    u = torch.randn(2, 12, 37)
    graph = torch.jit.trace(model, (u,)).inlined_graph
    assert [n.pyname() for n in graph.nodes() if n.kind() == 'prim::PythonOp'] == ['SelectiveScanFn']
    # 9 * B * L * D * N + B * D * L (the official formula) and nothing else in this module
    assert count_flops(model, (12, 37), batch_size=2) == 9 * 2 * 37 * 12 * 1 + 2 * 12 * 37


def test_selective_scan_fn_backward_matches_direct():
    inputs = make_inputs(length=19, requires_grad=True)
    args = [inputs[k] for k in ('u', 'delta', 'A', 'B', 'C', 'D', 'z', 'delta_bias')]
    out = SelectiveScanFn.apply(*args, True, selective_scan_chunked)
    grads = torch.autograd.grad(out.sum(), [a for a in args if a is not None])
    ref = torch.autograd.grad(selective_scan_naive(**inputs, delta_softplus=True).sum(),
                              [a for a in args if a is not None])
    for g, r in zip(grads, ref):
        torch.testing.assert_close(g, r, atol=1e-4, rtol=1e-3)


def test_default_chunk_size_is_a_clamped_power_of_two():
    assert default_chunk_size(8 * 768, 3136) == 64
    assert default_chunk_size(1, 10_000) == 512
    assert default_chunk_size(10 ** 7, 3136) == 16
    assert default_chunk_size(4, 5) == 5


def test_cuda_automatic_rule_is_single_state_fp32_or_bf16(monkeypatch):
    """The dispatch picks 'cuda' for CUDA inputs only where it was measured faster (d_state 1, fp32 or bf16) and only
    when the extension is available; fp16, d_state > 1 and CPU inputs go elsewhere. Checked on stand-ins for CUDA
    tensors (the predicates read .is_cuda, .dtype and A's shape), with the extension's availability faked."""
    from types import SimpleNamespace

    scan_module = importlib.import_module('vmamba_zoo.ops.selective_scan')
    cuda_module = importlib.import_module('vmamba_zoo.ops.selective_scan.cuda')
    registry = scan_module._REGISTRY
    available = {'yes': True}
    monkeypatch.setattr(cuda_module, 'cuda_accepts', lambda *args: available['yes'])
    monkeypatch.setattr(scan_module, 'triton_available', lambda: True)

    def chosen(dtype, d_state):
        u = SimpleNamespace(is_cuda=True, dtype=dtype)
        return registry.preferred('cuda', u, u, torch.empty(8, d_state), None, None)

    assert chosen(torch.float32, 1) is registry.backends['cuda']
    assert chosen(torch.bfloat16, 1) is registry.backends['cuda']
    assert chosen(torch.float16, 1) is registry.backends['triton']
    assert chosen(torch.float32, 4) is registry.backends['triton']
    assert chosen(torch.bfloat16, 4) is registry.backends['triton']
    cpu_u = SimpleNamespace(is_cuda=False, dtype=torch.float32)
    assert not scan_module._cuda_auto_accepts(cpu_u, cpu_u, torch.empty(8, 1), None, None)
    available['yes'] = False  # no toolchain / failed build: Triton runs
    assert chosen(torch.float32, 1) is registry.backends['triton']
