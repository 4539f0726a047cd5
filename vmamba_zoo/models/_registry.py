"""The zoo's own list of model names (timm's registry holds the entrypoints)."""
from timm.models import register_model

_ZOO_MODELS = []


def register_zoo_model(fn):
    """``@register_model`` for timm plus membership in ``vmamba_zoo.list_models()``."""
    _ZOO_MODELS.append(fn.__name__)
    return register_model(fn)


def list_models(pattern: str = '*'):
    """Sorted names of the zoo's registered models, optionally filtered by an fnmatch pattern."""
    import fnmatch
    return sorted(n for n in _ZOO_MODELS if fnmatch.fnmatch(n, pattern))
