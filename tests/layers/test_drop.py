"""ResidualDropPath: residual + timm DropPath(branch) in one pass, with timm's mask."""
import pytest
import torch
from timm.layers import DropPath

from vmamba_zoo.layers import ResidualDropPath


@pytest.mark.parametrize('drop_prob', [0.0, 0.3, 1.0])
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_matches_timm_drop_path_plus_residual(drop_prob, dtype):
    residual = torch.randn(16, 5, 7, 3)
    branch = torch.randn(16, 5, 7, 3).to(dtype)
    fused, timm_path = ResidualDropPath(drop_prob).train(), DropPath(drop_prob).train()
    torch.manual_seed(3)
    out = fused.add(residual, branch)
    torch.manual_seed(3)
    ref = residual + timm_path(branch)
    assert out.dtype == ref.dtype == torch.float32
    # bf16: timm rounds branch * mask to bf16 before the fp32 add, addcmul does not (one rounding fewer)
    tol = 1e-6 if dtype == torch.float32 else 2 ** -8 * branch.float().abs().max().item() * 1.5
    torch.testing.assert_close(out, ref, rtol=0, atol=tol)
    if 0 < drop_prob < 1:  # the same samples are dropped, and some are
        dropped = (out == residual).flatten(1).all(1)
        assert 0 < dropped.sum() < 16


def test_eval_is_the_plain_sum_and_gradients_flow():
    module = ResidualDropPath(0.5).eval()
    residual, branch = torch.randn(4, 6, requires_grad=True), torch.randn(4, 6, requires_grad=True)
    assert torch.equal(module.add(residual, branch), residual + branch)
    module.train()
    torch.manual_seed(0)
    out = module.add(residual, branch)
    out.sum().backward()
    kept = (out != residual).any(1)
    assert torch.equal(residual.grad, torch.ones(4, 6))
    torch.testing.assert_close(branch.grad, kept[:, None].float().expand(4, 6) * 2.0)
    assert isinstance(module, DropPath) and module.drop_prob == 0.5
