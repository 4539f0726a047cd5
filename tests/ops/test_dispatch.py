"""The backend registry every op dispatches through (vmamba_zoo/ops/_dispatch.py)."""
import pytest
import torch

from vmamba_zoo.ops._dispatch import BackendRegistry


def _registry():
    return BackendRegistry('demo_op', 'VMAMBA_ZOO_DEMO_BACKEND', {'ref': lambda x: 'ref'}, default=lambda x: 'default')


def test_preference_order_predicates_and_default():
    reg = _registry()
    reg.register('wide', lambda x: 'wide', device_types=('cpu',), accepts=lambda x: x.shape[0] > 4)
    reg.register('any', lambda x: 'any', device_types=('cuda',))
    small, large = torch.zeros(2), torch.zeros(8)
    assert reg.resolve(None, 'cpu', large)(large) == 'wide'
    assert reg.resolve(None, 'cpu', small)(small) == 'default'  # not accepted: the default
    assert reg.resolve(None, 'cuda', small)(small) == 'any'  # no predicate: always accepted
    assert reg.preferred('cpu', large, skip={'wide'})(large) == 'default'
    reg.register('newest', lambda x: 'newest', device_types=('cpu',))
    assert reg.resolve(None, 'cpu', small)(small) == 'newest'  # the latest registration is preferred first
    assert reg.names() == ['any', 'newest', 'ref', 'wide']


def test_pinning_by_argument_and_environment(monkeypatch):
    reg = _registry()
    reg.register('wide', lambda x: 'wide', device_types=('cpu',))
    x = torch.zeros(3)
    assert reg.resolve('ref', 'cpu', x)(x) == 'ref'
    monkeypatch.setenv('VMAMBA_ZOO_DEMO_BACKEND', 'ref')
    assert reg.resolve(None, 'cpu', x)(x) == 'ref'
    assert reg.resolve('wide', 'cpu', x)(x) == 'wide'  # the argument wins over the environment
    monkeypatch.setenv('VMAMBA_ZOO_DEMO_BACKEND', 'nope')
    with pytest.raises(ValueError, match=r"demo_op: unknown backend 'nope'; known: ref, wide"):
        reg.resolve(None, 'cpu', x)


def test_copy_is_independent():
    reg = _registry()
    other = reg.copy()
    other.register('extra', lambda x: 'extra', device_types=('cpu',))
    assert 'extra' not in reg.names() and 'cpu' not in reg.preference
