"""The C++ CPU kernels (``kernels/cpu``): selective scan (``cpp`` backend) and fused 2D scan (``fused_cpu``)
against the sequential reference, and the dispatch rules around them (inference only, autograd falls back).

The kernels are built on first use. Without a compiler the tests skip, unless ``VMAMBA_ZOO_REQUIRE_CPU_KERNEL=1``
(``make test`` and CI set it): then a broken build fails here instead of silently running the PyTorch paths.
"""
import os

import pytest
import torch

from vmamba_zoo.ops.scan2d import ENV_BACKEND as ENV_SCAN2D
from vmamba_zoo.ops.scan2d import selective_scan_2d, selective_scan_2d_naive
from vmamba_zoo.ops.selective_scan import selective_scan, selective_scan_chunked, selective_scan_naive
from vmamba_zoo.ops.selective_scan import cpu as cpu_kernels
from vmamba_zoo.ops.selective_scan.cpu import ENV_CPU_KERNEL, ENV_REQUIRE_CPU_KERNEL, selective_scan_cpu

from .test_scan2d_fused import STRATEGIES, _relative_error, make_ss2d_inputs
from .test_selective_scan import assert_close_to_naive, make_inputs


def _kernel_available() -> bool:
    if os.environ.get(ENV_REQUIRE_CPU_KERNEL) == '1':
        cpu_kernels.load_cpu_extension()  # raises with the compiler's message
        return True
    return os.environ.get(ENV_CPU_KERNEL, '1') != '0' and cpu_kernels.cpu_backend_available()


pytestmark = pytest.mark.skipif(not _kernel_available(), reason='the C++ CPU kernels could not be built here')


@pytest.mark.parametrize('d_state', [1, 4, 16])
@pytest.mark.parametrize('grouped', [True, False])
@pytest.mark.parametrize('length', [1, 63, 64, 65, 200])  # around the kernel's 64-step tile
@pytest.mark.parametrize('extras', ['none', 'D', 'D+z+bias+softplus', 'z+softplus'])
def test_cpp_matches_naive(d_state, grouped, length, extras):
    # 4 groups of 11 channels: blocks of 8 channels leave a partial block in every group
    inputs = make_inputs(batch=2, groups=4, per_group=11, d_state=d_state, grouped=grouped, length=length,
                         with_D='D' in extras, with_z='z' in extras, with_bias='bias' in extras, seed=length)
    softplus = 'softplus' in extras
    if not softplus:  # dt >= 0 as in every Mamba model: states stay bounded over 200 steps
        inputs['delta'] = inputs['delta'].abs()
    ref, ref_state = selective_scan_naive(**inputs, delta_softplus=softplus, return_last_state=True)
    out, state = selective_scan_cpu(**inputs, delta_softplus=softplus, return_last_state=True)
    assert out.shape == ref.shape and out.dtype == ref.dtype
    assert_close_to_naive(inputs, out, ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(state, ref_state, atol=1e-5, rtol=1e-4)


def test_cpp_extreme_inputs_match_naive():
    """Large and tiny softplus arguments, strong decay (dt * A far below the exp clamp), silu of large |z|."""
    inputs = make_inputs(batch=1, groups=2, per_group=16, d_state=4, length=150, with_z=True, delta_scale=30.0,
                         seed=3)
    inputs['z'] = inputs['z'] * 40
    inputs['A'] = inputs['A'] * 50
    ref = selective_scan_naive(**inputs, delta_softplus=True)
    assert_close_to_naive(inputs, selective_scan_cpu(**inputs, delta_softplus=True), ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_cpp_low_precision_inputs(dtype):
    inputs = make_inputs(batch=2, groups=2, per_group=9, d_state=4, length=77, with_z=True, dtype=dtype)
    ref = selective_scan_naive(**inputs, delta_softplus=True)
    out = selective_scan_cpu(**inputs, delta_softplus=True)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), ref.float(), atol=2e-2, rtol=2e-2)


def test_cpp_strided_inputs_as_ss2d_passes_them():
    """B and C as views of the x_proj output (channel stride > N * L), u as a view: the kernel reads strides."""
    batch, K, D, N, L, R = 2, 4, 10, 3, 45, 2
    g = torch.Generator().manual_seed(5)
    x_dbl = torch.randn(batch, K, R + 2 * N, L, generator=g)
    _, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=2)
    u = torch.randn(batch, K * D + 5, L, generator=g)[:, 5:]
    delta = torch.randn(batch, K * D, L, generator=g)
    A = -torch.rand(K * D, N, generator=g).exp()
    ref = selective_scan_naive(u, delta, A, Bs, Cs, delta_softplus=True)
    torch.testing.assert_close(selective_scan_cpu(u, delta, A, Bs, Cs, delta_softplus=True), ref,
                               atol=1e-5, rtol=1e-4)


