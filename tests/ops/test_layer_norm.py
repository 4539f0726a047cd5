"""The LayerNorm op: every path against the reference (naive.py), the module against nn.LayerNorm."""
import pytest
import torch
from torch import nn

from vmamba_zoo.layers import LayerNorm
from vmamba_zoo.ops import layer_norm as layer_norm_pkg
from vmamba_zoo.ops.layer_norm import (ENV_BACKEND, ENV_TRITON_MIN, available_backends, layer_norm, layer_norm_naive,
                                       layer_norm_torch)
from .test_selective_scan_triton import run_under_interpreter

# (leading shape, features): odd row counts, odd widths below / around one row block, the zoo's widths
SHAPES = [((7,), 3), ((3, 5), 37), ((2, 9, 11), 96), ((1, 13), 130), ((257,), 192), ((4, 7, 7), 768),
          ((33,), 3072), ((0, 5), 24)]


def make_inputs(lead, features, dtype, device='cpu', affine=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(*lead, features, generator=g) * 2 + 0.5).to(device=device, dtype=dtype)
    if not affine:
        return x, None, None
    weight = (torch.randn(features, generator=g) * 0.5 + 1).to(device)
    bias = (torch.randn(features, generator=g) * 0.1).to(device)
    return x, weight, bias


def check_against_naive(fn, lead, features, dtype, device, affine=True, out_dtype=None, atol=None):
    """Forward and the gradients of x, weight, bias of ``fn`` against naive.py (float64 reference)."""
    x, weight, bias = make_inputs(lead, features, dtype, device, affine)
    leaves = [t.detach().clone().requires_grad_() for t in (x, weight, bias) if t is not None]
    ref_leaves = [t.detach().double().requires_grad_() for t in leaves]
    unpack = (lambda ts: (ts[0], ts[1], ts[2])) if affine else (lambda ts: (ts[0], None, None))
    y = fn(*unpack(leaves), 1e-5, out_dtype)
    ref = layer_norm_naive(*unpack(ref_leaves), 1e-5)
    assert y.dtype == (out_dtype or dtype) and y.shape == x.shape
    low = dtype != torch.float32 or (out_dtype not in (None, torch.float32))
    tol = atol or (2e-2 if low else 2e-5)
    torch.testing.assert_close(y.double(), ref, atol=tol, rtol=tol)
    dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(device)
    (y.float() * dy).sum().backward()
    (ref * dy.double()).sum().backward()
    for name, leaf, ref_leaf in zip(('x', 'weight', 'bias'), leaves, ref_leaves):
        assert leaf.grad.dtype == leaf.dtype, name
        scale = max(1.0, ref_leaf.grad.abs().amax().item()) if ref_leaf.grad.numel() else 1.0
        torch.testing.assert_close(leaf.grad.double(), ref_leaf.grad, atol=tol * scale, rtol=tol)


@pytest.mark.parametrize('lead,features', SHAPES)
def test_torch_backend_matches_reference(lead, features):
    check_against_naive(layer_norm_torch, lead, features, torch.float32, 'cpu')


def test_naive_is_nn_layer_norm():
    x, weight, bias = make_inputs((4, 6), 10, torch.float64)
    ref = nn.functional.layer_norm(x, (10,), weight.double(), bias.double(), 1e-5)
    torch.testing.assert_close(layer_norm_naive(x, weight.double(), bias.double()), ref, atol=1e-12, rtol=0)


def test_bad_input_names_the_problem():
    x = torch.randn(2, 8)
    with pytest.raises(ValueError, match='weight must be \\(8,\\)'):
        layer_norm(x, torch.ones(7), None)
    with pytest.raises(ValueError, match='floating-point'):
        layer_norm(torch.ones(2, 8, dtype=torch.long), None, None)
    with pytest.raises(ValueError, match='unknown backend'):
        layer_norm(x, None, None, backend='nope')
    with pytest.raises(ValueError, match='last dim of the input must be 8'):
        LayerNorm(8)(torch.randn(2, 9))
    with pytest.raises(ValueError, match='last dim only'):
        LayerNorm((4, 8))


def test_module_is_a_drop_in_for_nn_layer_norm():
    ours, theirs = LayerNorm(12, eps=1e-6), nn.LayerNorm(12, eps=1e-6)
    assert isinstance(ours, nn.LayerNorm)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    with torch.no_grad():
        ours.weight.normal_()
        ours.bias.normal_()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(3, 5, 12)
    assert torch.equal(ours(x), theirs(x))  # the CPU path is F.layer_norm itself: bitwise equal
    assert LayerNorm(12, bias=False).bias is None and LayerNorm(12, elementwise_affine=False).weight is None


