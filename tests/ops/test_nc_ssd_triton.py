"""The Triton non-causal SSD (``vmamba_zoo/ops/nc_ssd/triton.py``) against the quadratic reference (naive.py).

On a CUDA machine (``pytest -m gpu``) the compiled kernels run on random shapes (odd L, headdim and d_state,
one and two groups, with and without D, VSSD's strided channel-first views) in fp32/bf16/fp16, output and the
gradient of every input, plus the CUDA dispatch and a VSSD model forward+backward against the CPU. Without a GPU
the same checks run at tiny sizes under Triton's CPU interpreter in a subprocess, so CI exercises the kernel
logic.
"""
import importlib
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from vmamba_zoo.ops import nc_ssd
from vmamba_zoo.ops.nc_ssd import nc_ssd_naive, triton_available

from .test_nc_ssd import make_inputs
from .test_selective_scan_triton import run_under_interpreter

pytestmark = pytest.mark.skipif(not triton_available(), reason='triton is not installed')

nc_ssd_module = importlib.import_module('vmamba_zoo.ops.nc_ssd')

# (batch, L, nheads, headdim, ngroups, d_state, with_D): odd sizes on purpose
CASES = [
    (2, 37, 4, 5, 2, 6, True),
    (3, 1, 2, 3, 1, 3, False),  # one token
    (1, 199, 2, 64, 1, 64, True),  # VSSD-T's head shape
    (2, 199, 6, 33, 2, 48, False),  # VSSD-Micro's d_state, odd headdim
    (1, 784, 4, 64, 1, 64, True),  # few programs: the state reduction splits L (fp32 partial states)
    (2, 77, 2, 130, 1, 100, True),  # headdim and d_state over one 64-wide tile: loops over both
    (1, 50, 2, 16, 2, 256, True),  # the largest d_state the backend takes
]
# tolerances (atol as a fraction of the largest reference magnitude, rtol): fp32 tight; 16-bit inputs feed
# tl.dot in their own dtype, so the fp32 intermediates (w*x, state, dstate) are rounded to it (see triton.py)
_TOL = {torch.float32: (2e-5, 1e-4), torch.float16: (3e-3, 3e-3), torch.bfloat16: (2e-2, 2e-2)}


def _strided(t):
    """Same values with unit stride along L: the channel-first views VSSD's mixer hands in (conv output
    permuted to NHWC, split, reshaped)."""
    return t.transpose(1, -1).contiguous().transpose(1, -1)


def _assert_close(out, ref, dtype, name):
    atol, rtol = _TOL[dtype]
    scale = ref.abs().max().clamp_min(1e-6).item()
    torch.testing.assert_close(out.double().cpu(), ref, atol=atol * scale, rtol=rtol, msg=lambda m: f'{name}: {m}')


def _check_against_naive(case, dtype, device, layout='contiguous'):
    batch, length, nheads, headdim, ngroups, d_state, with_D = case
    inputs = make_inputs(batch=batch, length=length, nheads=nheads, headdim=headdim, ngroups=ngroups,
                         d_state=d_state, with_D=with_D, seed=length + headdim)
    # bf16: x, B, C in bf16, dt / A / D fp32 (VSSD under autocast: softplus runs in fp32, parameters stay fp32);
    # fp16: everything fp16 (a model in .half()); the reference sees the same rounded values in float64
    low = ('x', 'B', 'C') if dtype == torch.bfloat16 else ('x', 'dt', 'A', 'B', 'C', 'D')
    inputs = {k: None if v is None else (v.to(dtype) if k in low else v) for k, v in inputs.items()}
    leaves = {k: None if v is None else v.to(device).requires_grad_() for k, v in inputs.items()}
    ref_leaves = {k: None if v is None else v.double().requires_grad_() for k, v in inputs.items()}
    args = {k: (_strided(v) if layout == 'vssd' and k in ('x', 'dt', 'B', 'C') else v) for k, v in leaves.items()}
    out = nc_ssd(**args, backend='triton')
    ref = nc_ssd_naive(**ref_leaves)
    assert out.dtype == dtype and out.shape == ref.shape and out.device.type == torch.device(device).type
    _assert_close(out, ref, dtype, 'y')
    weights = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    names = [k for k, v in inputs.items() if v is not None]
    grads = torch.autograd.grad((out * weights.to(device)).sum(), [leaves[k] for k in names])
    ref_grads = torch.autograd.grad((ref * weights.double()).sum(), [ref_leaves[k] for k in names])
    for name, g, r in zip(names, grads, ref_grads):
        assert g.dtype == leaves[name].dtype and g.shape == leaves[name].shape, name
        _assert_close(g, r, dtype, f'd{name}')


