"""The Triton state-fusion backend (``vmamba_zoo/ops/state_fusion/triton.py``) against the sequential reference.

On a CUDA machine (``pytest -m gpu``) the compiled kernels run on odd shapes, d_state 1/4/16, K 1/2 with random
scan orders, fp32/bf16/fp16: forward output and the gradient of every input, the CUDA dispatch, and a
Spatial-Mamba-T forward + backward against the CPU. Without a GPU the same checks run at tiny sizes under
Triton's CPU interpreter in a subprocess, so CI exercises the kernel maths.
"""
import subprocess
import sys
import textwrap

import pytest
import torch

from vmamba_zoo.ops.selective_scan import triton_available
from vmamba_zoo.ops.state_fusion import ENV_BACKEND, available_backends, state_fusion_scan, state_fusion_scan_naive

from .test_selective_scan_triton import run_under_interpreter
from .test_state_fusion import make_inputs, random_order

pytestmark = pytest.mark.skipif(not triton_available(), reason='triton is not installed')

_SEQUENCES = ('u', 'delta', 'B', 'C')  # the activations; the rest are parameters (fp32 in the model)
_NAMES = ('u', 'delta', 'A', 'B', 'C', 'weight', 'D', 'delta_bias')


def _relative_error(out, ref):
    # absolute floor 1e-3: a gradient that is zero in exact arithmetic (dA at L = 1: no previous state) comes out
    # of fp32 cancellation as ~1e-8 noise (H200, runs 9 and 11: 9.8e-3 relative to a 1e-6 floor), which a
    # relative measure must not divide by ~0; real gradients here have norms of order 1 and more
    return ((out.double() - ref.double()).norm() / ref.double().norm().clamp_min(1e-3)).item()


def check_against_naive(case, dtype=torch.float32, device='cuda', all_low=False, seed=0):
    """Forward and every input's gradient of ``backend='triton'`` on ``device`` against ``naive`` (fp32, CPU) on
    the same (rounded) values. ``case``: make_inputs' arguments plus ``order`` (random scan order per direction)
    and ``dilations``; ``dtype`` is given to the sequences u, delta, B, C (as under autocast), or to every input
    with ``all_low``."""
    case = dict(case)
    order, dilations = case.pop('order', False), case.pop('dilations', None)
    inp = make_inputs(seed=seed, **case)
    size = inp.pop('size')
    groups = inp['B'].shape[1] if inp['B'].dim() == 4 else 1
    length = size[0] * size[1]
    extra = dict(delta_softplus=True, order=random_order(groups, length, seed) if order else None)
    if dilations is not None:
        extra['dilations'] = dilations
    low = {k: None if v is None else v.to(dtype) if all_low or k in _SEQUENCES else v for k, v in inp.items()}
    ref_in = {k: None if v is None else v.float().requires_grad_() for k, v in low.items()}
    dev_in = {k: None if v is None else v.to(device).requires_grad_() for k, v in low.items()}
    dev_extra = dict(extra, order=None if extra['order'] is None else extra['order'].to(device))
    out = state_fusion_scan(**dev_in, size=size, **dev_extra, backend='triton')
    ref = state_fusion_scan_naive(**ref_in, size=size, **extra)
    assert out.dtype == dtype and out.shape == ref.shape
    scale = ref.abs().max().clamp_min(1.0).item()
    if dtype == torch.float32:
        assert _relative_error(out.cpu(), ref) < 1e-5
        torch.testing.assert_close(out.cpu(), ref, atol=1e-5 * scale, rtol=1e-4)
    else:  # one rounding of the output to 8 (bf16) or 11 (fp16) bits
        assert _relative_error(out.cpu(), ref) < 1e-2
        torch.testing.assert_close(out.cpu().float(), ref, atol=2e-2 * scale, rtol=2e-2)

    probe = torch.randn(ref.shape, generator=torch.Generator().manual_seed(seed + 1))
    names = [k for k in _NAMES if low[k] is not None]
    grads = torch.autograd.grad((out.float() * probe.to(device)).sum(), [dev_in[k] for k in names])
    ref_grads = torch.autograd.grad((ref * probe).sum(), [ref_in[k] for k in names])
    for name, g, r in zip(names, grads, ref_grads):
        assert g.dtype == dev_in[name].dtype and g.shape == r.shape, name
        g, gscale = g.cpu().float(), r.abs().max().clamp_min(1e-3).item()  # floor: see _relative_error
        err = _relative_error(g, r)
        if dtype == torch.float32:
            assert err < 1e-4, (name, err)
            torch.testing.assert_close(g, r, atol=1e-4 * gscale, rtol=1e-3, msg=lambda m: f'{name}: {m}')
        else:  # the output's gradient arrives rounded to dtype, and the gradient is rounded once more
            assert err < 3e-2, (name, err)
            torch.testing.assert_close(g, r, atol=5e-2 * gscale, rtol=5e-2, msg=lambda m: f'{name}: {m}')


