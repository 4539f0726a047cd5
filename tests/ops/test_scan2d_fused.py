"""The fused 2D-scan path (``vmamba_zoo.ops.scan2d``) against scan() + selective_scan() + merge().

The fused Triton kernels read the strategy's index maps inside the kernel; they must give the plain composition's
results for every single-map strategy (padded and incomplete ones too: atrous), odd H and W, any N, forward and
the gradients of every input. On a CUDA machine (``pytest -m gpu``) they run compiled in fp32/bf16/fp16; on CPU
the same check runs under Triton's interpreter in a subprocess, at tiny sizes, so CI covers the kernel logic.
"""
import os
import textwrap

import pytest
import torch

from vmamba_zoo.ops.scan2d import selective_scan_2d, selective_scan_2d_naive
from vmamba_zoo.ops.selective_scan import triton_available
from vmamba_zoo.scans import get_scan

STRATEGIES = ['cross', 'zigzag', 'atrous', 'bidirectional', 'unidirectional', 'cross_without_row']


def make_ss2d_inputs(strategy, batch=2, dim=6, height=5, width=7, d_state=1, dt_rank=3, seed=0,
                     channels_last=True):
    g = torch.Generator().manual_seed(seed)
    K = get_scan(strategy).num_directions
    x = torch.randn(batch, height, width, dim, generator=g).permute(0, 3, 1, 2)  # channels-last, as in SS2D
    if not channels_last:
        x = x.contiguous()
    return dict(
        x=x,
        x_proj_weight=torch.randn(K, dt_rank + 2 * d_state, dim, generator=g) * dim ** -0.5,
        dt_projs_weight=torch.randn(K, dim, dt_rank, generator=g) * dt_rank ** -0.5,
        A=-torch.rand(K * dim, d_state, generator=g).mul(2).exp(),
        D=torch.randn(K * dim, generator=g),
        delta_bias=torch.randn(K * dim, generator=g) * 0.5 - 2.0,
    )


def _relative_error(out, ref):
    return ((out.double() - ref.double()).norm() / ref.double().norm().clamp_min(1e-12)).item()


def check_fused_against_plain(strategy, device, dtype=torch.float32, out_dtype=None, **shape):
    inputs = make_ss2d_inputs(strategy, **shape)
    x = inputs['x'].to(dtype)  # the reference sees the same rounded map, in fp32
    ref_inputs = {k: (x.float() if k == 'x' else v).clone().requires_grad_() for k, v in inputs.items()}
    dev_inputs = {k: (x if k == 'x' else v).to(device).detach().requires_grad_() for k, v in inputs.items()}
    if dtype != torch.float32:  # the projections of a low-precision map run under autocast, as in the models
        with torch.autocast(device, dtype=dtype):
            out = selective_scan_2d(strategy=strategy, delta_softplus=True, backend='fused', out_dtype=out_dtype,
                                    **dev_inputs)
    else:
        out = selective_scan_2d(strategy=strategy, delta_softplus=True, backend='fused', out_dtype=out_dtype,
                                **dev_inputs)
    ref = selective_scan_2d_naive(strategy=strategy, delta_softplus=True, scan_backend='naive', **ref_inputs)
    assert out.shape == ref.shape and out.dtype == (out_dtype or dtype)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    err = _relative_error(out.cpu(), ref.detach())
    assert err < tol, (strategy, 'out', err)
    weights = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1))
    names = list(inputs)
    grads = torch.autograd.grad((out.float() * weights.to(device)).sum(), [dev_inputs[k] for k in names])
    ref_grads = torch.autograd.grad((ref * weights).sum(), [ref_inputs[k] for k in names])
    for name, g, r in zip(names, grads, ref_grads):
        err = _relative_error(g.cpu(), r)
        assert err < (1e-4 if dtype == torch.float32 else 5e-2), (strategy, name, err)


