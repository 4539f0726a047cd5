"""MSVMamba (Shi et al., "Multi-Scale VMamba: Hierarchy in Hierarchy Visual State Space Model", arXiv:2405.14174,
NeurIPS 2024), from YuHengsss/MSVMamba.

Two generations, one class:

* arXiv v1 models, branch ``master`` (configs ``classification/configs/ms_vssm/vssm_{nano,micro,tiny}_224_ms.yaml``,
  model ``classification/models/vmamba.py`` ``SS2D`` with ``sscore_type='multiscale_4scan_12'``, ``VSSBlock``,
  ``VSSM``; ``classification/models/utils.py`` ``ConvFFN``, ``SEModule``, ``x_selective_scan``):
  4x4 patch embed (``PATCHEMBED: v1``), Swin patch merging (``DOWNSAMPLE: v1``), z-gated multi-scale SS2D with
  ssm_ratio 2 and d_state 1, SE on the SSM output, ConvFFN x2 (pre-norm), no MLP. The per-token ``out_norm`` runs
  on each branch's scan output (inside ``x_selective_scan``); the low-resolution sum is upsampled bilinearly.
* MSVMambav3 (NeurIPS), branch ``v2`` (configs ``classification/configs/msv2/msvmambav3_{tiny,small,base}_224.yaml``,
  ``classification/models/vmamba.py`` ``SS2Dv2`` forward type ``vms`` / ``vms_noz``, ``VSSBlock``, ``VSSM``;
  ``classification/models/csms6s.py`` ``ConvFFN``, ``SEModule``): VMamba-v2 conv stem (``PATCHEMBED: v2``) and
  3x3 stride-2 downsample (``v3``), ssm_ratio 1, no z gate for T/S (``vms_noz``; B keeps it, ``vms``), one
  ``out_norm`` after the branches are fused, the low-resolution sum upsampled with ``mode='nearest'``, parameter
  set 0 on the full-resolution branch, ConvFFN x4 applied post-norm (``norm_layer: ln2d`` makes the official block
  take its ``channel_first`` path ``x + drop_path(norm2(convFFN(x)))``).

The multi-scale scan itself (full-resolution row-major + 3 chained directions on a stride-2 map) is the shared
``multiscale`` strategy (``vmamba_zoo/scans/multiscale.py``). MSVMamba's skeleton is VMamba's (the same stems and
downsamples, stages with the downsample at their start, final LayerNorm, head), so it reuses VMamba's layers and
stage container and only brings its own blocks.
"""
import math
import re
from typing import Sequence, Union

import torch
from torch import nn
from timm.layers import ClassifierHead
from timm.models import generate_default_cfgs

from ..layers import (ConvFFN, LayerNorm, LinearSqueezeExcite, PatchEmbed, ResidualDropPath, init_A_log, init_D,
                      init_dt_projection)
from ..layers.backbone import HierarchicalBackbone, init_linear_trunc_normal
from ..ops import selective_scan
from ..scans import ScanGroup, ScanStrategy, get_scan, merge, scan
from ._checkpoint import check_state_dict_fits, unwrap_state_dict
from ._registry import build_zoo_model, imagenet_eval_cfg, register_zoo_model
from .vmamba import _DOWNSAMPLES, _STEMS, VMambaStage, _rename_official_key

__all__ = ['MSVMamba', 'MultiScaleSS2D', 'MSVSSBlock', 'checkpoint_filter_fn']


def resolve_scan(scan: Union[str, ScanStrategy], upsample_mode: str = 'bilinear',
                 full_res_params_first: bool = False) -> ScanStrategy:
    """The name ``'multiscale'`` means the model's own flavour of it (the two generations differ in upsampling
    and parameter order); any other name or a ``ScanStrategy`` instance is used as given."""
    if isinstance(scan, str) and scan == 'multiscale':
        return get_scan('multiscale', upsample_mode=upsample_mode, full_res_params_first=full_res_params_first)
    return get_scan(scan)