# odd H/W on purpose; (7, 9) / (13, 5) / (1, 17) / (1, 1) and a stage-1-long row-major scan (56 x 56)
GPU_CASES = [
    dict(batch=2, per_group=24, d_state=1, size=(7, 9)),                                    # Spatial-Mamba: N=1, K=1
    dict(batch=3, per_group=5, d_state=4, size=(13, 5), with_D=False),
    dict(batch=1, groups=2, per_group=6, size=(1, 17), grouped=True, order=True),
    dict(batch=2, groups=2, per_group=16, d_state=4, size=(9, 13), grouped=True, order=True, with_bias=False),
    dict(batch=2, per_group=64, size=(28, 28), with_D=False, with_bias=False),            # 13 chunks
    dict(batch=1, groups=2, per_group=3, d_state=16, size=(11, 7), grouped=True, order=True),  # atomic dB
    dict(batch=2, per_group=8, size=(56, 56)),                                              # L = 3136
    dict(batch=2, per_group=4, size=(1, 1)),
    dict(batch=2, per_group=6, size=(6, 5), kernel=5, n_dil=2, dilations=(2, 1)),
]


@pytest.fixture
def exact_fp32():
    """cuDNN may run fp32 convolutions in TF32 (``torch.backends.cudnn.allow_tf32`` defaults to True): ~1e-3
    relative error in the fusion, which is not the kernels'. Off for the comparisons, restored after."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.gpu
@pytest.mark.parametrize('case', GPU_CASES)
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16, torch.float16])
def test_triton_matches_naive_on_gpu(case, dtype, exact_fp32):
    check_against_naive(case, dtype, 'cuda')


@pytest.mark.gpu
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_triton_all_inputs_low_precision_on_gpu(dtype, exact_fp32):
    """A, weight, D and delta_bias in dtype too: each gradient comes back in its input's dtype."""
    check_against_naive(dict(batch=2, groups=2, per_group=8, d_state=4, size=(5, 7), grouped=True, order=True),
                        dtype, 'cuda', all_low=True)


@pytest.mark.gpu
@pytest.mark.parametrize('seed', range(4))
def test_triton_matches_naive_random_shapes_on_gpu(seed, exact_fp32):
    g = torch.Generator().manual_seed(100 + seed)
    pick = lambda *choices: choices[int(torch.randint(len(choices), (1,), generator=g))]  # noqa: E731
    groups = pick(1, 2)
    size = (int(torch.randint(1, 21, (1,), generator=g)), int(torch.randint(1, 21, (1,), generator=g)))
    case = dict(batch=pick(1, 3), groups=groups, per_group=pick(1, 5, 16, 40), d_state=pick(1, 4), size=size,
                grouped=groups > 1 or pick(True, False), order=pick(True, False),
                with_D=pick(True, False), with_bias=pick(True, False))
    check_against_naive(case, pick(torch.float32, torch.bfloat16, torch.float16), 'cuda', seed=seed)


@pytest.mark.gpu
def test_cuda_dispatch_picks_triton():
    from vmamba_zoo.ops.state_fusion import _pick, _triton_backend, state_fusion_scan_chunked
    inp = make_inputs(per_group=8, size=(6, 7))
    cuda = {k: v.cuda() if torch.is_tensor(v) else v for k, v in inp.items()}
    assert _pick(None, cuda['u'], cuda['A'], cuda['weight']) is _triton_backend
    # float64 (gradcheck) keeps the float64 'chunked' path; CPU tensors never go to the GPU kernel
    as64 = {k: v.double() if torch.is_tensor(v) else v for k, v in cuda.items()}
    assert _pick(None, as64['u'], as64['A'], as64['weight']) is state_fusion_scan_chunked
    assert _pick(None, inp['u'], inp['A'], inp['weight']) is not _triton_backend
    out = state_fusion_scan(**cuda, delta_softplus=True)
    torch.testing.assert_close(out.cpu(), state_fusion_scan_naive(**inp, delta_softplus=True), atol=1e-4,
                               rtol=1e-4)


