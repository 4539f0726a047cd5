"""VMamba (Liu et al., "VMamba: Visual State Space Model", NeurIPS 2024), from MzeroMiko/VMamba.

Hierarchical 4-stage backbone of VSS blocks (SS2D mixer with the 4-direction ``cross`` scan + MLP).
Architecture facts from MzeroMiko/VMamba ``classification/models/vmamba.py`` (``VSSM``, ``VSSBlock``, ``SS2Dv0``,
``SS2Dv2``, ``PatchMerging2D``, the builders ``vmamba_{tiny_s1l8,small_s2l15,base_s2l15}``,
``vmamba_{tiny_s2l5,small_s1l20,base_s1l20}`` and ``vanilla_vmamba_{tiny,small,base}``) and
``classification/configs/vssm/vmambav{0,2,2v}_*_224.yaml`` (commit 2ed52ea).

Two architecture generations share the class:

* VMamba v2 (README "VMamba-T/S/B [s*l*]"): conv stem (``PATCHEMBED: v2``), 3x3-conv downsample (``v3``),
  SS2D without z gate (``v05_noz``), d_state 1, MLP ratio 4.
* Vanilla-VMamba (README "Vanilla-VMamba-T/S/B", forward_type ``v0``): 4x4 patch embed (``v1``), Swin patch
  merging (``v1``), z-gated SS2D with d_state 16, ssm_ratio 2, conv bias, no MLP.

Layout here (timm style, NHWC inside the stages): ``stem`` -> ``stages[i]`` (downsample at the start of
stages 1..3, then blocks; the official code keeps it at the end of stages 0..2 -- same computation) -> ``norm``
(per-token LayerNorm, as the official ``classifier.norm`` before pooling) -> ``head`` (avg pool + fc).
"""
import re
from typing import Sequence, Union

import torch
from torch import nn
from timm.layers import ClassifierHead
from timm.models import generate_default_cfgs

from ..layers import ConvDownsample, ConvStem, LayerNorm, PatchEmbed, PatchMerging, VSSBlock
from ..scans import ScanStrategy
from ..layers.backbone import HierarchicalBackbone, Stage, init_linear_trunc_normal
from ._checkpoint import check_state_dict_fits, unwrap_state_dict
from ._registry import build_zoo_model, imagenet_eval_cfg, register_zoo_model

__all__ = ['VMamba', 'checkpoint_filter_fn']


# stem_type: 'conv' = official PATCHEMBED v2 (two 3x3 s2 convs), 'patch' = v1 (4x4 s4 conv + LN).
_STEMS = {'conv': ConvStem, 'patch': PatchEmbed}
# downsample_type: 'conv' = official DOWNSAMPLE v3 (3x3 s2 conv + LN), 'merge' = v1 (Swin PatchMerging2D).
_DOWNSAMPLES = {'conv': ConvDownsample, 'merge': PatchMerging}


class VMambaStage(Stage):
    def __init__(self, dim: int, out_dim: int, depth: int, drop_path: Sequence[float], downsample: bool,
                 downsample_type: str = 'conv', **block_kwargs):
        super().__init__(_DOWNSAMPLES[downsample_type](dim, out_dim) if downsample else None,
                         [VSSBlock(out_dim, drop_path=drop_path[i], **block_kwargs) for i in range(depth)])