def test_module_returns_the_autocast_dtype_under_autocast():
    norm = LayerNorm(16)
    x = torch.randn(4, 16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        y = norm(x)
        consumer = nn.Linear(16, 3)(y)
    assert y.dtype == torch.bfloat16 and consumer.dtype == torch.bfloat16
    # the same numbers autocast's fp32 LayerNorm would give, rounded once
    assert torch.equal(y, nn.functional.layer_norm(x, (16,), norm.weight, norm.bias).to(torch.bfloat16))
    assert norm(x).dtype == torch.float32  # outside autocast: the input's dtype


def test_triton_threshold_env(monkeypatch):
    assert layer_norm_pkg._triton_min_elements() == 1 << 25
    monkeypatch.setenv(ENV_TRITON_MIN, '0')
    assert layer_norm_pkg._triton_min_elements() == 0


def test_dispatch_and_env_pin(monkeypatch):
    x, weight, bias = make_inputs((3,), 8, torch.float32)
    assert layer_norm_pkg._resolve_backend(None, x) is layer_norm_torch  # CPU default
    monkeypatch.setenv(ENV_BACKEND, 'naive')
    assert layer_norm_pkg._resolve_backend(None, x) is layer_norm_naive
    assert set(available_backends()) == {'naive', 'torch', 'triton'}


_INTERPRETER_SCRIPT = '''
import sys, torch
sys.path.insert(0, {tests!r})
from ops.test_layer_norm import check_against_naive
from vmamba_zoo.ops.layer_norm.triton import layer_norm_triton
for lead, features in [((5,), 3), ((3, 7), 37), ((2, 9), 96), ((70,), 24), ((0, 3), 8)]:
    check_against_naive(layer_norm_triton, lead, features, torch.float32, 'cpu')
# weight without bias and bias without weight (the partial-sum rows of the other stay unread)
x = torch.randn(6, 10, requires_grad=True)
for weight, bias in ((torch.randn(10, requires_grad=True), None), (None, torch.randn(10, requires_grad=True))):
    y = layer_norm_triton(x, weight, bias)
    ref = torch.nn.functional.layer_norm(x, (10,), weight, bias)
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
    leaves = [t for t in (x, weight, bias) if t is not None]
    for a, b in zip(torch.autograd.grad(y.sum(), leaves), torch.autograd.grad(ref.sum(), leaves)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
check_against_naive(layer_norm_triton, (5,), 20, torch.float32, 'cpu', affine=False)
check_against_naive(layer_norm_triton, (9,), 33, torch.float32, 'cpu', out_dtype=torch.bfloat16)
print('interpreter ok')
'''


def test_triton_kernels_under_interpreter_on_cpu():
    run_under_interpreter(_INTERPRETER_SCRIPT)


@pytest.mark.gpu
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize('lead,features', SHAPES)
def test_triton_matches_reference(lead, features, dtype):
    from vmamba_zoo.ops.layer_norm.triton import layer_norm_triton
    check_against_naive(layer_norm_triton, lead, features, dtype, 'cuda')


@pytest.mark.gpu
@pytest.mark.parametrize('out_dtype', [torch.bfloat16, torch.float16])
def test_triton_fp32_input_low_precision_output(out_dtype):
    from vmamba_zoo.ops.layer_norm.triton import layer_norm_triton
    check_against_naive(layer_norm_triton, (64, 49), 384, torch.float32, 'cuda', out_dtype=out_dtype)
    check_against_naive(layer_norm_triton, (5,), 96, torch.float32, 'cuda', affine=False, out_dtype=out_dtype)


@pytest.mark.gpu
def test_cuda_dispatch_and_module_under_autocast(monkeypatch):
    x = torch.randn(2, 7, 7, 96, device='cuda', requires_grad=True)
    # small maps stay on ATen (host cost), large ones go to Triton; 0 sends every map to Triton
    assert layer_norm_pkg._resolve_backend(None, x) is layer_norm_torch
    big = torch.empty(128, 56, 56, 96, device='cuda')
    assert layer_norm_pkg._resolve_backend(None, big) is layer_norm_pkg._layer_norm_triton
    del big
    monkeypatch.setenv(ENV_TRITON_MIN, '0')
    assert layer_norm_pkg._resolve_backend(None, x) is layer_norm_pkg._layer_norm_triton
    norm = LayerNorm(96).cuda()
    ref = nn.LayerNorm(96).cuda()
    ref.load_state_dict(norm.state_dict())
    torch.testing.assert_close(norm(x), ref(x), atol=2e-5, rtol=2e-5)
    with torch.autocast('cuda', dtype=torch.bfloat16):
        y = norm(x.permute(0, 2, 1, 3))  # a non-contiguous input is normalised as laid out logically
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), ref(x.permute(0, 2, 1, 3)).float(), atol=2e-2, rtol=2e-2)
    y.float().sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


def test_layer_norm_2d_matches_timm():
    from timm.layers import LayerNorm2d as TimmLayerNorm2d
    from vmamba_zoo.layers import LayerNorm2d
    ours, theirs = LayerNorm2d(6, eps=1e-6), TimmLayerNorm2d(6, eps=1e-6)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    with torch.no_grad():
        ours.weight.normal_()
        ours.bias.normal_()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 6, 5, 7)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match='expects a \\(B, C, H, W\\) map'):
        ours(torch.randn(6, 5, 7))