def _model_step(model, x):
    out = model(x)
    loss = out.float().logsumexp(-1).mean()
    loss.backward()
    return out.detach().float().cpu(), {n: p.grad.detach().float().cpu() for n, p in model.named_parameters()
                                        if p.grad is not None}


@pytest.mark.gpu
def test_spatialmamba_tiny_forward_backward_on_gpu_matches_cpu(monkeypatch, exact_fp32):
    import timm
    import vmamba_zoo  # noqa: F401  (registers the models)
    torch.manual_seed(0)
    model = timm.create_model('spatialmamba_tiny', num_classes=10).eval()  # eval: no drop-path randomness
    x = torch.randn(2, 3, 64, 64)
    cpu_out, cpu_grads = _model_step(model, x)
    model.zero_grad()
    monkeypatch.setenv(ENV_BACKEND, 'triton')  # every state-fusion call of the CUDA model runs the kernels
    model = model.cuda()
    gpu_out, gpu_grads = _model_step(model, x.cuda())
    torch.testing.assert_close(gpu_out, cpu_out, atol=2e-3, rtol=2e-3)
    assert gpu_grads.keys() == cpu_grads.keys()
    flat = lambda grads: torch.cat([g.reshape(-1) for g in grads.values()])  # noqa: E731
    assert _relative_error(flat(gpu_grads), flat(cpu_grads)) < 1e-3
    # the parameters the state scan differentiates, one by one
    for name, ref in cpu_grads.items():
        if any(key in name for key in ('A_logs', 'Ds', 'dt_projs', 'x_proj', 'fusion_')):
            assert _relative_error(gpu_grads[name], ref) < 1e-2, name
    # a bf16 autocast training step on the kernels stays finite
    model.train()
    model.zero_grad()
    with torch.autocast('cuda', dtype=torch.bfloat16):
        loss = model(x.cuda()).float().logsumexp(-1).mean()
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters()
                                        if p.grad is not None)


# ---------------------------------------------------------------------------------------------------------------
# CPU: registration, lazy import, and the kernels under Triton's interpreter
# ---------------------------------------------------------------------------------------------------------------
def test_triton_backend_is_registered_and_imported_lazily():
    assert 'triton' in available_backends()
    script = ('import sys, vmamba_zoo.ops.state_fusion as sf\n'
              'assert "vmamba_zoo.ops.state_fusion.triton" not in sys.modules\n'
              'import torch\n'
              'u = torch.zeros(1, 2, 4)\n'
              'assert not sf._triton_accepts(u, torch.zeros(2, 1), torch.zeros(3, 2, 3, 3))  # CPU tensors\n')
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


_INTERPRETER_SCRIPT = textwrap.dedent('''
    import os, sys, torch
    sys.path.insert(0, {tests!r})
    from ops.test_state_fusion_triton import check_against_naive
    cases = [dict(batch=2, per_group=3, size=(3, 5)),
             dict(batch=1, groups=2, per_group=3, d_state=4, size=(9, 13), grouped=True, order=True),
             dict(batch=2, per_group=2, size=(1, 17), with_D=False, with_bias=False),
             dict(batch=1, per_group=8, d_state=16, size=(4, 5))]
    for case in cases:
        check_against_naive(case, torch.float32, 'cpu')
    # small chunks and blocks: the carry between chunks (forward and adjoint), blocks spanning two groups of B
    # (atomic dB) and blocks of one group (per-block dB slots), partial channel blocks
    os.environ['VMAMBA_ZOO_STATE_FUSION_BLOCKS'] = '16,4,4,2,4'
    for case in cases[:2] + [dict(batch=1, groups=2, per_group=4, size=(7, 9), grouped=True, order=True),
                             dict(batch=2, per_group=5, d_state=4, size=(6, 7))]:
        check_against_naive(case, torch.float32, 'cpu')
    check_against_naive(dict(batch=1, groups=2, per_group=4, d_state=4, size=(5, 7), grouped=True),
                        torch.bfloat16, 'cpu', all_low=True)
    check_against_naive(dict(batch=1, per_group=4, size=(5, 7)), torch.float16, 'cpu')
    print('interpreter ok')
''')


def test_triton_kernels_under_interpreter_on_cpu():
    run_under_interpreter(_INTERPRETER_SCRIPT)
