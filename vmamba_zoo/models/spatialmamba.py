"""Spatial-Mamba (Xiao et al., "Spatial-Mamba: Effective Visual State Space Models via Structure-Aware State
Fusion", ICLR 2025), from EdwardChasel/Spatial-Mamba.

Hierarchical 4-stage backbone. Each block: conv positional encoding, pre-norm structure-aware SSM, conv positional
encoding, pre-norm MLP. The SSM runs ONE causal row-major selective scan whose hidden states are laid back on the
2D map and fused by three dilated (1, 3, 5) depth-wise 3x3 convolutions before C reads them out
(``vmamba_zoo.ops.state_fusion``). Stem and downsampling are MLLA's (the layers VSSD uses too).

Architecture facts from EdwardChasel/Spatial-Mamba (commit 71221eb) ``classification/models/spatialmamba.py``
(``StateFusion``, ``StructureAwareSSM``, ``SpatialMambaBlock``, ``SpatialMambaLayer``, ``SpatialMamba``),
``classification/models/utils.py`` (``Stem``, ``DownSampling``, ``SelectiveScanStateFn``),
``classification/models/__init__.py`` and ``classification/configs/spatialmamba/spatialmamba_{tiny,small,base}
.yaml``: d_state 1, expand 2, d_conv 3 (bias), dt_rank ceil(C/16), in/out_proj without bias, LayerNorm eps 1e-5
everywhere, MLP ratio 4 (GELU), fusion kernels and their ``alpha`` initialised to ones.

Layout here (timm style, NHWC inside the stages): ``stem`` -> ``stages[i]`` (downsample at the start of stages
1..3; the official code keeps it at the end of stages 0..2 -- same computation) -> ``norm`` (per-token LayerNorm,
the official ``norm`` before its average pool) -> ``head`` (avg pool + fc).

``scan=``: the paper's scan is ``unidirectional``. Any strategy whose every direction visits every pixel once
(``cross``, ``bidirectional``, ``zigzag``) works: each direction gets its own SSM parameters, its states are fused
on the 2D map, and the directions' outputs are summed (``merge``). Only the default loads official weights.
"""
import math
import re
from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn
from timm.layers import ClassifierHead, Mlp
from timm.models import generate_default_cfgs

from ..layers import (InvertedBottleneckDownsample, LayerNorm, ResidualConvStem, ResidualDropPath, init_A_log, init_D,
                      init_dt_projection)
from ..layers.backbone import HierarchicalBackbone, init_linear_trunc_normal
from ..ops.state_fusion import state_fusion_scan
from ..scans import ScanStrategy, get_scan, merge, scan
from ._checkpoint import check_state_dict_fits, unwrap_state_dict
from ._registry import build_zoo_model, imagenet_eval_cfg, register_zoo_model
from .vmamba import VMambaStage
from .vssd import _rename_official_key as _rename_mlla_key

__all__ = ['SpatialMamba', 'StructureAwareSSM', 'checkpoint_filter_fn']


def resolve_scan(scan_: Union[str, ScanStrategy]) -> ScanStrategy:
    """The strategy, checked to give every direction every pixel exactly once (state fusion needs each pixel's
    state in every direction)."""
    strategy = get_scan(scan_)
    probe = None if strategy.composite else strategy.index(5, 6)
    if probe is None or probe.padded or not probe.complete:
        raise ValueError(f"Spatial-Mamba fuses every direction's states on the full map: scan strategy "
                         f"'{strategy.name}' must visit every pixel once per direction (e.g. 'unidirectional', "
                         "'bidirectional', 'cross', 'zigzag')")
    return strategy