class VMamba(HierarchicalBackbone):
    """VMamba backbone / classifier.

    Args:
        depths: blocks per stage.
        dims: channels of stage 1 (doubled per stage) or one value per stage.
        d_state, ssm_ratio, dt_rank, d_conv, conv_bias, gate: SS2D settings (see ``vmamba_zoo.layers.SS2D``).
        mlp_ratio: MLP hidden ratio (0 removes the MLP, as Vanilla-VMamba).
        scan: scan strategy name / instance used by every SS2D (default the paper's ``cross``).
        stem_type: 'conv' (VMamba v2, two stride-2 3x3 convs) or 'patch' (Vanilla-VMamba, 4x4 patch embed).
        downsample_type: 'conv' (VMamba v2, 3x3 stride-2 conv + LN) or 'merge' (Vanilla-VMamba, Swin patch merging).
    """

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = 'avg',
            depths: Sequence[int] = (2, 2, 8, 2),
            dims: Union[int, Sequence[int]] = 96,
            d_state: int = 1,
            ssm_ratio: float = 1.0,
            dt_rank: Union[int, str] = 'auto',
            d_conv: int = 3,
            conv_bias: bool = False,
            gate: bool = False,
            mlp_ratio: float = 4.0,
            scan: Union[str, ScanStrategy] = 'cross',
            drop_rate: float = 0.,
            drop_path_rate: float = 0.2,
            stem_type: str = 'conv',
            downsample_type: str = 'conv',
    ):
        super().__init__()
        if stem_type not in _STEMS:
            raise ValueError(f"stem_type must be one of {sorted(_STEMS)}; got {stem_type!r}")
        if downsample_type not in _DOWNSAMPLES:
            raise ValueError(f"downsample_type must be one of {sorted(_DOWNSAMPLES)}; got {downsample_type!r}")
        if isinstance(dims, int):
            dims = [dims * 2 ** i for i in range(len(depths))]
        dims = list(dims)
        if len(dims) != len(depths):
            raise ValueError(f'dims ({dims}) and depths ({list(depths)}) must have one entry per stage')
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.scan = scan
        self.output_fmt = 'NHWC'
        self.num_features = self.head_hidden_size = dims[-1]
        reduction = 4 * 2 ** (len(depths) - 1)

        self.stem = _STEMS[stem_type](in_chans, dims[0], min_input_size=reduction)
        dpr = [x.tolist() for x in torch.linspace(0, drop_path_rate, sum(depths)).split(list(depths))]
        stages = []
        self.feature_info = []
        for i, depth in enumerate(depths):
            stages.append(VMambaStage(
                dims[max(i - 1, 0)], dims[i], depth, dpr[i], downsample=i > 0, downsample_type=downsample_type,
                mlp_ratio=mlp_ratio, d_state=d_state, ssm_ratio=ssm_ratio, dt_rank=dt_rank, d_conv=d_conv,
                conv_bias=conv_bias, gate=gate, scan=scan,
            ))
            self.feature_info.append(dict(num_chs=dims[i], reduction=4 * 2 ** i, module=f'stages.{i}'))
        self.stages = nn.Sequential(*stages)
        self.norm = LayerNorm(self.num_features)
        self.head = ClassifierHead(self.num_features, num_classes, pool_type=global_pool, drop_rate=drop_rate,
                                   input_fmt='NHWC')
        self.apply(init_linear_trunc_normal)


# Official key -> ours (MzeroMiko/VMamba ``VSSM``: v2 models with channel_first LayerNorm2d / Linear2d, and the
# channel-last v0 "Vanilla" models).
# Names of the first public code (Jan 2024), which the Vanilla-VMamba release checkpoints may use; the official
# ``VSSM._load_from_state_dict`` renames them the same way (prefix match, applied first).
_OLD_KEY_RENAMES = [
    (r'^patch_embed\.proj\.', 'patch_embed.0.'),
    (r'^patch_embed\.norm\.', 'patch_embed.2.'),
    (r'^(layers\.\d+\.blocks\.\d+)\.ln_1\.', r'\1.norm.'),
    (r'^(layers\.\d+\.blocks\.\d+)\.self_attention\.', r'\1.op.'),
    (r'^norm\.', 'classifier.norm.'),
    (r'^head\.', 'classifier.head.'),
]
# index of the official patch_embed nn.Sequential -> our stem submodule, per stem type
_STEM_KEYS = {
    'conv': {0: 'conv1', 2: 'norm1', 5: 'conv2', 7: 'norm2'},  # PATCHEMBED v2
    'patch': {0: 'proj', 2: 'norm'},  # PATCHEMBED v1
}
_KEY_RENAMES = [
    (r'^layers\.(\d+)\.blocks\.(\d+)\.op\.', r'stages.\1.blocks.\2.mixer.'),
    (r'^layers\.(\d+)\.blocks\.', r'stages.\1.blocks.'),
    (r'^classifier\.norm\.', 'norm.'),
    (r'^classifier\.head\.', 'head.fc.'),
]
_STEM_KEY = re.compile(r'^patch_embed\.(\d+)\.(.*)$')
_DOWNSAMPLE_KEY = re.compile(r'^layers\.(\d+)\.downsample\.(\d+)\.(.*)$')  # v3: conv at index 1, LN2d at index 3
_MERGE_KEY = re.compile(r'^layers\.(\d+)\.downsample\.(reduction|norm)\.(.*)$')  # v1: PatchMerging2D


def _rename_official_key(key: str, stem_type: str = 'conv') -> str:
    for pattern, repl in _OLD_KEY_RENAMES:
        key, n = re.subn(pattern, repl, key)
        if n:
            break
    m = _STEM_KEY.match(key)
    if m:
        part = _STEM_KEYS[stem_type].get(int(m.group(1)))
        return f'stem.{part}.{m.group(2)}' if part else key  # unknown index: reported as unexpected
    m = _DOWNSAMPLE_KEY.match(key)
    if m:
        stage, idx, rest = int(m.group(1)), int(m.group(2)), m.group(3)
        part = {1: 'conv', 3: 'norm'}.get(idx)
        if part is None:
            raise ValueError(f'checkpoint mismatch: unexpected downsample key {key!r}')
        return f'stages.{stage + 1}.downsample.{part}.{rest}'
    m = _MERGE_KEY.match(key)
    if m:
        return f'stages.{int(m.group(1)) + 1}.downsample.{m.group(2)}.{m.group(3)}'
    for pattern, repl in _KEY_RENAMES:
        key, n = re.subn(pattern, repl, key)
        if n:
            break
    return key


