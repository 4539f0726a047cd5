"""The zoo's own list of model names (timm's registry holds the entrypoints), and offline pretrained weights."""
import functools
import os
from pathlib import Path

from timm.models import build_model_with_cfg, is_model, register_model

_ZOO_MODELS = []
# names timm registers itself and the zoo only lists (see ``expose_timm_model``)
_TIMM_EXPOSED = set()


WEIGHTS_ENV = 'VMAMBA_ZOO_WEIGHTS'
_WEIGHT_SUFFIXES = ('.safetensors', '.pth', '.pt', '.bin')


def weights_dir() -> Path:
    """Where ``pretrained=True`` looks for weights: ``$VMAMBA_ZOO_WEIGHTS`` or ``~/.cache/vmamba_zoo``."""
    return Path(os.environ.get(WEIGHTS_ENV) or Path.home() / '.cache' / 'vmamba_zoo')


def find_local_weights(name: str):
    """``<weights_dir>/<name>{.safetensors,.pth,.pt,.bin}`` if one exists (``tools/convert.py`` writes there)."""
    for suffix in _WEIGHT_SUFFIXES:
        path = weights_dir() / f'{name}{suffix}'
        if path.is_file():
            return path
    return None


def resolve_pretrained_file(name: str, kwargs: dict) -> dict:
    """Point ``pretrained=True`` at a local file, or fail with where to put one.

    The zoo downloads nothing: official weights are release files of the official repos (their URLs are in each
    pretrained cfg's ``notes``). Without this, timm would silently fall back to random weights.
    """
    overlay = dict(kwargs.get('pretrained_cfg_overlay') or {})
    if overlay.get('file'):
        if not Path(overlay['file']).is_file():
            raise FileNotFoundError(f"{name}: pretrained weights file not found: {overlay['file']}")
        return kwargs
    if overlay.get('url') or overlay.get('hf_hub_id'):
        return kwargs  # the caller chose a source explicitly
    local = find_local_weights(name)
    if local is None:
        from timm.models import get_pretrained_cfg
        cfg = get_pretrained_cfg(name)
        notes = '; '.join(getattr(cfg, 'notes', None) or ()) if cfg is not None else ''
        raise RuntimeError(
            f"No pretrained weights for '{name}' on this machine (vmamba_zoo downloads nothing). Put the official "
            f"checkpoint{' (' + notes + ')' if notes else ''} at {weights_dir() / (name + '.pth')}, or convert it "
            f"with `python tools/convert.py --model {name} --checkpoint FILE` (writes "
            f"{weights_dir() / (name + '.safetensors')}), or pass pretrained_cfg_overlay=dict(file=PATH). "
            f"${WEIGHTS_ENV} changes the folder.")
    overlay['file'] = str(local)
    return dict(kwargs, pretrained_cfg_overlay=overlay)


def register_zoo_model(fn):
    """``@register_model`` for timm plus membership in ``vmamba_zoo.list_models()``; ``pretrained=True`` reads
    local files only (see ``resolve_pretrained_file``)."""
    @functools.wraps(fn)
    def entrypoint(pretrained: bool = False, **kwargs):
        if pretrained:
            kwargs = resolve_pretrained_file(fn.__name__, kwargs)
        return fn(pretrained=pretrained, **kwargs)

    _ZOO_MODELS.append(fn.__name__)
    return register_model(entrypoint)


def expose_timm_model(name: str) -> str:
    """List a model that timm already registers (e.g. timm's ``mambaout_tiny``) in ``vmamba_zoo.list_models()``.

    Nothing is re-registered: ``timm.create_model(name)`` keeps building timm's own model, so the zoo and timm
    share one implementation and one set of pretrained cfgs. Idempotent; raises ValueError for a name timm does
    not know.
    """
    if not is_model(name):
        raise ValueError(f'expose_timm_model: timm has no model named {name!r}')
    if name not in _ZOO_MODELS:
        _ZOO_MODELS.append(name)
        _TIMM_EXPOSED.add(name)
    return name


def is_exposed_timm_model(name: str) -> bool:
    """True for names listed through ``expose_timm_model`` (timm's own implementation, not the zoo's)."""
    return name in _TIMM_EXPOSED


def list_models(pattern: str = '*'):
    """Sorted names of the zoo's registered models, optionally filtered by an fnmatch pattern."""
    import fnmatch
    return sorted(n for n in _ZOO_MODELS if fnmatch.fnmatch(n, pattern))


def imagenet_eval_cfg(family: dict, url: str = '', **overrides) -> dict:
    """A timm pretrained cfg with the evaluation every zoo family's official repo uses: 224x224 input, centre crop
    ratio 0.875 (Resize 256 + CenterCrop 224), bicubic, ImageNet mean/std, 1000 classes, pool 7x7, classifier
    ``head.fc``. ``family`` holds the family's own keys (first_conv, license, paper_ids, paper_name, origin_url,
    ...); ``overrides`` (a variant's cfg keys) win over both. Each family's ``_cfg`` cites where its repo sets this."""
    return {
        'url': url, 'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (7, 7),
        'crop_pct': 0.875, 'interpolation': 'bicubic', 'mean': (0.485, 0.456, 0.406), 'std': (0.229, 0.224, 0.225),
        'classifier': 'head.fc', **family, **overrides,
    }


def build_zoo_model(model_cls, variant: str, pretrained: bool, checkpoint_filter_fn,
                    out_indices=(0, 1, 2, 3), **kwargs):
    """timm's ``build_model_with_cfg`` as every family calls it: the family's ``checkpoint_filter_fn`` converts
    official files on load, and ``features_only`` uses the model's ``forward_intermediates`` at ``out_indices``
    (the four stages of a hierarchical model; chosen blocks of a plain one)."""
    return build_model_with_cfg(model_cls, variant, pretrained, pretrained_filter_fn=checkpoint_filter_fn,
                                feature_cfg=dict(out_indices=tuple(out_indices), feature_cls='getter'), **kwargs)