class StructureAwareSSM(nn.Module):
    """The structure-aware state-fusion SSM (official ``StructureAwareSSM``) on NHWC maps.

    in_proj -> (x, z) -> depth-wise 3x3 conv -> SiLU -> K scan orders -> x_proj (dt, B, C) per direction ->
    dt_proj -> ``state_fusion_scan`` (states fused by ``alpha_i * fusion_weight[i]`` at ``dilations[i]``, then
    y = C . fused h + D u) -> merge -> out_norm -> * SiLU(z) -> out_proj.

    Parameters are stacked over the K directions like SS2D's (``x_proj_weight`` (K, R + 2N, E),
    ``dt_projs_weight`` (K, E, R), ``dt_projs_bias`` (K, E), ``A_logs`` (K*E, N), ``Ds`` (K*E)); the fusion kernels
    ``fusion_weight`` (n, E, k, k) and ``fusion_alpha`` (n,) are shared by the directions.
    """

    def __init__(self, dim: int, d_state: int = 1, expand: float = 2.0, dt_rank: Union[int, str] = 'auto',
                 d_conv: int = 3, conv_bias: bool = True, dilations: Sequence[int] = (1, 3, 5),
                 fusion_kernel_size: int = 3, scan: Union[str, ScanStrategy] = 'unidirectional'):
        super().__init__()
        self.scan_strategy = resolve_scan(scan)
        self.k_group = K = self.scan_strategy.num_directions
        self.d_inner = E = int(expand * dim)
        self.d_state = N = int(d_state)
        self.dt_rank = R = int(math.ceil(dim / 16) if dt_rank == 'auto' else dt_rank)
        self.dilations = tuple(int(d) for d in dilations)

        self.in_proj = nn.Linear(dim, 2 * E, bias=False)
        self.conv2d = nn.Conv2d(E, E, d_conv, padding=(d_conv - 1) // 2, groups=E, bias=conv_bias)
        self.act = nn.SiLU()
        bound = 1.0 / math.sqrt(E)  # K stacked nn.Linear(E, R + 2N, bias=False) default init, as the official
        self.x_proj_weight = nn.Parameter(torch.empty(K, R + 2 * N, E).uniform_(-bound, bound))
        dt_w, dt_b = init_dt_projection(K, E, R)
        self.dt_projs_weight = nn.Parameter(dt_w)
        self.dt_projs_bias = nn.Parameter(dt_b)
        self.A_logs = nn.Parameter(init_A_log(K, E, N))
        self.Ds = nn.Parameter(init_D(K, E))
        k = fusion_kernel_size
        self.fusion_weight = nn.Parameter(torch.ones(len(self.dilations), E, k, k))
        self.fusion_alpha = nn.Parameter(torch.ones(len(self.dilations)))
        self.out_norm = LayerNorm(E)
        self.out_proj = nn.Linear(E, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, H, W, dim) -> (B, H, W, dim)."""
        Bsz, H, W, _ = x.shape
        K, E, N, R = self.k_group, self.d_inner, self.d_state, self.dt_rank
        x, z = self.in_proj(x).chunk(2, dim=-1)
        x = self.act(self.conv2d(x.permute(0, 3, 1, 2)))  # (B, E, H, W)
        index = self.scan_strategy.index(H, W, x.device)
        xs = scan(x, self.scan_strategy).reshape(Bsz, K, E, H * W)
        x_dbl = torch.matmul(self.x_proj_weight, xs)  # (B, K, R + 2N, L)
        dts, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=2)
        dts = torch.matmul(self.dt_projs_weight, dts).reshape(Bsz, K * E, H * W)
        weight = self.fusion_alpha.view(-1, 1, 1, 1) * self.fusion_weight  # (n, E, k, k), shared by the K directions
        weight = weight.unsqueeze(1).expand(-1, K, -1, -1, -1).reshape(-1, K * E, *weight.shape[-2:])
        y = state_fusion_scan(
            xs.reshape(Bsz, K * E, H * W), dts, -torch.exp(self.A_logs.float()), Bs, Cs, weight, (H, W),
            D=self.Ds.float(), delta_bias=self.dt_projs_bias.reshape(-1).float(), delta_softplus=True,
            dilations=self.dilations, order=None if index.identity else index.orders,
        )
        y = merge(y.view(Bsz, K, E, H * W), self.scan_strategy, (H, W)).permute(0, 2, 3, 1)
        y = self.out_norm(y.to(x.dtype)) * F.silu(z)
        return self.out_proj(y)


class SpatialMambaBlock(nn.Module):
    """x += cpe1(x); x += DP(SSM(LN(x))); x += cpe2(x); x += DP(MLP(LN(x))) (official ``SpatialMambaBlock``)."""

    def __init__(self, dim: int, drop_path: float = 0., mlp_ratio: float = 4.0, **ssm_kwargs):
        super().__init__()
        self.cpe1 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = LayerNorm(dim)
        self.mixer = StructureAwareSSM(dim, **ssm_kwargs)
        self.drop_path = ResidualDropPath(drop_path)
        self.cpe2 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm2 = LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)

    @staticmethod
    def _pos_enc(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        return conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self._pos_enc(self.cpe1, x)
        x = self.drop_path.add(x, self.mixer(self.norm1(x)))
        x = x + self._pos_enc(self.cpe2, x)
        return self.drop_path.add(x, self.mlp(self.norm2(x)))


class SpatialMamba(HierarchicalBackbone):
    """Spatial-Mamba backbone / classifier (classifier API from ``HierarchicalBackbone``).

    Args:
        depths: blocks per stage.
        dims: channels of stage 1 (doubled per stage) or one value per stage.
        d_state, expand, dt_rank, d_conv: SSM settings (official: 1, 2, 'auto' = ceil(C/16), 3).
        dilations: dilations of the state-fusion kernels (official 1, 3, 5).
        mlp_ratio: MLP hidden ratio.
        scan: scan strategy of every SSM (default the paper's ``unidirectional``; see the module docstring).
        drop_rate: dropout before the classifier (the official ``pos_drop`` after the stem is 0 in every config).
        drop_path_rate: stochastic depth, linear over all blocks.
    """

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = 'avg',
            depths: Sequence[int] = (2, 4, 8, 4),
            dims: Union[int, Sequence[int]] = 64,
            d_state: int = 1,
            expand: float = 2.0,
            dt_rank: Union[int, str] = 'auto',
            d_conv: int = 3,
            dilations: Sequence[int] = (1, 3, 5),
            mlp_ratio: float = 4.0,
            scan: Union[str, ScanStrategy] = 'unidirectional',
            drop_rate: float = 0.,
            drop_path_rate: float = 0.2,
    ):
        super().__init__()
        dims = [dims * 2 ** i for i in range(len(depths))] if isinstance(dims, int) else list(dims)
        if len(dims) != len(depths):
            raise ValueError(f'dims ({dims}) and depths ({list(depths)}) must have one entry per stage')
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.scan = resolve_scan(scan)
        self.num_features = self.head_hidden_size = dims[-1]
        self.stem = ResidualConvStem(in_chans, dims[0], min_input_size=4 * 2 ** (len(depths) - 1))
        block_args = dict(mlp_ratio=mlp_ratio, d_state=d_state, expand=expand, dt_rank=dt_rank, d_conv=d_conv,
                          dilations=dilations, scan=self.scan)
        dpr = [x.tolist() for x in torch.linspace(0, drop_path_rate, sum(depths)).split(list(depths))]
        self.stages = nn.Sequential()
        for i in range(len(depths)):
            # VMamba's stage container (downsample, then blocks, grad checkpointing), filled with this family's
            stage = VMambaStage(dims[i], dims[i], 0, [], downsample=False)
            if i > 0:
                stage.downsample = InvertedBottleneckDownsample(dims[i - 1], dims[i])
            stage.blocks = nn.Sequential(*[SpatialMambaBlock(dims[i], drop_path=p, **block_args) for p in dpr[i]])
            self.stages.append(stage)
        self.feature_info = [dict(num_chs=dims[i], reduction=4 * 2 ** i, module=f'stages.{i}')
                             for i in range(len(depths))]
        self.norm = LayerNorm(self.num_features)
        self.head = ClassifierHead(self.num_features, num_classes, pool_type=global_pool, drop_rate=drop_rate,
                                   input_fmt='NHWC')
        self.apply(init_linear_trunc_normal)  # official SpatialMamba._init_weights


# Official block-level names -> ours; the stem / downsample / stage / head names are MLLA's, renamed as VSSD's.
_BLOCK_RENAMES = [
    (re.compile(r'\.self_attention\.'), '.mixer.'),
    (re.compile(r'\.ln_1\.'), '.norm1.'),
    (re.compile(r'\.ln_2\.'), '.norm2.'),
]
# official StateFusion: one (E, 1, 3, 3) kernel per dilation 1, 3, 5
_FUSION_KERNELS = ('kernel_3', 'kernel_3_1', 'kernel_3_2')
_FUSION_KEY = re.compile(r'^(.*\.mixer)\.state_fusion\.(kernel_3(?:_1|_2)?|alpha)$')


def checkpoint_filter_fn(state_dict, model: SpatialMamba):
    """Convert an official EdwardChasel/Spatial-Mamba checkpoint (as saved: weights under 'model', 'state_dict' or
    bare; the detection backbone's ``outnorm{i}`` are dropped) into this module's keys. A checkpoint already in
    zoo format is returned unchanged. Official training files (``utils/utils.py`` ``save_checkpoint_ema``) hold
    both ``model`` and ``model_ema``; ``model`` is taken, pass ``ckpt['model_ema']`` for the EMA weights.

    Raises ValueError naming the keys when the checkpoint does not fit the model (other than the classifier,
    which timm's loader adapts or drops when num_classes differs).
    """
    state_dict = unwrap_state_dict(state_dict)
    if any(k.startswith(('stem.', 'stages.')) for k in state_dict):
        return state_dict
    target = model.state_dict()
    out, kernels = {}, {}
    for key, value in state_dict.items():
        if key.startswith('outnorm'):
            continue
        for pattern, repl in _BLOCK_RENAMES:
            key = pattern.sub(repl, key)
        key = _rename_mlla_key(key)
        m = _FUSION_KEY.match(key)
        if m and m.group(2) == 'alpha':
            out[m.group(1) + '.fusion_alpha'] = value
        elif m:
            kernels.setdefault(m.group(1), {})[m.group(2)] = value
        elif key in target and value.dim() + 1 == target[key].dim():
            out[key] = value.unsqueeze(0)  # x_proj_weight / dt_projs_*: one direction, stacked as K = 1
        else:
            out[key] = value
    for prefix, parts in kernels.items():
        if sorted(parts) != sorted(_FUSION_KERNELS):
            raise ValueError(f'checkpoint mismatch for Spatial-Mamba: {prefix}.state_fusion has {sorted(parts)}, '
                             f'expected {list(_FUSION_KERNELS)}')
        out[prefix + '.fusion_weight'] = torch.stack([parts[name].flatten(0, 1) for name in _FUSION_KERNELS])
    check_state_dict_fits(out, target, 'Spatial-Mamba', hint='a non-default scan')
    return out


def _cfg(url: str = '', **kwargs):
    # Official eval (classification/config.py, Swin's data pipeline): 224x224, TEST.CROP with crop ratio 0.875,
    # bicubic, ImageNet mean/std. License: Apache-2.0 (LICENSE).
    return imagenet_eval_cfg(dict(
        first_conv='stem.conv1.conv', license='apache-2.0', paper_ids='arXiv:2410.15091',
        paper_name='Spatial-Mamba: Effective Visual State Space Models via Structure-Aware State Fusion',
        origin_url='https://github.com/EdwardChasel/Spatial-Mamba'),
        url=url, **kwargs)


# Official weights are Google Drive files linked from the official README (no hub mirror). The zoo downloads
# nothing: load a downloaded file with pretrained_cfg_overlay=dict(file=...); checkpoint_filter_fn converts it.
default_cfgs = generate_default_cfgs({
    'spatialmamba_tiny.in1k': _cfg(notes=('official: drive.google.com/file/d/19kXoqGSTuKKs4AHbdUSrdKZTwTWenLIW',)),
    'spatialmamba_small.in1k': _cfg(notes=('official: drive.google.com/file/d/1Wb3sYoWLpgmWrmHMYKwdgDwGPZaqM28O',)),
    'spatialmamba_base.in1k': _cfg(notes=('official: drive.google.com/file/d/1k8dHp2QRCOqBSgAi36YkhZp_O8LqOPjM',)),
})


def _create_spatialmamba(variant: str, pretrained: bool = False, **kwargs) -> SpatialMamba:
    return build_zoo_model(SpatialMamba, variant, pretrained, checkpoint_filter_fn, **kwargs)


@register_zoo_model
def spatialmamba_tiny(pretrained: bool = False, **kwargs) -> SpatialMamba:
    """Spatial-Mamba-T: 27M params, 4.5G FLOPs, 83.5% top-1 (official ``spatialmamba_tiny.yaml``)."""
    args = dict(depths=(2, 4, 8, 4), dims=64, drop_path_rate=0.2)
    return _create_spatialmamba('spatialmamba_tiny', pretrained, **dict(args, **kwargs))


@register_zoo_model
def spatialmamba_small(pretrained: bool = False, **kwargs) -> SpatialMamba:
    """Spatial-Mamba-S: 43M params, 7.1G FLOPs, 84.6% top-1 (official ``spatialmamba_small.yaml``)."""
    args = dict(depths=(2, 4, 21, 5), dims=64, drop_path_rate=0.3)
    return _create_spatialmamba('spatialmamba_small', pretrained, **dict(args, **kwargs))


@register_zoo_model
def spatialmamba_base(pretrained: bool = False, **kwargs) -> SpatialMamba:
    """Spatial-Mamba-B: 96M params, 15.8G FLOPs, 85.3% top-1 (official ``spatialmamba_base.yaml``)."""
    args = dict(depths=(2, 4, 21, 5), dims=96, drop_path_rate=0.5)
    return _create_spatialmamba('spatialmamba_base', pretrained, **dict(args, **kwargs))
