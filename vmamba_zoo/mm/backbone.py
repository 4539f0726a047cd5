"""One mmdet / mmseg backbone over any timm-registered zoo model (no second implementation of any family).

``ZooBackbone`` builds ``timm.create_model(model_name, ...)`` and returns the model's ``forward_intermediates``
maps as the tuple of NCHW tensors that FPN / UPerHead consume:

* hierarchical families (every feature level at a different stride: VMamba, EfficientVMamba, MambaOut, ...):
  the stage outputs named by ``out_indices``, each through a fresh per-level LayerNorm2d, as the official
  VMamba / EfficientVMamba detection backbones do (``Backbone_VSSM.outnorm{i}``, MzeroMiko/VMamba
  ``classification/models/vmamba.py``);
* plain families (one stride for every block: Vim, PlainMamba): the outputs of the blocks named by
  ``out_indices`` (default: four evenly spaced ones), then a feature pyramid:
  ``pyramid='simple'`` rescales them to strides 4 / 8 / 16 / 32 with transposed convs and max pools, as Vim's
  segmentation backbone (hustvl/Vim ``seg/backbone/vim.py``, ``fpn1..fpn4``: for patch stride 16 two 2x2
  deconvs with norm + GELU between, one deconv, identity, 2x2 max pool; for stride 8 one deconv, identity, 2x2
  and 4x4 max pools); ``pyramid='none'`` keeps the four stride-16 maps, each through a fresh LayerNorm2d, as
  PlainMamba's UperNet backbone (ChenhongyiYang/PlainMamba
  ``downstream/mmsegmentation/mmseg/models/backbones/plain_mamba_seg.py``, ``norm_layer{i}``).
  ViTDet-style detection (Vim's COCO recipe): ``out_indices=(23,), pyramid='none', out_norm=False,
  feature='residual'`` returns the one stride-16 map VimDet feeds its pyramid; the ``ViTDetSimpleFPN`` neck
  (``vmamba_zoo.mm.neck``) builds the five levels from it.

Each family gets its own registered class (``register_family``) so configs name the family (``VMambaBackbone``,
``VimBackbone``, ...) and a wrong ``model_name`` is caught; the class body is this one.

``init_cfg=dict(type='Pretrained', checkpoint=PATH, prefix=None)`` loads a zoo file (``tools/convert.py``
output, ``.safetensors`` or ``.pth``), an official ImageNet checkpoint as released (converted by the family's
``checkpoint_filter_fn``, which also interpolates position embeddings to the model's ``img_size``), or an
mmdet / mmseg checkpoint of this backbone (``prefix='backbone.'``).
"""
import argparse
import importlib
import logging
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import timm
import torch
from torch import nn
from timm.layers import LayerNorm2d
from timm.models import group_parameters, model_entrypoint

from ..models import list_models
from ..models._registry import find_local_weights, weights_dir

__all__ = ['ZooBackbone', 'SimplePyramid', 'family_of', 'load_checkpoint_file', 'resolve_checkpoint',
           'checkpoint_filter_for']

_log = logging.getLogger(__name__)

try:  # mmengine's BaseModule gives init_cfg / init_weights the way the mm runners call them
    from mmengine.model import BaseModule
except ImportError as e:  # pragma: no cover - vmamba_zoo.mm is only imported with the [mm] extra
    raise ImportError('vmamba_zoo.mm needs mmengine / mmdet / mmsegmentation: run tools/install_mm.sh') from e


def family_of(model_name: str) -> str:
    """The family of a registered model: the module its entrypoint is defined in (``vmamba_zoo.models.vim`` ->
    ``'vim'``; timm's own ``timm.models.mambaout`` -> ``'mambaout'``)."""
    return model_entrypoint(model_name).__module__.rsplit('.', 1)[-1]


def checkpoint_filter_for(model_name: str):
    """The family's ``checkpoint_filter_fn(state_dict, model)`` (zoo module or timm module of the entrypoint)."""
    module = importlib.import_module(model_entrypoint(model_name).__module__)
    fn = getattr(module, 'checkpoint_filter_fn', None)
    if fn is None:
        raise ValueError(f'{module.__name__} has no checkpoint_filter_fn to convert checkpoints for {model_name}')
    return fn


