"""EfficientVMamba (Pei et al., "EfficientVMamba: Atrous Selective Scan for Light Weight Visual Mamba",
arXiv:2403.09977), from TerryPei/EfficientVMamba (commit 0bc5ee2).

Architecture facts from ``classification/models/vmamba_efficient.py`` (``EfficientVSSM``, ``VSSBlock``, ``SS2D``,
``BiAttn``, ``PatchMerging2D``, ``EfficientScan`` / ``EfficientMerge``), ``classification/lib/models/operations.py``
(``InvertedResidual``, ``SqueezeExcite``), ``classification/models/__init__.py`` (``build_vssm_model``) and
``classification/configs/vssm/vssm_efficient_{tiny,small,base}.yaml``:

* stem: Conv2d(in, C, 4, stride 4, bias) -> LayerNorm (``patch_embed``).
* stages 0 and 1: EVSS blocks. ``x_n = LN(x)``; an SS2D branch with the **atrous** (skip-sampling, step 2) scan,
  z gate, d_state 16, ssm_ratio 2, conv bias, and a convolution branch DWConv3x3 -> BN -> GELU -> Conv1x1 are each
  re-weighted by the *same* channel attention (``BiAttn``: LN -> spatial mean -> Linear(C, C/8) -> GELU ->
  Linear(C/8, C) -> sigmoid) and summed: ``x = x + DP(se(ssm(x_n)) + se(conv(x_n)))``. No MLP (MLP_RATIO 0).
* stages 2 and 3: MobileNetV2 inverted residuals (expand 4, SE ratio 0.125 of the expanded width, ReLU).
* Swin patch merging between stages (``DOWNSAMPLE: v1``); LayerNorm -> avg pool -> Linear head.
* LayerNorm eps 1e-5 everywhere (``EfficientVSSM`` passes ``nn.LayerNorm``).

Layout here (timm style, NHWC between stages): ``stem`` -> ``stages[i]`` (patch merging at the start of stages
1..3, then blocks) -> ``norm`` -> ``head``. Stage i's output is the official ``layers[i]`` output before its
trailing downsample, i.e. what the official detection backbone (``Backbone_EfficientVSSM``) taps.

The EfficientVMamba-S yaml says ``EMBED_DIM: 96``, but the released model is C=64: the training log
``classification/logs/log_efficient_vmamba_small.txt`` prints ``Conv2d(3, 64, kernel_size=(4, 4), ...)`` and
11.274 M params, which the official ``EfficientVSSM`` reproduces only with dims 64 (96 gives 24.757 M).
"""
import re
from typing import Optional, Sequence, Union

import torch
from torch import nn
from timm.layers import ClassifierHead, Mlp
from timm.models import generate_default_cfgs

from ..layers import LayerNorm, PatchEmbed, PatchMerging, ResidualDropPath, SS2D
from ..scans import ScanStrategy, get_scan
from ..layers.backbone import HierarchicalBackbone, Stage, init_linear_trunc_normal
from ._checkpoint import check_state_dict_fits, unwrap_state_dict
from ._registry import build_zoo_model, imagenet_eval_cfg, register_zoo_model

__all__ = ['EfficientVMamba', 'EVSSBlock', 'InvertedResidual', 'ChannelAttention', 'checkpoint_filter_fn']


def resolve_scan(scan: Union[str, ScanStrategy]) -> ScanStrategy:
    """The name ``'atrous'`` means EfficientVMamba's own scan: ``get_scan('atrous', step=2, pad='grid')``, which
    reproduces the official ``EfficientScan`` / ``EfficientMerge`` (zero-padding odd maps to even before
    sub-sampling) at every size. Any other name or a ``ScanStrategy`` instance is used as given."""
    if isinstance(scan, str) and scan == 'atrous':
        return get_scan('atrous', step=2, pad='grid')
    return get_scan(scan)


