"""The Triton selective scan against the sequential reference.

On a CUDA machine (``pytest -m gpu``) the compiled kernels run on random shapes and dtypes, forward and
gradients. Without a GPU the same kernels run once under Triton's CPU interpreter in a subprocess (slow, so on
small shapes), which keeps the kernel maths tested in CI.
"""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from vmamba_zoo.ops import selective_scan
from vmamba_zoo.ops.selective_scan import selective_scan_naive, triton_available

from .test_selective_scan import make_inputs

pytestmark = pytest.mark.skipif(not triton_available(), reason='triton is not installed')

# (batch, groups, per_group, d_state, length, grouped, with_z): odd lengths and channel counts on purpose
CASES = [
    (2, 4, 24, 1, 3136 // 16 + 3, True, False),
    (1, 4, 7, 1, 1, True, False),
    (3, 2, 5, 4, 257, True, True),
    (2, 1, 12, 16, 130, False, True),
    (1, 4, 3, 64, 77, True, False),
    (2, 4, 33, 1, 1000, True, True),
    (2, 4, 64, 1, 196, True, True),  # whole blocks per group (one-group reduction), L % 16 != 0 but % 4 == 0
    # d_state 1 in the CUDA backend (single_state.cu): 8-row blocks of one group with vectors (L % 8 == 0) over
    # 4 forward iterations of 256 steps and 7 backward chunks of 128 (the last of 8 steps); B/C shared by all
    # channels (one group of 15: per-lane atomics), odd L
    (2, 2, 16, 1, 776, True, False),
    (2, 3, 5, 1, 517, False, True),
    # short sequences (<= 128 steps: 8-lane rows, 32-row blocks): a stage-4-like L = 49 in whole blocks of one
    # group, 64-step forward iterations and 32-step backward chunks with vectors, and 15 rows (the last warp has a
    # row past the end)
    (2, 2, 32, 1, 49, True, True),
    (1, 2, 64, 1, 128, True, False),
    (1, 3, 5, 1, 100, True, False),
]


def _relative_error(out, ref):
    return ((out.double() - ref.double()).norm() / ref.double().norm().clamp_min(1e-12)).item()


# mamba_ssm tests/ops/test_selective_scan.py (fp32, its active parametrisation): (rtol, atol) per output, with
# the weight tolerances (1e-3, 1e-3) for A, D, delta_bias and z
_MAMBA_FP32_TOL = dict(out=(6e-4, 2e-3), u=(12e-4, 4e-3), delta=(3e-3, 2e-2), A=(1e-3, 5e-3), B=(6e-4, 2e-3),
                       C=(6e-4, 2e-3), D=(1e-3, 1e-3), z=(1e-3, 1e-3), delta_bias=(1e-3, 1e-3))


def _check_against_naive(case, dtype, device, check_grads=True, backend='triton', delta_scale=0.5):
    batch, groups, per_group, d_state, length, grouped, with_z = case
    inputs = make_inputs(batch=batch, groups=groups, per_group=per_group, d_state=d_state, length=length,
                         grouped=grouped, with_z=with_z, seed=length, delta_scale=delta_scale)
    # low-precision inputs: the reference sees the same rounded values, in fp32
    inputs = {k: None if v is None else (v.to(dtype) if k in ('u', 'delta', 'B', 'C', 'z') else v)
              for k, v in inputs.items()}
    ref_inputs = {k: None if v is None else v.float().requires_grad_() for k, v in inputs.items()}
    dev_inputs = {k: None if v is None else v.to(device).requires_grad_() for k, v in inputs.items()}
    out = selective_scan(**dev_inputs, delta_softplus=True, backend=backend)
    ref = selective_scan_naive(**ref_inputs, delta_softplus=True)
    assert out.dtype == dtype and out.shape == ref.shape
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    assert _relative_error(out.cpu(), ref) < tol
    if dtype == torch.float32:
        torch.testing.assert_close(out.cpu(), ref, rtol=_MAMBA_FP32_TOL['out'][0], atol=_MAMBA_FP32_TOL['out'][1])
    if not check_grads:
        return
    weights = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1))
    names = [k for k, v in inputs.items() if v is not None]
    grads = torch.autograd.grad((out.float() * weights.to(device)).sum(), [dev_inputs[k] for k in names])
    ref_grads = torch.autograd.grad((ref * weights).sum(), [ref_inputs[k] for k in names])
    for name, g, r in zip(names, grads, ref_grads):
        assert g.dtype == dev_inputs[name].dtype, name
        assert _relative_error(g.cpu(), r) < (1e-4 if dtype == torch.float32 else 3e-2), name
        if dtype == torch.float32:
            rtol, atol = _MAMBA_FP32_TOL[name]
            torch.testing.assert_close(g.cpu(), r, rtol=rtol, atol=atol, msg=lambda m: f'{name}: {m}')


