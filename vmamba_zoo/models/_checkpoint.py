"""What every family's ``checkpoint_filter_fn`` shares: unwrapping the file as saved, and one clear error when the
converted weights do not fit the model."""
from typing import Dict, Iterable

import torch

__all__ = ['unwrap_state_dict', 'check_state_dict_fits']

# Where the official trainers keep the weights: Swin-style main.py saves {'model': ...}; mmcls / mmdet save
# {'state_dict': ...}; EMA trainers add {'model_ema' | 'ema_model' | 'state_dict_ema': ...}. The plain weights win.
_WRAPPERS = ('model', 'state_dict', 'model_ema', 'ema_model', 'state_dict_ema')


def unwrap_state_dict(state_dict) -> Dict[str, torch.Tensor]:
    """The weights of an official file as saved (under one of ``_WRAPPERS`` or bare), every leading ``module.``
    (DDP / EMA wrappers; EfficientVMamba's detection loader even strips ``module.module.``) removed."""
    if not isinstance(state_dict, dict):
        raise ValueError(f'checkpoint mismatch: expected a dict of tensors, got {type(state_dict).__name__}')
    for wrapper in _WRAPPERS:
        if isinstance(state_dict, dict) and isinstance(state_dict.get(wrapper), dict):
            state_dict = state_dict[wrapper]
            break
    out = {}
    for k, v in state_dict.items():
        while k.startswith('module.'):
            k = k[len('module.'):]
        out[k] = v
    return out


def check_state_dict_fits(converted: Dict[str, torch.Tensor], target: Dict[str, torch.Tensor], family: str,
                          hint: str = '', optional: Iterable[str] = (), max_items: int = 6) -> None:
    """Raise one ValueError naming the missing, unexpected and wrongly shaped keys of ``converted`` against the
    model's ``target`` state_dict. The classifier (``head.``) may differ in shape: timm's loader adapts or drops it
    when num_classes differs. Keys starting with a prefix in ``optional`` may be missing (e.g. a backbone-only
    file without ``head.``)."""
    optional = tuple(optional)
    groups = [
        [f'missing {k}' for k in sorted(set(target) - set(converted)) if not (optional and k.startswith(optional))],
        [f'unexpected {k}' for k in sorted(set(converted) - set(target))],
        [f'shape of {k}: checkpoint {tuple(converted[k].shape)} vs model {tuple(target[k].shape)}'
         for k in sorted(set(converted) & set(target))
         if converted[k].shape != target[k].shape and not k.startswith('head.')],
    ]
    if any(groups):
        # a few of each kind, so a wrong variant shows its unexpected keys even when hundreds are missing
        shown = [p + (f' ... ({len(g) - max_items} more)' if len(g) > max_items and i == max_items - 1 else '')
                 for g in groups for i, p in enumerate(g[:max_items])]
        why = f'wrong variant{", " + hint if hint else ""}, or not a {family} checkpoint?'
        raise ValueError(f'checkpoint mismatch for {family} ({why}): {"; ".join(shown)}')