class ChannelAttention(nn.Module):
    """EfficientVMamba's ``BiAttn`` (channel part only, as released): gate = sigmoid(W2 GELU(W1 mean_hw(LN(x)))),
    returns x * gate. NHWC in/out. Parameter names follow the official module."""

    def __init__(self, dim: int, act_ratio: float = 0.125, norm_eps: float = 1e-5):
        super().__init__()
        reduced = int(dim * act_ratio)
        self.norm = LayerNorm(dim, eps=norm_eps)
        self.global_reduce = nn.Linear(dim, reduced)
        self.act = nn.GELU()
        self.channel_select = nn.Linear(reduced, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.norm(x).mean((1, 2), keepdim=True)
        g = self.channel_select(self.act(self.global_reduce(g)))
        return x * torch.sigmoid(g)


class ConvBranch(nn.Module):
    """The EVSS block's local branch on NHWC maps: DWConv3x3 (bias) -> BN -> GELU -> Conv1x1 (bias)."""

    def __init__(self, dim: int, kernel_size: int = 3):
        super().__init__()
        self.conv_dw = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.bn = nn.BatchNorm2d(dim)
        self.act = nn.GELU()
        self.conv_pw = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2)
        x = self.conv_pw(self.act(self.bn(self.conv_dw(x))))
        return x.permute(0, 2, 3, 1)


class EVSSBlock(nn.Module):
    """Efficient visual state-space block (NHWC): ``x + DP(se(SS2D(LN(x))) + se(conv(LN(x))))``, plus an optional
    MLP sub-block when ``mlp_ratio > 0`` (the official block supports it; all released models use 0)."""

    def __init__(self, dim: int, drop_path: float = 0., d_state: int = 16, ssm_ratio: float = 2.0,
                 dt_rank: Union[int, str] = 'auto', d_conv: int = 3, scan: Union[str, ScanStrategy] = 'atrous',
                 mlp_ratio: float = 0., norm_eps: float = 1e-5):
        super().__init__()
        self.norm = LayerNorm(dim, eps=norm_eps)
        # official SS2D: in_proj(C -> 2E, no bias) with z gate, DWConv with bias, SiLU, out_norm LN(E), y * SiLU(z)
        self.mixer = SS2D(dim, d_state=d_state, ssm_ratio=ssm_ratio, dt_rank=dt_rank, d_conv=d_conv, conv_bias=True,
                          gate=True, scan=resolve_scan(scan), norm_eps=norm_eps)
        self.conv_branch = ConvBranch(dim)
        self.se = ChannelAttention(dim, norm_eps=norm_eps)
        self.drop_path = ResidualDropPath(drop_path)
        if mlp_ratio > 0:
            self.norm2 = LayerNorm(dim, eps=norm_eps)
            self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)
        else:
            self.norm2 = self.mlp = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        x = self.drop_path.add(x, self.se(self.mixer(h)) + self.se(self.conv_branch(h)))
        if self.mlp is not None:
            x = self.drop_path.add(x, self.mlp(self.norm2(x)))
        return x


class SqueezeExcite(nn.Module):
    """SE on NCHW maps: x * sigmoid(expand(ReLU(reduce(avgpool(x))))), 1x1 convs with bias."""

    def __init__(self, dim: int, reduced: int, act_layer=nn.ReLU):
        super().__init__()
        self.conv_reduce = nn.Conv2d(dim, reduced, 1)
        self.act = act_layer()
        self.conv_expand = nn.Conv2d(reduced, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = nn.functional.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.conv_expand(self.act(self.conv_reduce(s))))