def test_cpp_return_states_matches_naive():
    inputs = make_inputs(batch=2, groups=2, per_group=9, d_state=4, length=70, with_D=False)
    inputs['C'] = None
    ref, ref_last = selective_scan_naive(**inputs, delta_softplus=True, return_states=True, return_last_state=True)
    states, last = selective_scan_cpu(**inputs, delta_softplus=True, return_states=True, return_last_state=True)
    assert states.shape == ref.shape
    torch.testing.assert_close(states, ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(last, ref_last, atol=1e-5, rtol=1e-4)


def test_dispatch_prefers_cpp_for_inference_and_chunked_under_autograd(monkeypatch):
    calls = []
    real_ext = cpu_kernels.load_cpu_extension()

    class CountingExtension:
        def __getattr__(self, name):
            calls.append(name)
            return getattr(real_ext, name)

    monkeypatch.setattr(cpu_kernels, 'load_cpu_extension', lambda: CountingExtension())
    inputs = make_inputs(batch=2, groups=4, per_group=5, d_state=2, length=40)
    with torch.no_grad():
        ref = selective_scan_naive(**inputs, delta_softplus=True)
        out = selective_scan(**inputs, delta_softplus=True)
    assert calls == ['selective_scan_fwd'], 'inference on CPU must run the C++ kernel'
    assert_close_to_naive(inputs, out, ref, 1e-5, 1e-4)
    # recorded by autograd: the kernel has no backward, so chunked runs and the gradients are exact
    leaves = {k: (v.clone().requires_grad_() if v is not None else None) for k, v in inputs.items()}
    out = selective_scan(**leaves, delta_softplus=True, backend='cpp')
    assert calls == ['selective_scan_fwd']
    grads = torch.autograd.grad(out.square().sum(), [leaves['u'], leaves['A'], leaves['D']])
    ref_leaves = {k: (v.clone().requires_grad_() if v is not None else None) for k, v in inputs.items()}
    ref_out = selective_scan_chunked(**ref_leaves, delta_softplus=True)
    ref_grads = torch.autograd.grad(ref_out.square().sum(), [ref_leaves['u'], ref_leaves['A'], ref_leaves['D']])
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b)


def test_switch_off_with_environment_variable(monkeypatch):
    monkeypatch.setenv(ENV_CPU_KERNEL, '0')
    cpu_kernels.cpu_backend_available.cache_clear()
    try:
        assert not cpu_kernels.cpu_backend_available()
        inputs = make_inputs(d_state=1, length=20)
        with torch.no_grad():
            assert not cpu_kernels.cpu_accepts(inputs['u'], inputs['delta'], inputs['A'], inputs['B'], inputs['C'])
    finally:
        monkeypatch.delenv(ENV_CPU_KERNEL)
        cpu_kernels.cpu_backend_available.cache_clear()
    assert cpu_kernels.cpu_backend_available()


@pytest.mark.parametrize('strategy', STRATEGIES)
@pytest.mark.parametrize('shape', [dict(batch=2, dim=24, height=13, width=11, d_state=1),
                                   dict(batch=1, dim=40, height=28, width=28, d_state=16, channels_last=False),
                                   dict(batch=3, dim=7, height=9, width=5, d_state=4),
                                   dict(batch=1, dim=33, height=1, width=17, d_state=2)])
def test_fused_cpu_matches_naive(strategy, shape):
    inputs = make_ss2d_inputs(strategy, **shape)
    with torch.no_grad():
        out = selective_scan_2d(strategy=strategy, delta_softplus=True, backend='fused_cpu', **inputs)
        ref = selective_scan_2d_naive(strategy=strategy, delta_softplus=True, scan_backend='naive', **inputs)
    assert out.shape == ref.shape and out.dtype == ref.dtype
    assert _relative_error(out, ref) < 1e-5, strategy


def test_fused_cpu_bf16_map():
    inputs = make_ss2d_inputs('cross', batch=2, dim=20, height=7, width=9, d_state=1)
    inputs['x'] = inputs['x'].bfloat16()
    with torch.no_grad():
        out = selective_scan_2d(strategy='cross', delta_softplus=True, backend='fused_cpu', **inputs)
        ref = selective_scan_2d_naive(strategy='cross', delta_softplus=True, scan_backend='naive',
                                      **dict(inputs, x=inputs['x'].float()))
    assert out.dtype == torch.bfloat16
    assert _relative_error(out.float(), ref) < 2e-2


def test_fused_cpu_runs_for_inference_and_plain_under_autograd(monkeypatch):
    from vmamba_zoo.ops import scan2d
    calls = []
    original = scan2d.selective_scan_2d_naive
    monkeypatch.setattr(scan2d, 'selective_scan_2d_naive', lambda *a, **k: calls.append(1) or original(*a, **k))
    inputs = make_ss2d_inputs('cross', batch=1, dim=8, height=6, width=5, d_state=2)
    with torch.inference_mode():
        inferred = selective_scan_2d(strategy='cross', delta_softplus=True, **inputs)
    assert not calls, 'inference on CPU must take the fused C++ path'
    leaves = {k: v.clone().requires_grad_() for k, v in inputs.items()}
    monkeypatch.setenv(ENV_SCAN2D, 'fused_cpu')  # pinned, but autograd records the call: plain runs
    trained = selective_scan_2d(strategy='cross', delta_softplus=True, **leaves)
    assert calls
    trained.sum().backward()
    assert all(v.grad is not None for v in leaves.values())
    assert _relative_error(inferred, trained.detach()) < 1e-5


def test_vmamba_tiny_cpu_inference_matches_plain_path(monkeypatch):
    import timm
    import vmamba_zoo  # noqa: F401
    torch.manual_seed(0)
    model = timm.create_model('vmamba_tiny', num_classes=10).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.inference_mode():
        fused = model(x)
        monkeypatch.setenv(ENV_SCAN2D, 'plain')
        monkeypatch.setenv('VMAMBA_ZOO_SCAN_BACKEND', 'naive')
        ref = model(x)
    torch.testing.assert_close(fused, ref, atol=1e-4, rtol=1e-4)
