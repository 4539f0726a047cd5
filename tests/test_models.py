"""One battery over every model the zoo registers: a new model is tested by registering it.

Sizes are kept small where the check does not depend on resolution, so heavy variants stay cheap on CPU.
"""
import pytest
import timm
import torch

import vmamba_zoo
from vmamba_zoo.models._registry import is_exposed_timm_model

MODELS = vmamba_zoo.list_models()
SMALL = 64  # smallest convenient size for checks that do not depend on resolution


def _create(name, **kwargs):
    return timm.create_model(name, pretrained=False, **kwargs)


def _default_size(model):
    return model.pretrained_cfg['input_size'][-2:]


def test_registry_lists_models():
    assert MODELS, 'no models registered'
    for name in MODELS:
        assert timm.is_model(name), f'{name} is listed by the zoo but unknown to timm'


@pytest.mark.parametrize('name', MODELS)
def test_forward_default_and_other_resolution(name):
    torch.manual_seed(0)
    model = _create(name).eval()
    h, w = _default_size(model)
    with torch.no_grad():
        out = model(torch.randn(1, 3, h, w))
        assert out.shape == (1, model.num_classes)
        assert torch.isfinite(out).all()
        # a non-default resolution the architecture allows (not a multiple of the default)
        out = model(torch.randn(1, 3, h + 32, w - 32))
    assert out.shape == (1, model.num_classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize('name', MODELS)
def test_backward_every_parameter_gets_finite_grad(name):
    torch.manual_seed(0)
    model = _create(name, num_classes=10).train()
    out = model(torch.randn(2, 3, SMALL, SMALL))
    assert out.shape == (2, 10)
    out.float().pow(2).mean().backward()
    for pname, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f'no gradient for {pname}'
            assert torch.isfinite(p.grad).all(), f'non-finite gradient for {pname}'


@pytest.mark.parametrize('name', MODELS)
def test_features_only_matches_feature_info(name):
    model = _create(name, features_only=True).eval()
    info = model.feature_info
    channels, reductions = info.channels(), info.reduction()
    assert len(channels) >= 3
    size = 96  # not a power of two at every level: checks ceil-rounding of odd maps
    with torch.no_grad():
        feats = model(torch.randn(2, 3, size, size))
    if is_exposed_timm_model(name) and getattr(model, 'output_fmt', 'NCHW') == 'NHWC':
        feats = [f.permute(0, 3, 1, 2) for f in feats]  # timm's own model (e.g. MambaOut) gives NHWC maps
    assert len(feats) == len(channels)
    for f, c, r in zip(feats, channels, reductions):
        assert f.shape[0] == 2 and f.shape[1] == c, (f.shape, c)
        expect = (-(-size // r),) * 2
        feat_size = getattr(getattr(model, 'model', model), 'dynamic_feat_size', None)
        if feat_size is not None:  # plain models with an unpadded conv patch embed (Vim "+": (H - 16) // 8 + 1)
            expect = tuple(feat_size((size, size)))
        assert tuple(f.shape[2:]) == expect, (f.shape, r)
        assert torch.isfinite(f).all()


@pytest.mark.parametrize('name', MODELS)
def test_num_classes_zero_gives_pooled_features(name):
    model = _create(name, num_classes=0).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, SMALL, SMALL))
    assert out.shape == (2, model.head_hidden_size)  # == num_features unless the head has an MLP (MambaOut)
    model = _create(name, num_classes=0, global_pool='').eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, SMALL, SMALL))
    assert out.ndim == (3 if getattr(model, 'output_fmt', None) == 'NLC' else 4)  # NLC: token models (Vim)


@pytest.mark.parametrize('name', MODELS)
def test_head_api(name):
    model = _create(name, num_classes=7).eval()
    x = torch.randn(1, 3, SMALL, SMALL)
    with torch.no_grad():
        feats = model.forward_features(x)
        pre = model.forward_head(feats, pre_logits=True)
        assert pre.shape == (1, model.head_hidden_size)
        assert model.get_classifier().out_features == 7
        model.reset_classifier(3)
        assert model(x).shape == (1, 3)
        model.reset_classifier(0)
        assert model(x).shape == (1, model.head_hidden_size)
    if is_exposed_timm_model(name) and not hasattr(model, 'no_weight_decay'):
        return  # timm's own model (MambaOut) has no such hook; timm's optimizer factory treats it as optional
    assert isinstance(model.no_weight_decay(), (set, list, tuple))


@pytest.mark.parametrize('name', MODELS)
def test_state_dict_round_trip_and_grad_checkpointing(name):
    torch.manual_seed(0)
    a = _create(name).eval()
    torch.manual_seed(1)
    b = _create(name).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, SMALL, SMALL)
    with torch.no_grad():
        ya, yb = a(x), b(x)
        assert torch.equal(ya, yb)
        b.set_grad_checkpointing(True)
        torch.testing.assert_close(b(x), ya, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('name', MODELS)
def test_bad_input_raises_clear_error(name):
    model = _create(name).eval()
    if is_exposed_timm_model(name):
        # timm's own implementation, listed as is (vmamba_zoo.models._registry.expose_timm_model): the zoo adds no
        # input checks; a wrong channel count still fails inside its first conv
        with pytest.raises(RuntimeError, match='channels'):
            model(torch.randn(1, 4, SMALL, SMALL))
        return
    with pytest.raises(ValueError, match='input channels'):
        model(torch.randn(1, 4, SMALL, SMALL))
    with pytest.raises(ValueError, match='at least'):
        model(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match='4-D'):
        model(torch.randn(3, SMALL, SMALL))
    feat = _create(name, features_only=True).eval()
    with pytest.raises(ValueError, match='input channels'):
        feat(torch.randn(1, 1, SMALL, SMALL))


@pytest.mark.gpu
@pytest.mark.parametrize('name', MODELS)
def test_runs_on_cuda_kernels_and_matches_cpu(name, monkeypatch):
    """Every model on CUDA (the GPU kernels the dispatch picks there: Triton scans, fused 2D scans, LayerNorm,
    ...): fp32 logits equal to the CPU path's, and a bf16-autocast training step with finite gradients."""
    monkeypatch.setattr(torch.backends.cudnn, 'allow_tf32', False)  # cuDNN convs default to TF32: keep fp32
    monkeypatch.setattr(torch.backends.cuda.matmul, 'allow_tf32', False)
    # every LayerNorm on the Triton kernel: at this small size the size rule would keep them all on ATen
    monkeypatch.setenv('VMAMBA_ZOO_LAYER_NORM_TRITON_MIN', '0')
    torch.manual_seed(0)
    model = _create(name, num_classes=10).eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        cpu = model(x)
        model = model.cuda()
        gpu = model(x.cuda()).cpu()
    torch.testing.assert_close(gpu, cpu, atol=2e-3, rtol=2e-3)
    model.train()
    with torch.autocast('cuda', dtype=torch.bfloat16):
        loss = model(x.cuda()).float().pow(2).mean()
    loss.backward()
    for pname, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), pname