def test_plain_path_on_cpu_is_the_composition():
    inputs = make_ss2d_inputs('cross', d_state=4)
    out = selective_scan_2d(strategy='cross', delta_softplus=True, backend='plain', **inputs)
    ref = selective_scan_2d_naive(strategy='cross', delta_softplus=True, **inputs)
    assert torch.equal(out, ref)
    leaves = {k: v.clone().requires_grad_() for k, v in inputs.items()}  # autograd on CPU: the plain path
    torch.testing.assert_close(selective_scan_2d(strategy='cross', delta_softplus=True, **leaves), ref)
    with pytest.raises(ValueError, match='x_proj_weight'):
        selective_scan_2d(strategy='zigzag', delta_softplus=True,
                          **dict(inputs, x_proj_weight=inputs['x_proj_weight'][:2]))
    with pytest.raises(ValueError, match='unknown backend'):
        selective_scan_2d(strategy='cross', backend='nope', **inputs)
    wide = selective_scan_2d(strategy='cross', delta_softplus=True, backend='plain', out_dtype=torch.float64, **inputs)
    assert wide.dtype == torch.float64 and torch.equal(wide, ref.double())
    with pytest.raises(ValueError, match='out_dtype'):
        selective_scan_2d(strategy='cross', backend='plain', out_dtype=torch.int32, **inputs)


@pytest.mark.gpu
@pytest.mark.parametrize('strategy', STRATEGIES)
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize('shape', [dict(batch=2, dim=24, height=13, width=11, d_state=1),
                                   dict(batch=1, dim=40, height=28, width=28, d_state=16, channels_last=False),
                                   dict(batch=3, dim=7, height=9, width=5, d_state=4),
                                   dict(batch=1, dim=16, height=7, width=9, d_state=64),
                                   # whole channel blocks per direction (one order row per block), as VMamba-T
                                   dict(batch=2, dim=64, height=16, width=16, d_state=1)])
def test_fused_matches_plain_on_gpu(strategy, dtype, shape):
    check_fused_against_plain(strategy, 'cuda', dtype, **shape)


@pytest.mark.gpu
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_fused_hands_on_its_fp32_sum_on_gpu(dtype):
    check_fused_against_plain('cross', 'cuda', dtype, out_dtype=torch.float32, batch=2, dim=24, height=13, width=11)


@pytest.mark.gpu
def test_vmamba_tiny_uses_fused_path_on_cuda_and_matches_plain():
    import timm
    import vmamba_zoo  # noqa: F401
    from vmamba_zoo.ops import scan2d
    calls = []
    original = scan2d.selective_scan_2d_naive
    scan2d.selective_scan_2d_naive = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        torch.manual_seed(0)
        # no stochastic depth: two training-mode passes must see the same network
        model = timm.create_model('vmamba_tiny', num_classes=10, drop_path_rate=0.0).cuda()
        x = torch.randn(2, 3, 96, 96, device='cuda')
        fused = model(x)
        assert not calls, 'the plain path ran on CUDA'
        fused.float().square().mean().backward()
        fused_grads = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        os.environ[scan2d.ENV_BACKEND] = 'plain'
        plain = model(x)
        plain.float().square().mean().backward()
        assert calls
    finally:
        os.environ.pop(scan2d.ENV_BACKEND, None)
        scan2d.selective_scan_2d_naive = original
    torch.testing.assert_close(fused, plain, atol=1e-4, rtol=1e-4)
    for g_fused, p in zip(fused_grads, model.parameters()):
        assert _relative_error(g_fused, p.grad) < 1e-3


_INTERPRETER_SCRIPT = textwrap.dedent('''
    import sys
    sys.path.insert(0, {tests!r})
    from ops.test_scan2d_fused import check_fused_against_plain
    for strategy, shape in [('cross', dict(batch=2, dim=5, height=5, width=7, d_state=1)),
                            ('atrous', dict(batch=1, dim=3, height=5, width=7, d_state=2)),
                            ('zigzag', dict(batch=1, dim=4, height=6, width=3, d_state=4, channels_last=False)),
                            ('bidirectional', dict(batch=1, dim=32, height=3, width=23, d_state=1))]:
        check_fused_against_plain(strategy, 'cpu', **shape)
    # the fused table launches the shifted-input backward; the recomputing one through the tuning override
    import os
    import torch
    os.environ['VMAMBA_ZOO_FUSED_BLOCKS'] = '16,16,4,16,4,1,0'
    check_fused_against_plain('cross', 'cpu', batch=1, dim=16, height=5, width=7, d_state=1)
    check_fused_against_plain('cross', 'cpu', out_dtype=torch.float64, batch=1, dim=5, height=3, width=4, d_state=1)
    print('interpreter ok')
''')


@pytest.mark.skipif(not triton_available(), reason='triton is not installed')
def test_fused_kernels_under_interpreter_on_cpu():
    from .test_selective_scan_triton import run_under_interpreter
    run_under_interpreter(_INTERPRETER_SCRIPT)