def checkpoint_filter_fn(state_dict, model: VMamba):
    """Convert an official MzeroMiko/VMamba checkpoint (as saved: weights under 'model', 'state_dict' or bare)
    into this module's keys. A checkpoint already in zoo format is returned unchanged.

    Raises ValueError naming the keys when the checkpoint does not fit the model (other than the classifier,
    which timm's loader resizes or drops when num_classes differs).
    """
    state_dict = unwrap_state_dict(state_dict)
    if any(k.startswith(('stem.', 'stages.')) for k in state_dict):
        return state_dict  # already in zoo format
    stem_type = 'patch' if isinstance(model.stem, PatchEmbed) else 'conv'
    target = model.state_dict()
    out = {}
    for key, value in state_dict.items():
        if key.startswith('outnorm'):
            continue  # detection backbone per-level norms; not part of the classifier
        new_key = _rename_official_key(key, stem_type)
        if new_key in target and value.ndim == 4 and target[new_key].ndim == 2:
            value = value.flatten(1)  # Linear2d weights saved as 1x1 convs
        out[new_key] = value
    check_state_dict_fits(out, target, 'VMamba')
    return out


def _cfg(url: str = '', **kwargs):
    # Official eval: 224x224, crop ratio 0.875 (config.py TEST.CROP), bicubic, ImageNet mean/std.
    return imagenet_eval_cfg(dict(
        first_conv='stem.conv1', license='mit', paper_ids='arXiv:2401.10166',
        paper_name='VMamba: Visual State Space Model', origin_url='https://github.com/MzeroMiko/VMamba'),
        url=url, **kwargs)


# Official weights are GitHub release files of MzeroMiko/VMamba (no hub mirror); timm loads them from a local
# file through `pretrained_cfg_overlay=dict(file=...)` and converts them with checkpoint_filter_fn.
default_cfgs = generate_default_cfgs({
    'vmamba_tiny.in1k': _cfg(notes=('official: releases/download/%23v2cls/vssm1_tiny_0230s_ckpt_epoch_264.pth',)),
    'vmamba_small.in1k': _cfg(notes=('official: releases/download/%23v2cls/vssm_small_0229_ckpt_epoch_222.pth',)),
    'vmamba_base.in1k': _cfg(notes=('official: releases/download/%23v2cls/vssm_base_0229_ckpt_epoch_237.pth',)),
    'vmamba_tiny_s2l5.in1k': _cfg(notes=('official: releases/download/%23v2cls/vssm_tiny_0230_ckpt_epoch_262.pth',)),
    'vmamba_small_s1l20.in1k': _cfg(
        notes=('official: releases/download/%23v2cls/vssm1_small_0229s_ckpt_epoch_240.pth',)),
    'vmamba_base_s1l20.in1k': _cfg(
        notes=('official: releases/download/%23v2cls/vssm1_base_0229s_ckpt_epoch_225.pth',)),
    'vanilla_vmamba_tiny.in1k': _cfg(
        first_conv='stem.proj', notes=('official: releases/download/%23v0cls/vssmtiny_dp01_ckpt_epoch_292.pth',)),
    'vanilla_vmamba_small.in1k': _cfg(
        first_conv='stem.proj', notes=('official: releases/download/%23v0cls/vssmsmall_dp03_ckpt_epoch_238.pth',)),
    'vanilla_vmamba_base.in1k': _cfg(
        first_conv='stem.proj', notes=('official: releases/download/%23v0cls/vssmbase_dp06_ckpt_epoch_241.pth',)),
})


def _create_vmamba(variant: str, pretrained: bool = False, **kwargs) -> VMamba:
    return build_zoo_model(VMamba, variant, pretrained, checkpoint_filter_fn, **kwargs)


