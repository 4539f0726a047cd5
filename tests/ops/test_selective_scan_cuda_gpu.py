"""The zoo's CUDA C++ selective scan (``kernels/``, JIT-built) against the sequential reference, on a GPU.

Same cases, dtypes and tolerances as the Triton backend's tests (``test_selective_scan_triton.py``). Skipped on
machines without a GPU; on a GPU without a CUDA toolchain (no nvcc) the backend is unavailable and the tests
say so by skipping.
"""
import importlib

import pytest
import torch

from vmamba_zoo.ops import selective_scan
from vmamba_zoo.ops.selective_scan import selective_scan_naive

from .test_selective_scan import make_inputs
from .test_selective_scan_triton import CASES, _check_against_naive

cuda_backend = importlib.import_module('vmamba_zoo.ops.selective_scan.cuda')


def _need_extension():
    if not cuda_backend.cuda_backend_available():
        pytest.skip('no CUDA toolchain to build kernels/selective_scan')


@pytest.mark.gpu
@pytest.mark.parametrize('case', CASES)
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16, torch.float16])
def test_cuda_kernels_match_naive(case, dtype):
    _need_extension()
    _check_against_naive(case, dtype, 'cuda', backend='cuda')


@pytest.mark.gpu
def test_cuda_kernels_last_state_and_pinning(monkeypatch):
    _need_extension()
    inputs = {k: None if v is None else v.cuda() for k, v in make_inputs(length=300, d_state=4).items()}
    monkeypatch.setenv('VMAMBA_ZOO_SCAN_BACKEND', 'cuda')
    out, state = selective_scan(**inputs, delta_softplus=True, return_last_state=True)
    ref, ref_state = selective_scan_naive(**{k: None if v is None else v.cpu() for k, v in inputs.items()},
                                          delta_softplus=True, return_last_state=True)
    torch.testing.assert_close(out.cpu(), ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(state.cpu(), ref_state, atol=1e-4, rtol=1e-4)


@pytest.mark.gpu
def test_cuda_kernels_are_the_single_state_default():
    """backend=None runs the CUDA kernels for fp32 and bf16 d_state-1 inputs (the measured rule), Triton for fp16."""
    _need_extension()
    scan_module = importlib.import_module('vmamba_zoo.ops.selective_scan')
    backends = scan_module._REGISTRY.backends
    inputs = {k: None if v is None else v.cuda() for k, v in make_inputs(length=300, d_state=1).items()}

    def resolved(tensors):
        return scan_module._resolve_backend(None, **{k: tensors[k] for k in ('u', 'delta', 'A', 'B', 'C')})

    assert resolved(inputs) is backends['cuda']
    low = {k: v.bfloat16() if k in ('u', 'delta', 'B', 'C') else v for k, v in inputs.items() if v is not None}
    assert resolved(low) is backends['cuda']
    half = {k: v.half() if k in ('u', 'delta', 'B', 'C') else v for k, v in inputs.items() if v is not None}
    assert resolved(half) is backends['triton']
    low_leaves = {k: v.detach().requires_grad_() for k, v in low.items()}
    ref = selective_scan_naive(**{k: None if v is None else v.cpu() for k, v in inputs.items()}, delta_softplus=True)
    torch.testing.assert_close(selective_scan(**inputs, delta_softplus=True).cpu(), ref, atol=1e-4, rtol=1e-4)
    # bf16 through the default: the output and a gradient against the pinned Triton backend
    out = selective_scan(**low_leaves, delta_softplus=True)
    (du,) = torch.autograd.grad(out.float().square().sum(), [low_leaves['u']])
    tri_leaves = {k: v.detach().requires_grad_() for k, v in low.items()}
    tri = selective_scan(**tri_leaves, delta_softplus=True, backend='triton')
    (tri_du,) = torch.autograd.grad(tri.float().square().sum(), [tri_leaves['u']])
    torch.testing.assert_close(out.float(), tri.float(), atol=3e-2, rtol=3e-2)
    torch.testing.assert_close(du.float(), tri_du.float(), atol=5e-2, rtol=5e-2)
