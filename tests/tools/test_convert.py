"""tools/convert.py and offline pretrained loading (no network: the zoo never downloads)."""
import importlib.util
import sys
from pathlib import Path

import pytest
import timm
import torch

import vmamba_zoo  # noqa: F401  (registers the models)
from vmamba_zoo.models._registry import WEIGHTS_ENV

ROOT = Path(__file__).resolve().parents[2]


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(f'tool_{name}', ROOT / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _official_vmamba_tiny_state_dict():
    """A state dict named and shaped like MzeroMiko/VMamba's vmamba_tiny release (see test_vmamba.py)."""
    from tests.models.test_vmamba import official_state_dict
    return official_state_dict(depths=(2, 2, 8, 2), dim=96, ssm_ratio=1.0)


def test_convert_official_checkpoint_then_pretrained_true_finds_it(tmp_path, monkeypatch):
    convert = _load_tool('convert')
    official = _official_vmamba_tiny_state_dict()
    ckpt = tmp_path / 'vssm1_tiny_0230s_ckpt_epoch_264.pth'
    torch.save({'model': official, 'epoch': 264}, ckpt)
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / 'weights'))
    out, report = convert.convert('vmamba_tiny', ckpt, input_size=(3, 64, 64))
    assert out == tmp_path / 'weights' / 'vmamba_tiny.safetensors' and out.is_file()
    assert report['logits_shape'] == (1, 1000) and report['missing_keys'] == report['unexpected_keys'] == []
    model = timm.create_model('vmamba_tiny', pretrained=True)  # found in $VMAMBA_ZOO_WEIGHTS
    reference = timm.create_model('vmamba_tiny')
    reference.load_state_dict(vmamba_zoo.models.vmamba.checkpoint_filter_fn({'model': official}, reference))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), reference.eval()(x))


def test_convert_rejects_wrong_checkpoint_with_clear_message(tmp_path):
    convert = _load_tool('convert')
    ckpt = tmp_path / 'wrong.pth'
    torch.save({'model': {'something.weight': torch.zeros(3)}}, ckpt)
    with pytest.raises(SystemExit, match='does not fit vmamba_tiny'):
        convert.convert('vmamba_tiny', ckpt, tmp_path / 'out.safetensors')


def test_convert_refuses_pickled_objects_unless_trusted(tmp_path):
    convert = _load_tool('convert')
    ckpt = tmp_path / 'with_objects.pth'
    torch.save({'model': {}, 'config': Path('/not/a/tensor')}, ckpt)
    with pytest.raises(SystemExit, match='--trust-pickle'):
        convert.load_checkpoint(ckpt)
    assert 'config' in convert.load_checkpoint(ckpt, trust_pickle=True)


def test_pretrained_without_weights_says_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    with pytest.raises(RuntimeError, match=r'No pretrained weights for .vmamba_tiny.*vmamba_tiny\.pth'):
        timm.create_model('vmamba_tiny', pretrained=True)
    with pytest.raises(FileNotFoundError, match='not found'):
        timm.create_model('vmamba_tiny', pretrained=True, pretrained_cfg_overlay=dict(file=str(tmp_path / 'x.pth')))


def test_convert_cli(tmp_path, monkeypatch, capsys):
    convert = _load_tool('convert')
    ckpt = tmp_path / 'official.pth'
    torch.save({'model': _official_vmamba_tiny_state_dict()}, ckpt)
    out = tmp_path / 'converted.safetensors'
    monkeypatch.setattr(sys, 'argv', ['convert.py'])
    assert convert.main(['--model', 'vmamba_tiny', '--checkpoint', str(ckpt), '--out', str(out), '--no-forward'])
    assert '0 missing / 0 unexpected keys' in capsys.readouterr().out and out.is_file()


def test_convert_uses_timms_converter_for_timm_models(tmp_path):
    """MambaOut is timm's own model: its family converter is timm's checkpoint_filter_fn."""
    import timm.models.mambaout
    convert = _load_tool('convert')
    model = timm.create_model('mambaout_femto')
    assert convert.converter_of(model) is timm.models.mambaout.checkpoint_filter_fn
    ckpt = tmp_path / 'mambaout_femto.pth'
    torch.save(model.state_dict(), ckpt)  # timm layout: passes through the filter
    out, report = convert.convert('mambaout_femto', ckpt, tmp_path / 'femto.safetensors', input_size=(3, 64, 64))
    assert report['missing_keys'] == [] and report['logits_shape'] == (1, 1000)
    from safetensors.torch import load_file
    torch.testing.assert_close(load_file(str(out)), model.state_dict())
