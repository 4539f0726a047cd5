"""The converter helpers every family's checkpoint_filter_fn uses (vmamba_zoo/models/_checkpoint.py)."""
import pytest
import torch

from vmamba_zoo.models._checkpoint import check_state_dict_fits, unwrap_state_dict


def test_unwrap_takes_the_plain_weights_and_strips_every_module_prefix():
    w = torch.zeros(2)
    assert unwrap_state_dict({'model': {'module.a': w}, 'model_ema': {'a': w + 1}})['a'] is w
    assert list(unwrap_state_dict({'state_dict': {'module.module.b': w}, 'meta': {}})) == ['b']
    assert list(unwrap_state_dict({'ema_model': {'c': w}})) == ['c']
    assert list(unwrap_state_dict({'d': w})) == ['d']
    with pytest.raises(ValueError, match='expected a dict of tensors'):
        unwrap_state_dict([w])


def test_mismatch_names_each_kind_of_problem():
    target = {'a': torch.zeros(2), 'b': torch.zeros(3), 'head.fc.weight': torch.zeros(10, 3)}
    assert check_state_dict_fits(dict(target), target, 'Fam') is None
    # the classifier may differ in shape (timm adapts it to num_classes)
    check_state_dict_fits({'a': torch.zeros(2), 'b': torch.zeros(3), 'head.fc.weight': torch.zeros(5, 3)},
                          target, 'Fam')
    with pytest.raises(ValueError, match=r'checkpoint mismatch for Fam \(wrong variant, a hint, or not a Fam '
                                         r'checkpoint\?\): missing b; unexpected z; shape of a: checkpoint \(4,\) '
                                         r'vs model \(2,\)'):
        check_state_dict_fits({'a': torch.zeros(4), 'z': torch.zeros(1), 'head.fc.weight': torch.zeros(10, 3)},
                              target, 'Fam', hint='a hint')
    # optional prefixes may be missing (backbone-only files)
    check_state_dict_fits({'a': torch.zeros(2), 'b': torch.zeros(3)}, target, 'Fam', optional=('head.',))


def test_mismatch_shows_unexpected_keys_even_when_many_are_missing():
    target = {f'k{i:03d}': torch.zeros(1) for i in range(100)}
    with pytest.raises(ValueError, match=r'missing k000; .*\(94 more\); unexpected other'):
        check_state_dict_fits({'other': torch.zeros(1)}, target, 'Fam', max_items=6)