@pytest.mark.gpu
@pytest.mark.parametrize('case', CASES)
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16, torch.float16])
def test_triton_matches_naive_on_gpu(case, dtype):
    _check_against_naive(case, dtype, 'cuda')


@pytest.mark.gpu
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_triton_reads_vssd_strided_views_on_gpu(dtype):
    _check_against_naive((2, 196, 4, 32, 1, 64, True), dtype, 'cuda', layout='vssd')
    _check_against_naive((2, 37, 4, 5, 2, 6, False), dtype, 'cuda', layout='vssd')


@pytest.mark.gpu
def test_triton_fp32_modes_on_gpu(monkeypatch):
    """Every fp32 tl.dot precision the backend offers meets the fp32 tolerance except plain tf32, which is the
    user's explicit accuracy trade (as torch.backends.cuda.matmul.allow_tf32 is for cuBLAS)."""
    from vmamba_zoo.ops.nc_ssd.triton import ENV_FP32_PRECISION
    for precision in ('ieee', 'tf32x3'):
        monkeypatch.setenv(ENV_FP32_PRECISION, precision)
        _check_against_naive(CASES[2], torch.float32, 'cuda')


@pytest.mark.gpu
def test_cuda_dispatch_picks_triton():
    from vmamba_zoo.ops.nc_ssd import _resolve_backend, _triton_backend, nc_ssd_matmul
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        inputs = {k: v.cuda() for k, v in make_inputs(length=20, dtype=dtype).items()}
        assert _resolve_backend(None, *(inputs[k] for k in ('x', 'dt', 'A', 'B', 'C'))) is _triton_backend
    inputs = {k: v.cuda() for k, v in make_inputs(length=20, dtype=torch.float64).items()}
    assert _resolve_backend(None, *(inputs[k] for k in ('x', 'dt', 'A', 'B', 'C'))) is nc_ssd_matmul
    inputs = {k: v.cuda() for k, v in make_inputs(length=20, d_state=300).items()}
    assert _resolve_backend(None, *(inputs[k] for k in ('x', 'dt', 'A', 'B', 'C'))) is nc_ssd_matmul
    inputs = {k: v.cuda() for k, v in make_inputs(length=50).items()}
    torch.testing.assert_close(nc_ssd(**inputs).cpu(), nc_ssd_naive(**{k: v.cpu() for k, v in inputs.items()}),
                               atol=1e-4, rtol=1e-4)