@register_zoo_model
def vmamba_tiny(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-T [s1l8]: 30M params, 4.9G FLOPs, 82.6% top-1 (official ``vmambav2v_tiny_224.yaml``)."""
    args = dict(depths=(2, 2, 8, 2), dims=96, d_state=1, ssm_ratio=1.0, mlp_ratio=4.0, drop_path_rate=0.2)
    return _create_vmamba('vmamba_tiny', pretrained, **dict(args, **kwargs))


@register_zoo_model
def vmamba_small(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-S [s2l15]: 50M params, 8.7G FLOPs, 83.6% top-1 (official ``vmambav2_small_224.yaml``)."""
    args = dict(depths=(2, 2, 15, 2), dims=96, d_state=1, ssm_ratio=2.0, mlp_ratio=4.0, drop_path_rate=0.3)
    return _create_vmamba('vmamba_small', pretrained, **dict(args, **kwargs))


@register_zoo_model
def vmamba_base(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-B [s2l15]: 89M params, 15.4G FLOPs, 83.9% top-1 (official ``vmambav2_base_224.yaml``)."""
    args = dict(depths=(2, 2, 15, 2), dims=128, d_state=1, ssm_ratio=2.0, mlp_ratio=4.0, drop_path_rate=0.6)
    return _create_vmamba('vmamba_base', pretrained, **dict(args, **kwargs))


# VMamba v2 with the other published depth / ssm_ratio trade-offs (README "[s2l5]" = ssm_ratio 2, 5 blocks in
# stage 3; "[s1l20]" = ssm_ratio 1, 20 blocks). Official builders of the same names in classification/models/vmamba.py.
@register_zoo_model
def vmamba_tiny_s2l5(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-T [s2l5]: 31M params, 4.9G FLOPs, 82.5% top-1 (official ``vmambav2_tiny_224.yaml``)."""
    args = dict(depths=(2, 2, 5, 2), dims=96, d_state=1, ssm_ratio=2.0, mlp_ratio=4.0, drop_path_rate=0.2)
    return _create_vmamba('vmamba_tiny_s2l5', pretrained, **dict(args, **kwargs))


@register_zoo_model
def vmamba_small_s1l20(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-S [s1l20]: 49M params, 8.6G FLOPs, 83.3% top-1 (official ``vmambav2v_small_224.yaml``)."""
    args = dict(depths=(2, 2, 20, 2), dims=96, d_state=1, ssm_ratio=1.0, mlp_ratio=4.0, drop_path_rate=0.3)
    return _create_vmamba('vmamba_small_s1l20', pretrained, **dict(args, **kwargs))


@register_zoo_model
def vmamba_base_s1l20(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-B [s1l20]: 87M params, 15.2G FLOPs, 83.8% top-1 (official ``vmambav2v_base_224.yaml``)."""
    args = dict(depths=(2, 2, 20, 2), dims=128, d_state=1, ssm_ratio=1.0, mlp_ratio=4.0, drop_path_rate=0.5)
    return _create_vmamba('vmamba_base_s1l20', pretrained, **dict(args, **kwargs))


# Vanilla-VMamba (paper v1/v2 models, official forward_type "v0", configs vmambav0_*_224.yaml). Names as the official
# builders ``vanilla_vmamba_{tiny,small,base}``. SS2Dv0 hard-codes d_conv=3, conv bias, in/out_proj without bias,
# dt_rank ceil(C/16), the out_norm LayerNorm and the SiLU z gate; no MLP (mlp_ratio 0); channel-last LayerNorms.
_VANILLA_ARGS = dict(d_state=16, ssm_ratio=2.0, d_conv=3, conv_bias=True, gate=True, mlp_ratio=0.0,
                     stem_type='patch', downsample_type='merge')


@register_zoo_model
def vanilla_vmamba_tiny(pretrained: bool = False, **kwargs) -> VMamba:
    """Vanilla-VMamba-T: 23M params, 5.6G FLOPs, 82.2% top-1 (official ``vmambav0_tiny_224.yaml``)."""
    args = dict(_VANILLA_ARGS, depths=(2, 2, 9, 2), dims=96, drop_path_rate=0.2)
    return _create_vmamba('vanilla_vmamba_tiny', pretrained, **dict(args, **kwargs))


@register_zoo_model
def vanilla_vmamba_small(pretrained: bool = False, **kwargs) -> VMamba:
    """Vanilla-VMamba-S: 44M params, 11.2G FLOPs, 83.5% top-1 (official ``vmambav0_small_224.yaml``)."""
    args = dict(_VANILLA_ARGS, depths=(2, 2, 27, 2), dims=96, drop_path_rate=0.3)
    return _create_vmamba('vanilla_vmamba_small', pretrained, **dict(args, **kwargs))


@register_zoo_model
def vanilla_vmamba_base(pretrained: bool = False, **kwargs) -> VMamba:
    """Vanilla-VMamba-B: 76M params, 18.0G FLOPs, 83.7% top-1 (official ``vmambav0_base_224.yaml``).

    drop_path_rate 0.6 as the official ``vanilla_vmamba_base()`` builder and the release file name
    (``vssmbase_dp06``); the yaml says 0.5 with 0.6 commented out.
    """
    args = dict(_VANILLA_ARGS, depths=(2, 2, 27, 2), dims=128, drop_path_rate=0.6)
    return _create_vmamba('vanilla_vmamba_base', pretrained, **dict(args, **kwargs))