class MultiScaleSS2D(nn.Module):
    """MSVMamba's SS2D on NHWC maps, for the composite ``multiscale`` scan or any single-resolution strategy.

    in_proj -> (z gate split) -> per scan group: depth-wise conv (3x3 on the full map; the strategy's learned 7x7
    stride-2 conv for the low-resolution one) -> SiLU -> scan -> selective scan with the group's parameter sets ->
    merge -> ``fuse`` (upsample + sum) -> SE -> (* SiLU(z)) -> out_proj. ``out_norm`` (LayerNorm over channels)
    runs per branch (``norm_per_branch``, master: on the chained low-resolution sequence before its directions are
    summed, as ``x_selective_scan`` does) or once after the fusion (MSVMambav3).

    A single-resolution strategy (e.g. ``cross``) is one group of K un-chained directions with K parameter sets,
    scanned on the 3x3-conv map (no low-resolution conv).

    Parameter names follow the official module except ``conv2d_low`` (official ``conv2d_b1``) and ``se.fc1/fc2``
    (``se.fc.0/2``): x_proj_weight (P, R + 2N, E), dt_projs_weight (P, E, R), dt_projs_bias (P, E),
    A_logs (P * E, N), Ds (P * E) with P the strategy's parameter sets.
    """

    def __init__(self, dim: int, d_state: int = 1, ssm_ratio: float = 2.0, dt_rank: Union[int, str] = 'auto',
                 d_conv: int = 3, conv_bias: bool = True, gate: bool = True,
                 scan: Union[str, ScanStrategy] = 'multiscale', norm_per_branch: bool = True, se_reduction: int = 8,
                 norm_eps: float = 1e-5, drop: float = 0.):
        super().__init__()
        self.scan_strategy = get_scan(scan)
        if self.scan_strategy.composite:
            self.groups = tuple(self.scan_strategy.groups)
            P = self.scan_strategy.num_param_sets
        else:
            P = self.scan_strategy.num_directions
            self.groups = (ScanGroup(self.scan_strategy, stride=1, chained=False, param_offset=0),)
        self.num_param_sets = P
        self.d_inner = E = int(ssm_ratio * dim)
        self.d_state = N = int(d_state)
        self.dt_rank = R = int(math.ceil(dim / 16) if dt_rank == 'auto' else dt_rank)
        self.gate = gate
        self.norm_per_branch = norm_per_branch

        self.in_proj = nn.Linear(dim, 2 * E if gate else E, bias=False)
        self.act = nn.SiLU()
        self.conv2d = nn.Conv2d(E, E, d_conv, padding=(d_conv - 1) // 2, groups=E, bias=conv_bias)
        if any(g.stride > 1 for g in self.groups):
            spec = self.scan_strategy.downsample  # kernel 7, stride 2, padding 3, depth-wise
            self.conv2d_low = nn.Conv2d(E, E, spec['kernel_size'], stride=spec['stride'], padding=spec['padding'],
                                        groups=E if spec['depthwise'] else 1, bias=conv_bias)
        else:
            self.conv2d_low = None
        bound = 1.0 / math.sqrt(E)  # P stacked nn.Linear(E, R + 2N) inits, as the official x_proj
        self.x_proj_weight = nn.Parameter(torch.empty(P, R + 2 * N, E).uniform_(-bound, bound))
        dt_w, dt_b = init_dt_projection(P, E, R)
        self.dt_projs_weight = nn.Parameter(dt_w)
        self.dt_projs_bias = nn.Parameter(dt_b)
        self.A_logs = nn.Parameter(init_A_log(P, E, N))
        self.Ds = nn.Parameter(init_D(P, E))
        self.out_norm = LayerNorm(E, eps=norm_eps)
        self.se = LinearSqueezeExcite(E, reduction=se_reduction)
        self.out_proj = nn.Linear(E, dim, bias=False)
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()

    def _ssm(self, xs: torch.Tensor, params: slice) -> torch.Tensor:
        """Selective scan of xs (B, P, E, L) with parameter sets ``params`` (P of them) -> (B, P, E, L)."""
        Bsz, P, E, L = xs.shape
        N, R = self.d_state, self.dt_rank
        x_dbl = torch.matmul(self.x_proj_weight[params], xs)  # (B, P, R + 2N, L)
        dts, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=2)
        dts = torch.matmul(self.dt_projs_weight[params], dts)  # (B, P, E, L)
        rows = slice(params.start * E, params.stop * E)
        ys = selective_scan(
            xs.reshape(Bsz, P * E, L), dts.reshape(Bsz, P * E, L), -torch.exp(self.A_logs[rows].float()), Bs, Cs,
            D=self.Ds[rows].float(), delta_bias=self.dt_projs_bias[params].reshape(-1).float(), delta_softplus=True,
        )
        return ys.view(Bsz, P, E, L)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, H, W, dim) -> (B, H, W, dim)."""
        H, W = x.shape[1:3]
        x = self.in_proj(x)
        z = None
        if self.gate:
            x, z = x.chunk(2, dim=-1)
            z = self.act(z)
        x = x.permute(0, 3, 1, 2)  # NCHW view: the depth-wise convs and the scans read the NHWC data in place
        merged = []
        for group in self.groups:
            # the low-resolution conv reads the pre-conv map too (official ``x_b1 = x`` before ``conv2d``)
            xg = self.act((self.conv2d_low if group.stride > 1 else self.conv2d)(x))
            ys = self._ssm(group.pack(scan(xg, group.strategy)), group.param_slice)
            if self.norm_per_branch and group.chained:  # per token of the one chained sequence
                ys = self.out_norm(ys.transpose(-1, -2)).transpose(-1, -2)
            yg = merge(group.unpack(ys), group.strategy, xg.shape[-2:])
            if self.norm_per_branch and not group.chained:
                yg = self.out_norm(yg.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            merged.append(yg)
        y = self.scan_strategy.fuse(merged, (H, W)) if self.scan_strategy.composite else merged[0]
        y = y.permute(0, 2, 3, 1)  # (B, H, W, E)
        if not self.norm_per_branch:
            y = self.out_norm(y)
        y = self.se(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        if z is not None:
            y = y * z
        return self.drop(self.out_proj(y))


class MSVSSBlock(nn.Module):
    """MSVMamba block on NHWC maps: x + DP(MultiScaleSS2D(LN(x))), then the ConvFFN sub-block, pre-norm
    x + DP(FFN(LN2(x))) (master) or post-norm x + DP(LN2(FFN(x))) (MSVMambav3, ``ffn_post_norm``)."""

    def __init__(self, dim: int, drop_path: float = 0., ffn_ratio: int = 2, ffn_post_norm: bool = False,
                 ffn_drop: float = 0., norm_eps: float = 1e-5, **mixer_kwargs):
        super().__init__()
        self.norm = LayerNorm(dim, eps=norm_eps)
        self.mixer = MultiScaleSS2D(dim, norm_eps=norm_eps, **mixer_kwargs)
        self.drop_path = ResidualDropPath(drop_path)
        self.norm2 = LayerNorm(dim, eps=norm_eps)
        self.ffn = ConvFFN(dim, expansion=ffn_ratio, drop=ffn_drop)
        self.ffn_post_norm = ffn_post_norm

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop_path.add(x, self.mixer(self.norm(x)))
        if self.ffn_post_norm:
            return self.drop_path.add(x, self.norm2(self._ffn(x)))
        return self.drop_path.add(x, self._ffn(self.norm2(x)))


class MSVMamba(HierarchicalBackbone):
    """MSVMamba backbone / classifier (NHWC inside the stages; classifier API from ``HierarchicalBackbone``).

    Args:
        depths, dims: blocks per stage; channels of stage 1 (doubled per stage) or one value per stage.
        d_state, ssm_ratio, dt_rank, d_conv, conv_bias, gate: ``MultiScaleSS2D`` settings.
        scan: 'multiscale' (the paper's, in this model's flavour) or any registered single-resolution strategy.
        upsample_mode, full_res_params_first: the flavour of 'multiscale' (see ``vmamba_zoo.scans.multiscale``).
        norm_per_branch: ``out_norm`` per branch (master) or once after the fusion (MSVMambav3).
        se_reduction: SE hidden = d_inner // se_reduction.
        ffn_ratio, ffn_post_norm, ffn_drop: ConvFFN expansion, post-norm (v3) and dropout (``FFN_DROPOUT``).
        stem_type, downsample_type: 'patch' / 'merge' (master: ``PATCHEMBED v1``, ``DOWNSAMPLE v1``) or
            'conv' / 'conv' (MSVMambav3: ``v2`` / ``v3``), the same layers as ``VMamba``.
    """

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = 'avg',
            depths: Sequence[int] = (1, 2, 9, 2),
            dims: Union[int, Sequence[int]] = 96,
            d_state: int = 1,
            ssm_ratio: float = 2.0,
            dt_rank: Union[int, str] = 'auto',
            d_conv: int = 3,
            conv_bias: bool = True,
            gate: bool = True,
            scan: Union[str, ScanStrategy] = 'multiscale',
            upsample_mode: str = 'bilinear',
            full_res_params_first: bool = False,
            norm_per_branch: bool = True,
            se_reduction: int = 8,
            ffn_ratio: int = 2,
            ffn_post_norm: bool = False,
            ffn_drop: float = 0.,
            drop_rate: float = 0.,
            drop_path_rate: float = 0.2,
            stem_type: str = 'patch',
            downsample_type: str = 'merge',
    ):
        super().__init__()
        if stem_type not in _STEMS or downsample_type not in _DOWNSAMPLES:
            raise ValueError(f'stem_type must be one of {sorted(_STEMS)} and downsample_type one of '
                             f'{sorted(_DOWNSAMPLES)}; got {stem_type!r}, {downsample_type!r}')
        dims = [dims * 2 ** i for i in range(len(depths))] if isinstance(dims, int) else list(dims)
        if len(dims) != len(depths):
            raise ValueError(f'dims ({dims}) and depths ({list(depths)}) must have one entry per stage')
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.scan = resolve_scan(scan, upsample_mode, full_res_params_first)
        self.num_features = self.head_hidden_size = dims[-1]
        self.stem = _STEMS[stem_type](in_chans, dims[0], min_input_size=4 * 2 ** (len(depths) - 1))
        block_args = dict(ffn_ratio=ffn_ratio, ffn_post_norm=ffn_post_norm, ffn_drop=ffn_drop, d_state=d_state,
                          ssm_ratio=ssm_ratio, dt_rank=dt_rank, d_conv=d_conv, conv_bias=conv_bias, gate=gate,
                          scan=self.scan, norm_per_branch=norm_per_branch, se_reduction=se_reduction)
        dpr = [x.tolist() for x in torch.linspace(0, drop_path_rate, sum(depths)).split(list(depths))]
        self.stages = nn.Sequential()
        self.feature_info = []
        for i, depth in enumerate(depths):
            # VMamba's stage container (downsample at the start of stages 1..3, then the blocks), filled with ours
            stage = VMambaStage(dims[max(i - 1, 0)], dims[i], 0, [], downsample=i > 0, downsample_type=downsample_type)
            stage.blocks = nn.Sequential(*[MSVSSBlock(dims[i], drop_path=p, **block_args) for p in dpr[i]])
            self.stages.append(stage)
            self.feature_info.append(dict(num_chs=dims[i], reduction=4 * 2 ** i, module=f'stages.{i}'))
        self.norm = LayerNorm(self.num_features)
        self.head = ClassifierHead(self.num_features, num_classes, pool_type=global_pool, drop_rate=drop_rate,
                                   input_fmt='NHWC')
        self.apply(init_linear_trunc_normal)  # official VSSM._init_weights, both branches


# Official block-level names -> ours, applied before VMamba's renames (``op`` -> ``mixer``, ``layers`` -> ``stages``,
# the stem / downsample / classifier tables of ``vmamba._rename_official_key``).
_BLOCK_RENAMES = [
    (re.compile(r'\.op\.conv2d_b1\.'), '.op.conv2d_low.'),
    (re.compile(r'\.op\.se\.fc\.0\.'), '.op.se.fc1.'),
    (re.compile(r'\.op\.se\.fc\.2\.'), '.op.se.fc2.'),
    (re.compile(r'\.convFFN\.'), '.ffn.'),
]


def checkpoint_filter_fn(state_dict, model: MSVMamba):
    """Convert an official YuHengsss/MSVMamba checkpoint (master or v2 branch, as saved: weights under 'model',
    'state_dict' or bare) into this module's keys. A checkpoint already in zoo format is returned unchanged.

    Raises ValueError naming the keys when the checkpoint does not fit the model (other than the classifier,
    which timm's loader resizes or drops when num_classes differs).
    """
    state_dict = unwrap_state_dict(state_dict)
    if any(k.startswith(('stem.', 'stages.')) for k in state_dict):
        return state_dict
    stem_type = 'patch' if isinstance(model.stem, PatchEmbed) else 'conv'
    target = model.state_dict()
    out = {}
    for key, value in state_dict.items():
        for pattern, repl in _BLOCK_RENAMES:
            key = pattern.sub(repl, key)
        key = _rename_official_key(key, stem_type)
        if key in target and value.ndim == 4 and target[key].ndim == 2:
            value = value.flatten(1)  # v2 branch: Linear2d weights may be saved as 1x1 convs
        out[key] = value
    check_state_dict_fits(out, target, 'MSVMamba', hint='a non-default scan')
    return out


def _cfg(url: str = '', **kwargs):
    # Official eval (classification/config.py, both branches): 224x224, TEST.CROP ratio 0.875, bicubic, ImageNet
    # mean/std.
    return imagenet_eval_cfg(dict(
        first_conv='stem.proj', license='mit', paper_ids='arXiv:2405.14174',
        paper_name='Multi-Scale VMamba: Hierarchy in Hierarchy Visual State Space Model',
        origin_url='https://github.com/YuHengsss/MSVMamba'),
        url=url, **kwargs)


# Official weights: Google Drive folders (master README) and the Hugging Face repo YuhengSSS/MSVMamba (v2 README).
# The zoo downloads nothing; timm loads a local file (pretrained_cfg_overlay=dict(file=...)) through
# checkpoint_filter_fn.
_DRIVE = 'https://drive.google.com/drive/folders/'
_HF = 'https://huggingface.co/YuhengSSS/MSVMamba/blob/main/'
default_cfgs = generate_default_cfgs({
    'msvmamba_nano.in1k': _cfg(notes=(f'official: {_DRIVE}1J41w3ApitQhp2O3wHmJoOs4U032uqebK',)),
    'msvmamba_micro.in1k': _cfg(notes=(f'official: {_DRIVE}1jfl2GmuKcUB8sPwRlyHK_wT0MjqgljYk',)),
    'msvmamba_tiny.in1k': _cfg(notes=(f'official: {_DRIVE}1ddNWk89ohcxxMuVEaJ2Y5A6xeBKgA7lU',)),
    'msvmambav3_tiny.in1k': _cfg(first_conv='stem.conv1', notes=(f'official: {_HF}msvmambav3_tiny_224.pth',)),
    'msvmambav3_small.in1k': _cfg(first_conv='stem.conv1', notes=(f'official: {_HF}msvmambav3_small_224.pth',)),
    'msvmambav3_base.in1k': _cfg(first_conv='stem.conv1', notes=(f'official: {_HF}msvmambav3_base_224.pth',)),
})


def _create_msvmamba(variant: str, pretrained: bool = False, **kwargs) -> MSVMamba:
    return build_zoo_model(MSVMamba, variant, pretrained, checkpoint_filter_fn, **kwargs)


# master (arXiv v1): ms_vssm/*.yaml over classification/config.py defaults (SSM_CONV 3 with bias, SSM_RATIO 2,
# MS_STAGE all four stages, MS_SPLIT [1, 3]); every yaml sets FFN_DROPOUT 0 and DROP_PATH_RATE 0.2.
_V1_ARGS = dict(d_state=1, ssm_ratio=2.0, gate=True, ffn_ratio=2, drop_path_rate=0.2,
                stem_type='patch', downsample_type='merge')


@register_zoo_model
def msvmamba_nano(pretrained: bool = False, **kwargs) -> MSVMamba:
    """MSVMamba-Nano: 7M params, 0.9G FLOPs, 77.3% top-1 (official ``vssm_nano_224_ms.yaml``)."""
    args = dict(_V1_ARGS, depths=(1, 2, 5, 2), dims=48)
    return _create_msvmamba('msvmamba_nano', pretrained, **dict(args, **kwargs))


@register_zoo_model
def msvmamba_micro(pretrained: bool = False, **kwargs) -> MSVMamba:
    """MSVMamba-Micro: 12M params, 1.5G FLOPs, 79.8% top-1 (official ``vssm_micro_224_ms.yaml``)."""
    args = dict(_V1_ARGS, depths=(1, 2, 5, 2), dims=64)
    return _create_msvmamba('msvmamba_micro', pretrained, **dict(args, **kwargs))


@register_zoo_model
def msvmamba_tiny(pretrained: bool = False, **kwargs) -> MSVMamba:
    """MSVMamba-Tiny: 33M params, 4.6G FLOPs, 82.8% top-1 (official ``vssm_tiny_224_ms.yaml``)."""
    args = dict(_V1_ARGS, depths=(1, 2, 9, 2), dims=96)
    return _create_msvmamba('msvmamba_tiny', pretrained, **dict(args, **kwargs))


# v2 branch (NeurIPS): msv2/msvmambav3_*_224.yaml over that branch's config.py (SSM_CONV 3 with bias,
# FULL_RES_INDEX 1, CONV_FFN_RATIO 4 from the yamls, ConvFFN dropout 0 = csms6s.ConvFFN's default).
_V3_ARGS = dict(d_state=1, ssm_ratio=1.0, upsample_mode='nearest', full_res_params_first=True,
                norm_per_branch=False, ffn_ratio=4, ffn_post_norm=True, stem_type='conv', downsample_type='conv')


@register_zoo_model
def msvmambav3_tiny(pretrained: bool = False, **kwargs) -> MSVMamba:
    """MSVMambav3-Tiny: 32M params, 5.0G FLOPs, 83.0% top-1 (official ``msvmambav3_tiny_224.yaml``, ``vms_noz``)."""
    args = dict(_V3_ARGS, depths=(2, 2, 9, 2), dims=96, gate=False, drop_path_rate=0.2)
    return _create_msvmamba('msvmambav3_tiny', pretrained, **dict(args, **kwargs))


@register_zoo_model
def msvmambav3_small(pretrained: bool = False, **kwargs) -> MSVMamba:
    """MSVMambav3-Small: 50M params, 8.8G FLOPs, 84.1% top-1 (official ``msvmambav3_small_224.yaml``,
    ``vms_noz``)."""
    args = dict(_V3_ARGS, depths=(2, 3, 20, 2), dims=96, gate=False, drop_path_rate=0.4)
    return _create_msvmamba('msvmambav3_small', pretrained, **dict(args, **kwargs))


@register_zoo_model
def msvmambav3_base(pretrained: bool = False, **kwargs) -> MSVMamba:
    """MSVMambav3-Base: 91M params, 16.3G FLOPs, 84.4% top-1 (official ``msvmambav3_base_224.yaml``, ``vms``:
    the z gate is kept)."""
    args = dict(_V3_ARGS, depths=(2, 4, 18, 2), dims=128, gate=True, drop_path_rate=0.5)
    return _create_msvmamba('msvmambav3_base', pretrained, **dict(args, **kwargs))