@pytest.mark.gpu
def test_vssd_forward_backward_on_cuda_matches_cpu(monkeypatch):
    """The smallest registered VSSD (vssd_micro) on CUDA, NC-SSD through the Triton backend, against the same
    weights on CPU (matmul backend): logits and every parameter gradient, fp32; then one bf16 autocast step."""
    import timm
    import vmamba_zoo  # noqa: F401  (registers the models)
    calls = []
    triton_fn = nc_ssd_module._BACKENDS['triton']

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return triton_fn(*args, **kwargs)
    monkeypatch.setitem(nc_ssd_module._BACKENDS, 'triton', counting)
    # TF32 convolutions (PyTorch's cuDNN default) would dominate the difference; keep the GPU side fp32
    monkeypatch.setattr(torch.backends.cudnn, 'allow_tf32', False)
    monkeypatch.setattr(torch.backends.cuda.matmul, 'allow_tf32', False)
    torch.manual_seed(0)
    model = timm.create_model('vssd_micro', num_classes=10, drop_path_rate=0.0)
    image = torch.randn(2, 3, 64, 64)
    grads = {}
    for device in ('cpu', 'cuda'):
        model.zero_grad(set_to_none=True)
        model.to(device)
        logits = model(image.to(device))
        logits.float().logsumexp(-1).mean().backward()
        grads[device] = (logits.detach().cpu(), {n: p.grad.detach().cpu() for n, p in model.named_parameters()
                                                  if p.grad is not None})
    assert calls, 'the CUDA forward did not run the triton backend'
    (cpu_logits, cpu_grads), (gpu_logits, gpu_grads) = grads['cpu'], grads['cuda']
    torch.testing.assert_close(gpu_logits, cpu_logits, atol=1e-3, rtol=1e-3)
    assert cpu_grads.keys() == gpu_grads.keys()
    for name, ref in cpu_grads.items():
        # floor 1e-4: a conv bias in front of a train-mode BatchNorm (the downsamples' project conv) has a
        # gradient that is zero in exact arithmetic (~6e-8 here, H200 runs 9 and 11), pure rounding noise on
        # either device; 1e-5 was too low a floor (6.7e-3 relative in run 11)
        rel = (gpu_grads[name] - ref).norm() / ref.norm().clamp_min(1e-4)
        assert rel < 1e-3, f'{name}: relative gradient error {rel:.2e}'
    model.zero_grad(set_to_none=True)
    with torch.autocast('cuda', dtype=torch.bfloat16):
        loss = model(image.cuda()).float().logsumexp(-1).mean()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_triton_rejects_float64():
    from vmamba_zoo.ops.nc_ssd.triton import nc_ssd_triton
    with pytest.raises(TypeError, match='float32, float16 or bfloat16'):
        nc_ssd_triton(**make_inputs(length=4, dtype=torch.float64))


def test_cpu_dispatch_never_imports_triton_kernels():
    """CPU calls keep the matmul path and do not pay for importing the Triton module (imported lazily)."""
    script = textwrap.dedent('''
        import sys, torch
        from vmamba_zoo.ops.nc_ssd import _resolve_backend, nc_ssd, nc_ssd_matmul
        x, dt, B = torch.randn(1, 5, 2, 3), torch.rand(1, 5, 2), torch.randn(1, 5, 1, 4)
        assert _resolve_backend(None, x, dt, torch.ones(2), B, B) is nc_ssd_matmul
        nc_ssd(x, dt, torch.ones(2), B, B)
        assert 'vmamba_zoo.ops.nc_ssd.triton' not in sys.modules
        print('lazy ok')
    ''')
    env = {k: v for k, v in os.environ.items() if k != 'VMAMBA_ZOO_NC_SSD_BACKEND'}
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0 and 'lazy ok' in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]


_INTERPRETER_SCRIPT = textwrap.dedent('''
    import os, sys, torch
    sys.path.insert(0, {tests!r})
    from ops.test_nc_ssd_triton import _check_against_naive
    f32, f16, bf16 = torch.float32, torch.float16, torch.bfloat16
    for case, dtype, layout in [
            ((2, 37, 4, 5, 2, 6, True), f32, 'contiguous'),   # two groups, odd L / headdim / d_state
            ((3, 1, 2, 3, 1, 3, False), f32, 'contiguous'),   # one token, no D
            ((1, 30, 2, 70, 1, 70, True), f32, 'contiguous'),  # headdim and d_state over one 64-wide tile
            ((2, 21, 4, 5, 2, 6, False), f32, 'vssd'),        # VSSD's strided channel-first views
            ((1, 37, 2, 5, 1, 6, True), f16, 'vssd'),         # 16-bit tl.dot operands
            ((1, 37, 2, 5, 2, 6, True), bf16, 'contiguous')]:  # bf16 inputs (fp32 dots in the interpreter)
        _check_against_naive(case, dtype, 'cpu', layout)
    # small blocks: the state reduction splits L over programs (fp32 partial states), several backward blocks
    os.environ['VMAMBA_ZOO_NC_SSD_BLOCKS'] = '16,16,16,4'
    _check_against_naive((1, 150, 1, 5, 1, 6, True), f32, 'cpu')
    print('interpreter ok')
''')


def test_triton_kernels_under_interpreter_on_cpu():
    run_under_interpreter(_INTERPRETER_SCRIPT)