class InvertedResidual(nn.Module):
    """MobileNetV2 inverted residual on NCHW maps as EfficientVMamba configures it (``InvertedResidual(C, C,
    expand_ratio=4, se_ratio=0.125)``): 1x1 (no bias) -> BN -> ReLU -> DW3x3 (no bias) -> BN -> ReLU ->
    SE(max(1, int(E * se_ratio))) -> 1x1 (no bias) -> BN, + identity (with drop path). Names as timm's
    ``InvertedResidual`` (conv_pw/bn1, conv_dw/bn2, se, conv_pwl/bn3)."""

    def __init__(self, dim: int, expand_ratio: float = 4.0, se_ratio: float = 0.125, kernel_size: int = 3,
                 drop_path: float = 0., act_layer=nn.ReLU):
        super().__init__()
        mid = int(dim * expand_ratio)
        self.conv_pw = nn.Conv2d(dim, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.act1 = act_layer()
        self.conv_dw = nn.Conv2d(mid, mid, kernel_size, padding=kernel_size // 2, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.act2 = act_layer()
        self.se = SqueezeExcite(mid, max(1, int(mid * se_ratio)), act_layer) if se_ratio > 0 else nn.Identity()
        self.conv_pwl = nn.Conv2d(mid, dim, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(dim)
        self.drop_path = ResidualDropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.act1(self.bn1(self.conv_pw(x)))
        x = self.act2(self.bn2(self.conv_dw(x)))
        x = self.bn3(self.conv_pwl(self.se(x)))
        return self.drop_path.add(shortcut, x)


class EfficientVMambaStage(Stage):
    """Optional patch merging, then either EVSS blocks (NHWC) or inverted residuals (run in NCHW)."""

    def __init__(self, dim: int, out_dim: int, depth: int, drop_path: Sequence[float], downsample: bool,
                 ssm: bool, ir_expand_ratio: float = 4.0, ir_se_ratio: float = 0.125, **block_kwargs):
        if ssm:
            blocks = [EVSSBlock(out_dim, drop_path=drop_path[i], **block_kwargs) for i in range(depth)]
        else:
            blocks = [InvertedResidual(out_dim, ir_expand_ratio, ir_se_ratio, drop_path=drop_path[i])
                      for i in range(depth)]
        super().__init__(PatchMerging(dim, out_dim) if downsample else None, blocks)
        self.channels_first = not ssm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        if self.channels_first:
            return self.run_blocks(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.run_blocks(x)


class EfficientVMamba(HierarchicalBackbone):
    """EfficientVMamba backbone / classifier.

    Args:
        depths: blocks per stage.
        dims: channels of stage 1 (doubled per stage) or one value per stage.
        num_ssm_stages: how many leading stages use EVSS blocks (official: 2); the rest use inverted residuals.
        d_state, ssm_ratio, dt_rank, d_conv: SS2D settings of the EVSS blocks (official 16 / 2.0 / auto / 3).
        mlp_ratio: MLP after each EVSS block (official 0: none).
        ir_expand_ratio, ir_se_ratio: inverted-residual expansion (4) and SE ratio of the expanded width (0.125).
        scan: scan strategy of every SS2D. ``'atrous'`` (default) is the official skip-sampling scan, step 2, with
            the official padding of odd maps (``get_scan('atrous', step=2, pad='grid')``); any other registered
            single-resolution strategy name or ``ScanStrategy`` instance also works (K, and hence the SSM
            parameter shapes, follow it).
    """

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = 'avg',
            depths: Sequence[int] = (2, 2, 4, 2),
            dims: Union[int, Sequence[int]] = 48,
            num_ssm_stages: int = 2,
            d_state: int = 16,
            ssm_ratio: float = 2.0,
            dt_rank: Union[int, str] = 'auto',
            d_conv: int = 3,
            mlp_ratio: float = 0.,
            ir_expand_ratio: float = 4.0,
            ir_se_ratio: float = 0.125,
            scan: Union[str, ScanStrategy] = 'atrous',
            patch_size: int = 4,
            drop_rate: float = 0.,
            drop_path_rate: float = 0.2,
    ):
        super().__init__()
        if isinstance(dims, int):
            dims = [dims * 2 ** i for i in range(len(depths))]
        dims = list(dims)
        if len(dims) != len(depths):
            raise ValueError(f'dims ({dims}) and depths ({list(depths)}) must have one entry per stage')
        if not 0 <= num_ssm_stages <= len(depths):
            raise ValueError(f'num_ssm_stages must be in 0..{len(depths)}, got {num_ssm_stages}')
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.scan = resolve_scan(scan)  # validates the name early (ValueError for an unknown scan)
        self.output_fmt = 'NHWC'
        self.num_features = self.head_hidden_size = dims[-1]
        reduction = patch_size * 2 ** (len(depths) - 1)

        self.stem = PatchEmbed(in_chans, dims[0], patch_size=patch_size, min_input_size=reduction)
        dpr = [x.tolist() for x in torch.linspace(0, drop_path_rate, sum(depths)).split(list(depths))]
        stages = []
        self.feature_info = []
        for i, depth in enumerate(depths):
            stages.append(EfficientVMambaStage(
                dims[max(i - 1, 0)], dims[i], depth, dpr[i], downsample=i > 0, ssm=i < num_ssm_stages,
                ir_expand_ratio=ir_expand_ratio, ir_se_ratio=ir_se_ratio,
                d_state=d_state, ssm_ratio=ssm_ratio, dt_rank=dt_rank, d_conv=d_conv, scan=self.scan,
                mlp_ratio=mlp_ratio,
            ))
            self.feature_info.append(dict(num_chs=dims[i], reduction=patch_size * 2 ** i, module=f'stages.{i}'))
        self.stages = nn.Sequential(*stages)
        self.norm = LayerNorm(self.num_features)
        self.head = ClassifierHead(self.num_features, num_classes, pool_type=global_pool, drop_rate=drop_rate,
                                   input_fmt='NHWC')
        self.apply(init_linear_trunc_normal)


# ---------------------------------------------------------------------------------------------------------------
# Official checkpoint conversion
# ---------------------------------------------------------------------------------------------------------------
# Official keys (module names of EfficientVSSM):
#   patch_embed.{0: conv, 2: LN}
#   layers.{i}.blocks.{j}.{norm, op.*, conv_branch.{0, 1, 3}, se.*, norm2, mlp.*}   EVSS stages
#   layers.{i}.downsample.{norm, reduction}                                        after an EVSS stage
#   layers.{i}.{n}.{conv_pw.{0,1}, conv_dw.{0,1}, se.*, conv_pw2.{0,1}}            IR stages: Sequential(Permute,
#   layers.{i}.{n}.{norm, reduction}                                               *blocks, Permute, downsample)
#   classifier.{norm, head};  outnorm{i} (detection backbone only)
_EVSS_RENAMES = (
    ('op.', 'mixer.'),
    ('conv_branch.0.', 'conv_branch.conv_dw.'),
    ('conv_branch.1.', 'conv_branch.bn.'),
    ('conv_branch.3.', 'conv_branch.conv_pw.'),
)
_IR_RENAMES = (
    ('conv_pw.0.', 'conv_pw.'), ('conv_pw.1.', 'bn1.'),
    ('conv_dw.0.', 'conv_dw.'), ('conv_dw.1.', 'bn2.'),
    ('conv_pw2.0.', 'conv_pwl.'), ('conv_pw2.1.', 'bn3.'),
    ('se.conv_reduce.', 'se.conv_reduce.'), ('se.conv_expand.', 'se.conv_expand.'),
)
_EVSS_KEY = re.compile(r'^layers\.(\d+)\.blocks\.(\d+)\.(.*)$')
_EVSS_DOWN_KEY = re.compile(r'^layers\.(\d+)\.downsample\.(.*)$')
_SEQ_KEY = re.compile(r'^layers\.(\d+)\.(\d+)\.(.*)$')


def _rename_official_key(key: str) -> Optional[str]:
    """Our key for an official one; None for keys that belong to no part of the classifier."""
    if key.startswith('outnorm'):
        return None  # Backbone_EfficientVSSM's per-level norms
    if key.startswith('patch_embed.0.'):
        return 'stem.proj.' + key[len('patch_embed.0.'):]
    if key.startswith('patch_embed.2.'):
        return 'stem.norm.' + key[len('patch_embed.2.'):]
    if key.startswith('classifier.norm.'):
        return 'norm.' + key[len('classifier.norm.'):]
    if key.startswith('classifier.head.'):
        return 'head.fc.' + key[len('classifier.head.'):]
    m = _EVSS_KEY.match(key)
    if m:
        stage, block, rest = m.groups()
        for old, new in _EVSS_RENAMES:
            if rest.startswith(old):
                rest = new + rest[len(old):]
                break
        return f'stages.{stage}.blocks.{block}.{rest}'
    m = _EVSS_DOWN_KEY.match(key)
    if m:
        return f'stages.{int(m.group(1)) + 1}.downsample.{m.group(2)}'
    m = _SEQ_KEY.match(key)
    if m:
        stage, index, rest = int(m.group(1)), int(m.group(2)), m.group(3)
        if rest.startswith(('reduction.', 'norm.')):  # the trailing PatchMerging2D of the Sequential
            return f'stages.{stage + 1}.downsample.{rest}'
        for old, new in _IR_RENAMES:
            if rest.startswith(old):
                return f'stages.{stage}.blocks.{index - 1}.{new}{rest[len(old):]}'  # index 0 is a Permute
    return key  # unknown: reported as unexpected below


def checkpoint_filter_fn(state_dict, model: EfficientVMamba):
    """Convert an official TerryPei/EfficientVMamba checkpoint into this module's keys.

    Accepts the file as saved (weights under 'model', 'state_dict', 'model_ema', 'ema_model' or bare; any number
    of 'module.' prefixes). A checkpoint already in zoo format is returned unchanged. Raises ValueError naming the
    keys when the checkpoint does not fit the model (the classifier excepted: timm's loader adapts or drops it
    when num_classes differs).
    """
    state_dict = unwrap_state_dict(state_dict)
    if 'stem.proj.weight' in state_dict:
        return state_dict
    target = model.state_dict()
    out = {}
    for key, value in state_dict.items():
        new_key = _rename_official_key(key)
        if new_key is not None:
            out[new_key] = value
    check_state_dict_fits(out, target, 'EfficientVMamba')
    return out


def _cfg(url: str = '', **kwargs):
    # Official eval (classification/lib/dataset/transform.py build_val_transforms with the logs'
    # interpolation='bicubic'): Resize(256) + CenterCrop(224) -> crop_pct 0.875, ImageNet mean/std.
    return imagenet_eval_cfg(dict(
        first_conv='stem.proj', license='apache-2.0', paper_ids='arXiv:2403.09977',
        paper_name='EfficientVMamba: Atrous Selective Scan for Light Weight Visual Mamba',
        origin_url='https://github.com/TerryPei/EfficientVMamba'),
        url=url, **kwargs)


# The official weights are on the Hugging Face hub under the author's repos (file names not recorded in the
# official code); load a downloaded file with `pretrained_cfg_overlay=dict(file=...)`; checkpoint_filter_fn
# converts it.
default_cfgs = generate_default_cfgs({
    'efficientvmamba_tiny.in1k': _cfg(notes=('official: huggingface.co/TerryPei/EfficientVMamba-Tiny',)),
    'efficientvmamba_small.in1k': _cfg(notes=('official: huggingface.co/TerryPei/EfficientVMamba-Small',)),
    'efficientvmamba_base.in1k': _cfg(notes=('official: huggingface.co/TerryPei/EfficientVMamba-Base',)),
})


def _create_efficientvmamba(variant: str, pretrained: bool = False, **kwargs) -> EfficientVMamba:
    return build_zoo_model(EfficientVMamba, variant, pretrained, checkpoint_filter_fn, **kwargs)


@register_zoo_model
def efficientvmamba_tiny(pretrained: bool = False, **kwargs) -> EfficientVMamba:
    """EfficientVMamba-T: 6M params, 0.8G FLOPs, 76.5% top-1 (official ``vssm_efficient_tiny.yaml``)."""
    args = dict(depths=(2, 2, 4, 2), dims=48, drop_path_rate=0.2)
    return _create_efficientvmamba('efficientvmamba_tiny', pretrained, **dict(args, **kwargs))


@register_zoo_model
def efficientvmamba_small(pretrained: bool = False, **kwargs) -> EfficientVMamba:
    """EfficientVMamba-S: 11M params, 1.3G FLOPs, 78.7% top-1. C=64 as released (see the module docstring; the
    official ``vssm_efficient_small.yaml`` says 96)."""
    args = dict(depths=(2, 2, 4, 2), dims=64, drop_path_rate=0.2)
    return _create_efficientvmamba('efficientvmamba_small', pretrained, **dict(args, **kwargs))


@register_zoo_model
def efficientvmamba_base(pretrained: bool = False, **kwargs) -> EfficientVMamba:
    """EfficientVMamba-B: 33M params, 4.0G FLOPs, 81.8% top-1 (official ``vssm_efficient_base.yaml``)."""
    args = dict(depths=(2, 2, 9, 2), dims=96, drop_path_rate=0.2)
    return _create_efficientvmamba('efficientvmamba_base', pretrained, **dict(args, **kwargs))