@pytest.mark.gpu
@pytest.mark.parametrize('case', CASES)
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16, torch.float16])
def test_triton_matches_naive_on_gpu(case, dtype):
    _check_against_naive(case, dtype, 'cuda')


@pytest.mark.gpu
def test_cuda_default_backend_is_triton_and_last_state():
    # d_state 4: fp32 / bf16 d_state-1 inputs default to the CUDA kernels (test_selective_scan_cuda_gpu.py checks that)
    from vmamba_zoo.ops.selective_scan import _resolve_backend, _triton_backend
    inputs = {k: None if v is None else v.cuda() for k, v in make_inputs(length=300, d_state=4).items()}
    assert _resolve_backend(None, *(inputs[k] for k in ('u', 'delta', 'A', 'B', 'C'))) is _triton_backend
    out, state = selective_scan(**inputs, delta_softplus=True, return_last_state=True)
    ref, ref_state = selective_scan_naive(**{k: None if v is None else v.cpu() for k, v in inputs.items()},
                                          delta_softplus=True, return_last_state=True)
    torch.testing.assert_close(out.cpu(), ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(state.cpu(), ref_state, atol=1e-4, rtol=1e-4)


@pytest.mark.gpu
def test_vmamba_tiny_trains_on_gpu_with_triton():
    import timm
    import vmamba_zoo  # noqa: F401  (registers the models)
    torch.manual_seed(0)
    model = timm.create_model('vmamba_tiny', num_classes=10).cuda()
    x = torch.randn(2, 3, 128, 128, device='cuda')
    with torch.autocast('cuda', dtype=torch.bfloat16):
        loss = model(x).float().logsumexp(-1).mean()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    # the same weights on CPU (chunked path) give the same fp32 logits
    model.eval()
    with torch.no_grad():
        gpu = model(x).cpu()
        cpu = model.cpu()(x.cpu())
    torch.testing.assert_close(gpu, cpu, atol=2e-3, rtol=2e-3)


_INTERPRETER_SCRIPT = textwrap.dedent('''
    import sys, torch
    sys.path.insert(0, {tests!r})
    from ops.test_selective_scan_triton import _check_against_naive
    for case in [(2, 2, 3, 1, 37, True, False), (1, 2, 2, 4, 20, False, True), (1, 1, 3, 2, 150, True, True),
                 (1, 2, 32, 1, 68, True, False)]:
        _check_against_naive(case, torch.float32, 'cpu')
    # fp32 longer than 256 steps: the shifted-input backward (the cases above run the recomputing one)
    _check_against_naive((1, 1, 2, 1, 300, True, True), torch.float32, 'cpu')
    # tail chunks (``_tail_length``): one step after a whole 32-step chunk, and a 2-step scan that is all tail
    # (68 above: 4 steps after a 64-step chunk; 37, 150 and 300 keep a masked last chunk)
    _check_against_naive((1, 2, 2, 1, 33, True, True), torch.float32, 'cpu')
    _check_against_naive((1, 2, 2, 1, 2, True, False), torch.float32, 'cpu')
    # delta + bias far past both ends of softplus (|x| > 20): its derivative exp(x - softplus(x)) in ddelta
    _check_against_naive((1, 2, 2, 1, 40, True, False), torch.float32, 'cpu', delta_scale=15.0)
    print('interpreter ok')
''')


def run_under_interpreter(script_template):
    """Run a check script (``{tests}`` = the tests folder, to import from) in a subprocess under Triton's CPU
    interpreter; it must print 'interpreter ok'."""
    env = dict(os.environ, TRITON_INTERPRET='1')
    script = script_template.format(tests=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert 'interpreter ok' in result.stdout


def test_triton_kernels_under_interpreter_on_cpu():
    run_under_interpreter(_INTERPRETER_SCRIPT)


def test_launch_follows_the_measured_tables(monkeypatch):
    """Plain scans at d_state 1 launch from the measured per-dtype table (the shifted-input backward only for fp32
    sequences longer than 256 steps), larger states from the rule (same form choice); the fused table and the
    tuning overrides name the form in their last field (default shifted)."""
    from vmamba_zoo.ops.selective_scan.triton import (_FUSED_TABLE, _PLAIN_TABLES, _launch_config, _parse_blocks,
                                                      _tail_length)
    monkeypatch.delenv('VMAMBA_ZOO_TRITON_BLOCKS', raising=False)
    monkeypatch.delenv('VMAMBA_ZOO_FUSED_BLOCKS', raising=False)
    for d_state in (1, 16):
        assert _launch_config(d_state, 3136, dtype=torch.float32)[-1] is True
        assert _launch_config(d_state, 196, dtype=torch.float32)[-1] is False
        assert _launch_config(d_state, 3136, dtype=torch.bfloat16)[-1] is False
    # the table's rows are what runs 16-17 and 21 measured (model_cards/gpu_kernels.md); the rule stays for N = 16
    assert _launch_config(1, 196, dtype=torch.float32)[1:4] == (32, (32, 4), (8, 2))
    assert _launch_config(1, 3136, dtype=torch.bfloat16)[1:4] == (64, (32, 8), (8, 2))
    assert _launch_config(1, 784, dtype=torch.float16) == _launch_config(1, 784, dtype=torch.bfloat16)
    assert _launch_config(16, 196, dtype=torch.float32)[1:4] == (32, (4, 4), (2, 4))
    # the steps after the last whole chunk run in a tile of the next power of two (none when L divides), only
    # when they are at most an eighth of a chunk (a masked whole chunk otherwise)
    assert [_tail_length(length, 64) for length in (3136, 784, 196, 49, 65, 72, 73)] == [0, 0, 4, 0, 1, 8, 0]
    assert [_tail_length(length, 32) for length in (196, 33, 37)] == [4, 1, 0]
    for rows in (_FUSED_TABLE, *_PLAIN_TABLES.values()):
        bounds = [row[0] for row in rows]
        assert bounds == sorted(bounds) and bounds[-1] == float('inf')
    assert [_launch_config(1, length, fused=True, dtype=torch.bfloat16)[-1] for length in (49, 196, 784, 3136)] \
        == [True, True, False, False]
    rows = _parse_blocks('64:32,32,4,16,4,1,0;*:32,32,4,16,4')
    assert [row[-2:] for row in rows] == [(True, False), (False, True)]
    monkeypatch.setenv('VMAMBA_ZOO_FUSED_BLOCKS', '64:32,32,4,16,4,1,0;*:32,32,4,16,4')
    assert _launch_config(1, 49, fused=True)[-1] is False and _launch_config(1, 3136, fused=True)[-1] is True
    monkeypatch.setenv('VMAMBA_ZOO_FUSED_BLOCKS', '64:32,32,4,16,4,1,0')
    with pytest.raises(ValueError, match='no row for a 3136-step scan'):
        _launch_config(1, 3136, fused=True)
    monkeypatch.setenv('VMAMBA_ZOO_TRITON_BLOCKS', '32,16,4,16,4,0')
    assert _launch_config(1, 3136, dtype=torch.float32)[-1] is False
    assert _launch_config(1, 49, fused=True)[1:4] == (32, (32, 4), (16, 4))  # the plain pin leaves fused scans alone