def load_checkpoint_file(path: Union[str, Path]) -> dict:
    """Read a checkpoint from disk: ``.safetensors`` with safetensors, anything else with ``torch.load``.

    ``torch.load`` runs with ``weights_only=True`` (torch's default since 2.6): tensors and plain containers only,
    no code runs on load. ``argparse.Namespace`` is allowed because the official Vim / VMamba / PlainMamba
    training checkpoints store their command line under ``'args'`` / ``'config'``. A file that still needs
    arbitrary pickles (e.g. a full mmengine training checkpoint with its message hub) is refused with a message
    saying how to extract its weights.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'checkpoint not found: {path}')
    if path.suffix == '.safetensors':
        from safetensors.torch import load_file
        return load_file(str(path))
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # torch raises UnpicklingError (a pickle.UnpicklingError subclass) with the global name
        if 'weights_only' not in str(e) and 'Unsupported global' not in str(e):
            raise
        raise ValueError(
            f'{path} holds Python objects besides tensors, so it is not loaded with weights_only=True. If you trust '
            f'the file, save its weights alone, e.g. torch.save(torch.load(f, weights_only=False)["state_dict"], '
            f'out), and point init_cfg at that. ({e.__class__.__name__}: {str(e).splitlines()[0]})') from None


def resolve_checkpoint(checkpoint: Union[str, Path]) -> Path:
    """``'zoo:<model>'`` -> ``<weights dir>/<model>.{safetensors,pth,pt,bin}`` (where ``pretrained=True`` and
    ``tools/convert.py`` look: ``$VMAMBA_ZOO_WEIGHTS`` or ``~/.cache/vmamba_zoo``); other strings are paths
    (``~`` expanded)."""
    checkpoint = str(checkpoint)
    if checkpoint.startswith('zoo:'):
        name = checkpoint[len('zoo:'):]
        path = find_local_weights(name)
        if path is None:
            raise FileNotFoundError(
                f"no weights for {name!r} in {weights_dir()} (vmamba_zoo downloads nothing): put the official "
                f"ImageNet checkpoint there as {name}.pth, or convert it with `python tools/convert.py --model {name} "
                f"--checkpoint FILE`; or set init_cfg.checkpoint to a path, or drop init_cfg to start from scratch")
        return path
    return Path(checkpoint).expanduser()


def _strip_prefix(state_dict: Dict[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    out = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if not out:
        raise ValueError(f"no key of the checkpoint starts with prefix {prefix!r} "
                         f"(first keys: {sorted(state_dict)[:5]})")
    return out


_PYRAMID_NORMS = {'BN': nn.BatchNorm2d, 'SyncBN': nn.SyncBatchNorm, 'LN': LayerNorm2d}


class SimplePyramid(nn.Module):
    """Rescale same-stride maps of a plain backbone to strides 4 / 8 / 16 / 32 (hustvl/Vim ``fpn1..fpn4``):
    a x4 upsampling is deconv -> norm -> GELU -> deconv, x2 one deconv, x1 identity, /2 and /4 max pools."""

    def __init__(self, dim: int, in_stride: int, out_strides: Sequence[int] = (4, 8, 16, 32),
                 norm_cfg: Optional[dict] = None):
        super().__init__()
        self.branches = nn.ModuleList()
        for stride in out_strides:
            if in_stride % stride == 0:
                factor = in_stride // stride
                if factor not in (1, 2, 4):
                    raise ValueError(f'SimplePyramid upsamples by 1, 2 or 4; stride {in_stride} -> {stride}')
                self.branches.append(self._upsample(dim, factor, norm_cfg))
            elif stride % in_stride == 0:
                factor = stride // in_stride
                self.branches.append(nn.MaxPool2d(factor, factor))
            else:
                raise ValueError(f'SimplePyramid cannot map stride {in_stride} to {stride}')

    @staticmethod
    def _upsample(dim: int, factor: int, norm_cfg: Optional[dict]) -> nn.Module:
        if factor == 1:
            return nn.Identity()
        if factor == 2:
            return nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2)
        norm_type = (norm_cfg or {}).get('type', 'BN')  # SyncBN in the paper recipes, BN by default
        if norm_type not in _PYRAMID_NORMS:
            raise ValueError(f'SimplePyramid norm_cfg type must be one of {sorted(_PYRAMID_NORMS)}; got {norm_type!r}')
        norm = _PYRAMID_NORMS[norm_type](dim)
        return nn.Sequential(nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2), norm, nn.GELU(),
                             nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2))

    def forward(self, feats: Sequence[torch.Tensor]):
        if len(feats) == 1:  # one block's output feeds every level (hustvl/Vim: len(features) == 1)
            feats = list(feats) * len(self.branches)
        if len(feats) != len(self.branches):
            raise ValueError(f'SimplePyramid has {len(self.branches)} levels but got {len(feats)} maps')
        return [branch(f) for branch, f in zip(self.branches, feats)]


class ZooBackbone(BaseModule):
    """A zoo model as an mmdet / mmseg backbone (see the module docstring).

    Args:
        model_name: a registered model of this class's family (``vmamba_zoo.list_models()``).
        out_indices: stages (hierarchical) or blocks (plain) whose outputs are returned. Default: all 4 stages;
            for plain models 4 evenly spaced blocks (Vim / PlainMamba UperNet: (5, 11, 17, 23) of 24).
        frozen_stages: freeze the stem and the first ``frozen_stages`` stages (hierarchical) / blocks (plain);
            -1 freezes nothing, 0 only the stem. Frozen parts stay in eval mode.
        drop_path_rate: stochastic depth of the model (None: the model's own default).
        with_cp: gradient checkpointing (``set_grad_checkpointing``).
        out_norm: per-level LayerNorm2d on the returned maps (default: True for hierarchical models and for
            ``pyramid='none'``, False for ``pyramid='simple'``, as the official backbones).
        pyramid: plain models only: 'simple' (strides 4/8/16/32, Vim) or 'none' (one stride, PlainMamba UperNet).
        norm_cfg: norm of the x4 pyramid branch (default BN; the paper recipes use SyncBN).
        model_kwargs: extra ``timm.create_model`` arguments (e.g. ``img_size=512`` for Vim / PlainMamba, which
            fixes the position-embedding grid pretrained weights are interpolated to).
        feature: what a taken block returns. 'block' (default): the block's output (for Vim the mixer output, as
            Vim's segmentation backbone). 'residual' (Vim only): the residual stream with the block's output added
            and no norm, i.e. what VimDet hands to ViTDet's pyramid (hustvl/Vim
            ``det/detectron2/modeling/backbone/vim.py``, ``last_layer_process='add'``).
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH, prefix=None)`` (see the module docstring).
    """
    family: str = ''  # set per registered subclass by ``register_family``

    def __init__(self, model_name: str, out_indices: Optional[Sequence[int]] = None, frozen_stages: int = -1,
                 drop_path_rate: Optional[float] = None, with_cp: bool = False, out_norm: Optional[bool] = None,
                 pyramid: str = 'simple', norm_cfg: Optional[dict] = None, model_kwargs: Optional[dict] = None,
                 feature: str = 'block', init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        known = [n for n in list_models() if family_of(n) == self.family] if self.family else list_models()
        if model_name not in known:
            raise ValueError(f'{type(self).__name__}: unknown model_name {model_name!r}; '
                             f'{self.family or "zoo"} models: {known}')
        if pyramid not in ('simple', 'none'):
            raise ValueError(f"pyramid must be 'simple' or 'none'; got {pyramid!r}")
        if feature not in ('block', 'residual'):
            raise ValueError(f"feature must be 'block' or 'residual'; got {feature!r}")
        if feature == 'residual' and family_of(model_name) != 'vim':
            raise ValueError(f"feature='residual' is for Vim models (VimDet's last_layer_process='add'); "
                             f"got {model_name!r}")
        self.feature = feature
        self.model_name = model_name
        self.model_kwargs = dict(model_kwargs or {})
        if drop_path_rate is not None:
            self.model_kwargs['drop_path_rate'] = drop_path_rate
        self.model = timm.create_model(model_name, pretrained=False, **self.model_kwargs)

        info = self.model.feature_info
        info = info.get_dicts() if hasattr(info, 'get_dicts') else list(info)
        reductions = [d['reduction'] for d in info]
        self.is_plain = len(set(reductions)) == 1
        if out_indices is None:
            n = len(info)
            out_indices = tuple(range(n)) if not self.is_plain else tuple(n * (i + 1) // 4 - 1 for i in range(4))
        out_indices = tuple(int(i) % len(info) if int(i) < 0 else int(i) for i in out_indices)
        bad = [i for i in out_indices if not 0 <= i < len(info)]
        if bad or len(set(out_indices)) != len(out_indices) or list(out_indices) != sorted(out_indices):
            raise ValueError(f'out_indices {tuple(out_indices)} must be increasing, distinct, in 0..{len(info) - 1} '
                             f'({"blocks" if self.is_plain else "stages"} of {model_name})')
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        # Coarse groups (stem, then one group per stage / block), computed before pruning changes nothing here:
        # used to freeze stages by name, for every family alike.
        self._groups = list(group_parameters(self.model, self.model.group_matcher(coarse=True)).values())
        self.model.prune_intermediate_layers(list(out_indices), prune_norm=True, prune_head=True)
        if feature == 'residual' and not isinstance(getattr(self.model, 'norm', None), nn.Identity):
            raise RuntimeError(f"feature='residual' needs {model_name}'s final norm pruned to an Identity")
        if with_cp:
            self.model.set_grad_checkpointing(True)

        channels = [info[i]['num_chs'] for i in out_indices]
        self.pyramid = None
        if self.is_plain and pyramid == 'simple':
            if len(out_indices) not in (1, 4):
                raise ValueError(f"pyramid='simple' needs 1 or 4 out_indices; got {out_indices}")
            self.pyramid = SimplePyramid(channels[0], reductions[0], norm_cfg=norm_cfg)
            channels = [channels[0]] * 4
        if out_norm is None:
            out_norm = not (self.is_plain and pyramid == 'simple')
        self.out_norms = nn.ModuleList([LayerNorm2d(c) for c in channels[:len(out_indices)]]) if out_norm else None
        self.out_channels = channels
        self.out_strides = [4, 8, 16, 32] if self.pyramid is not None else [reductions[i] for i in out_indices]
        self._freeze()

    # -- freezing --------------------------------------------------------------------------------------------
    def _frozen_params(self):
        if self.frozen_stages < 0:
            return []
        names = [n for group in self._groups[:self.frozen_stages + 1] for n in group]
        params = dict(self.model.named_parameters())
        return [params[n] for n in names if n in params]

    def _freeze(self):
        for p in self._frozen_params():
            p.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.frozen_stages >= 0:
            # frozen parts keep their BN statistics: every module whose parameters are all frozen goes to eval
            frozen = {id(p) for p in self._frozen_params()}
            for m in self.model.modules():
                own = list(m.parameters(recurse=True))
                if own and all(id(p) in frozen for p in own):
                    m.eval()
        return self

    # -- weights ---------------------------------------------------------------------------------------------
    def init_weights(self):
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            self.load_pretrained(cfg['checkpoint'], prefix=cfg.get('prefix'))
            self._is_init = True
            return
        super().init_weights()

    def load_pretrained(self, checkpoint: Union[str, Path], prefix: Optional[str] = None):
        """Load a zoo / official / mm checkpoint into ``self.model`` (see the module docstring); returns the
        (missing, unexpected) keys of the load, which are logged. The per-level norms and the pyramid are new
        modules and stay initialised as built."""
        state_dict = load_checkpoint_file(resolve_checkpoint(checkpoint))
        for wrapper in ('state_dict', 'model', 'module'):
            if isinstance(state_dict.get(wrapper), dict) and prefix is not None:
                state_dict = state_dict[wrapper]
                break
        if prefix:
            state_dict = _strip_prefix(state_dict, prefix)
        if prefix and any(k.startswith('model.') for k in state_dict):
            # an mm checkpoint of this very wrapper: keys are ours already
            own = {k[len('model.'):]: v for k, v in state_dict.items() if k.startswith('model.')}
            missing, unexpected = self.model.load_state_dict(own, strict=False)
            extra = {k: v for k, v in state_dict.items() if not k.startswith('model.')}
            if extra:
                super().load_state_dict(extra, strict=False)
        else:
            # The family's converter checks the file against the full classifier (head and final norm included),
            # so it runs against an unpruned reference model, then the pruned model takes what it has.
            reference = timm.create_model(self.model_name, pretrained=False, **self.model_kwargs)
            converted = checkpoint_filter_for(self.model_name)(state_dict, reference)
            del reference
            missing, unexpected = self.model.load_state_dict(converted, strict=False)
        unexpected = [k for k in unexpected if not k.startswith(('head', 'norm.', 'fc_norm'))]
        if missing or unexpected:
            _log.warning('%s: loaded %s with missing keys %s, unexpected keys %s', type(self).__name__,
                         checkpoint, missing[:10], unexpected[:10])
        else:
            _log.info('%s: loaded %s', type(self).__name__, checkpoint)
        self._freeze()
        return missing, unexpected

    # -- forward ---------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor):
        # Vim's forward_intermediates(norm=True) gives norm(residual + block output); the final norm is pruned
        # (an Identity), so that is residual + block output, unnormalised: feature='residual'.
        feats = self.model.forward_intermediates(x, indices=list(self.out_indices), intermediates_only=True,
                                                 output_fmt='NCHW', **({'norm': True} if self.feature == 'residual'
                                                                       else {}))
        if self.out_norms is not None:
            feats = [norm(f) for norm, f in zip(self.out_norms, feats)]
        if self.pyramid is not None:
            feats = self.pyramid(feats)
        return tuple(feats)
