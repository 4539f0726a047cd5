"""VSSD (Shi et al., "VSSD: Vision Mamba with Non-Causal State Space Duality", arXiv:2407.18559), from
YuHengsss/VSSD.

Hierarchical 4-stage backbone (MLLA layout). Each block: x += DWConv3x3(x); x += DP(mixer(LN(x)));
x += DWConv3x3(x); x += DP(MLP(LN(x))). Stages 0-2 mix with the non-causal SSD (``vmamba_zoo.ops.nc_ssd``: Mamba2's
SSD without the causal mask, one global state per image read by every token), the last stage with standard
multi-head self-attention (the paper's hybrid design, ``ATTN_TYPES: [mamba2, mamba2, mamba2, standard]``).

Architecture facts from YuHengsss/VSSD (commit 87b753b) ``classification/models/mamba2.py`` (``VMAMBA2``,
``VMAMBA2Block``, ``Mamba2`` with ``linear_attn_duality=True``, ``StandardAttention``),
``classification/models/mamba_util.py`` (``Stem``, ``PatchMerging``, ``Mlp``), ``classification/config.py``
(``MODEL.VMAMBA2`` defaults) and ``classification/configs/vssd/vssd_{micro,tiny,small,base}_e300.yaml``.

No scan order: NC-SSD sums over all tokens, so it is the same for every flatten order (the paper's point: the
multi-scan of a non-causal SSD collapses to one global state; ``tests/ops/test_nc_ssd.py`` checks this for every
registered scan strategy). VSSD therefore has no ``scan=`` choice (passing one raises a ValueError that says
why); the official configs never scan either (``BIDIRECTION: False``, the causal Triton path unused).

Layout here (timm style, NHWC inside the stages): ``stem`` -> ``stages[i]`` (downsample at the start of stages
1..3; the official code keeps it at the end of stages 0..2 -- same computation) -> ``norm`` -> ``head``.
"""
import re
from typing import Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from timm.layers import ClassifierHead, Mlp
from timm.models import generate_default_cfgs

from ..layers import (Attention, InvertedBottleneckDownsample, LayerNorm, ResidualConvStem, ResidualDropPath,
                      init_dt_projection)
from ..layers.backbone import HierarchicalBackbone, Stage, init_linear_trunc_normal
from ..ops.nc_ssd import nc_ssd
from ._checkpoint import check_state_dict_fits, unwrap_state_dict
from ._registry import build_zoo_model, imagenet_eval_cfg, register_zoo_model

__all__ = ['VSSD', 'NonCausalSSDMixer', 'VSSDBlock', 'checkpoint_filter_fn']


class NonCausalSSDMixer(nn.Module):
    """VSSD's NC-SSD token mixer on NHWC maps (the official ``Mamba2`` with ``linear_attn_duality=True``).

    in_proj (no bias) -> split z | xBC | dt -> depth-wise ``d_conv`` x ``d_conv`` conv + SiLU on xBC -> split x | B | C
    -> ``nc_ssd`` with dt = softplus(dt + dt_bias), A = exp(A_log) (``positive_dA``, the official
    ``SSD_POSITIVE_DA: True``; False gives -exp(A_log)) -> LayerNorm(d_inner) -> * z (no activation on z) ->
    out_proj (no bias). Parameter names are the official ones.

    Args:
        dim: channels in and out.
        num_heads: SSD heads; headdim = expand * dim / num_heads (official ``headdim=dim*ssd_expansion//num_heads``).
        d_state: state size N (official ``D_STATE``: 64, Micro 48).
        expand: d_inner = expand * dim (``SSD_EXPANSION`` 2).
        ngroups: B/C groups (``SSD_NGROUPS`` 1); head h reads group h % ngroups.
    """

    def __init__(self, dim: int, num_heads: int, d_state: int = 64, expand: int = 2, ngroups: int = 1,
                 d_conv: int = 3, conv_bias: bool = True, positive_dA: bool = True,
                 A_init_range: Tuple[float, float] = (1., 16.)):
        super().__init__()
        self.d_inner = int(expand * dim)
        if self.d_inner % num_heads or num_heads % ngroups:
            raise ValueError(f'NonCausalSSDMixer: d_inner={self.d_inner} must split into num_heads={num_heads} '
                             f'heads and the heads into ngroups={ngroups} groups')
        self.nheads, self.headdim = num_heads, self.d_inner // num_heads
        self.ngroups, self.d_state = ngroups, d_state
        self.positive_dA = positive_dA
        conv_dim = self.d_inner + 2 * ngroups * d_state
        self.in_proj = nn.Linear(dim, self.d_inner + conv_dim + num_heads, bias=False)  # z, xBC, dt
        self.conv2d = nn.Conv2d(conv_dim, conv_dim, d_conv, padding=(d_conv - 1) // 2, groups=conv_dim,
                                bias=conv_bias)
        self.act = nn.SiLU()
        # Mamba2 init (official Mamba2.__init__): dt log-uniform in [1e-3, 0.1] stored as softplus^-1,
        # A ~ U(A_init_range) stored as log, D = 1
        self.dt_bias = nn.Parameter(init_dt_projection(1, num_heads, 1)[1][0])
        self.A_log = nn.Parameter(torch.empty(num_heads).uniform_(*A_init_range).log())
        self.D = nn.Parameter(torch.ones(num_heads))
        self.norm = LayerNorm(self.d_inner)
        self.out_proj = nn.Linear(self.d_inner, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, _ = x.shape
        length = height * width
        z, xBC, dt = self.in_proj(x).split([self.d_inner, self.conv2d.in_channels, self.nheads], dim=-1)
        dt = F.softplus(dt + self.dt_bias)
        xBC = self.act(self.conv2d(xBC.permute(0, 3, 1, 2))).permute(0, 2, 3, 1)
        n = self.ngroups * self.d_state
        xs, B, C = xBC.split([self.d_inner, n, n], dim=-1)
        A = self.A_log.exp() if self.positive_dA else -self.A_log.exp()
        y = nc_ssd(
            xs.reshape(batch, length, self.nheads, self.headdim),
            dt.reshape(batch, length, self.nheads),
            A,
            B.reshape(batch, length, self.ngroups, self.d_state),
            C.reshape(batch, length, self.ngroups, self.d_state),
            self.D,
        )
        y = self.norm(y.reshape(batch, height, width, self.d_inner)) * z
        return self.out_proj(y)


class VSSDBlock(nn.Module):
    """VSSD block on NHWC maps (official ``VMAMBA2Block``): conv positional encoding, pre-norm mixer, conv
    positional encoding, pre-norm MLP; one drop-path rate for both branches.

    ``mixer='nc_ssd'`` (stages 0-2) or ``'attention'`` (the last stage; timm ``Attention`` with the official
    ``StandardAttention`` layout: heads = num_heads, head_dim = dim / num_heads, bias-free qkv, out bias).
    """

    def __init__(self, dim: int, num_heads: int, mixer: str = 'nc_ssd', mlp_ratio: float = 4.0,
                 drop_path: float = 0., drop: float = 0., **ssd_kwargs):
        super().__init__()
        self.cpe1 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = LayerNorm(dim)
        if mixer == 'nc_ssd':
            self.mixer = NonCausalSSDMixer(dim, num_heads, **ssd_kwargs)
        elif mixer == 'attention':
            self.mixer = Attention(dim, num_heads=num_heads, qkv_bias=False, proj_bias=True, attn_drop=drop)
        else:
            raise ValueError(f"VSSDBlock: mixer must be 'nc_ssd' or 'attention'; got {mixer!r}")
        self.mixer_on_tokens = mixer == 'attention'
        self.drop_path = ResidualDropPath(drop_path)
        self.cpe2 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm2 = LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, drop=drop)

    def _mix(self, x: torch.Tensor) -> torch.Tensor:
        if self.mixer_on_tokens:
            return self.mixer(x.flatten(1, 2)).reshape(x.shape)
        return self.mixer(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.cpe1(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        x = self.drop_path.add(x, self._mix(self.norm1(x)))
        x = x + self.cpe2(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.drop_path.add(x, self.mlp(self.norm2(x)))


class VSSDStage(Stage):
    def __init__(self, dim: int, out_dim: int, depth: int, drop_path: Sequence[float], downsample: bool,
                 **block_kwargs):
        super().__init__(InvertedBottleneckDownsample(dim, out_dim) if downsample else None,
                         [VSSDBlock(out_dim, drop_path=drop_path[i], **block_kwargs) for i in range(depth)])


class VSSD(HierarchicalBackbone):
    """VSSD backbone / classifier (the classifier / features API comes from ``HierarchicalBackbone``).

    Args:
        depths: blocks per stage.
        dims: channels of stage 1 (doubled per stage) or one value per stage.
        num_heads: heads per stage (NC-SSD heads in the SSD stages, attention heads in the attention stages).
        mixers: per stage 'nc_ssd' or 'attention' (official ``ATTN_TYPES``, 'mamba2' / 'standard').
        d_state, ssd_expand, ssd_ngroups, positive_dA: NC-SSD settings (see ``NonCausalSSDMixer``).
        mlp_ratio: MLP hidden ratio.
        drop_path_rate: stochastic depth, linear over all blocks (the official builder reads
            ``MODEL.VMAMBA2.DROP_PATH_RATE``, default 0.2, so Micro trains with 0.2 although its yaml sets
            ``MODEL.DROP_PATH_RATE: 0.1``).
        scan: accepted for the zoo's common API only as None: a scan strategy raises ValueError (NC-SSD is
            order-free, see the module docstring).
    """

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = 'avg',
            depths: Sequence[int] = (2, 4, 8, 4),
            dims: Union[int, Sequence[int]] = 64,
            num_heads: Sequence[int] = (2, 4, 8, 16),
            mixers: Sequence[str] = ('nc_ssd', 'nc_ssd', 'nc_ssd', 'attention'),
            d_state: int = 64,
            ssd_expand: int = 2,
            ssd_ngroups: int = 1,
            positive_dA: bool = True,
            mlp_ratio: float = 4.0,
            drop_rate: float = 0.,
            drop_path_rate: float = 0.2,
            scan: None = None,
    ):
        super().__init__()
        if scan is not None:
            raise ValueError(
                f"VSSD has no scan order to choose (scan={scan!r}): its non-causal SSD sums over all tokens at once, "
                "so every flatten order gives the same result; see vmamba_zoo.models.vssd")
        if isinstance(dims, int):
            dims = [dims * 2 ** i for i in range(len(depths))]
        dims = list(dims)
        if not len(dims) == len(depths) == len(num_heads) == len(mixers):
            raise ValueError(f'dims ({dims}), depths ({list(depths)}), num_heads ({list(num_heads)}) and mixers '
                             f'({list(mixers)}) must have one entry per stage')
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.num_features = self.head_hidden_size = dims[-1]
        reduction = 4 * 2 ** (len(depths) - 1)

        self.stem = ResidualConvStem(in_chans, dims[0], min_input_size=reduction)
        # on the CPU whatever the default device (models built on 'meta' for shape checks)
        dpr = [x.tolist() for x in torch.linspace(0, drop_path_rate, sum(depths), device='cpu').split(list(depths))]
        stages = []
        self.feature_info = []
        for i, depth in enumerate(depths):
            ssd_kwargs = dict(d_state=d_state, expand=ssd_expand, ngroups=ssd_ngroups, positive_dA=positive_dA)
            stages.append(VSSDStage(
                dims[max(i - 1, 0)], dims[i], depth, dpr[i], downsample=i > 0, num_heads=num_heads[i],
                mixer=mixers[i], mlp_ratio=mlp_ratio, drop=drop_rate,
                **(ssd_kwargs if mixers[i] == 'nc_ssd' else {}),
            ))
            self.feature_info.append(dict(num_chs=dims[i], reduction=4 * 2 ** i, module=f'stages.{i}'))
        self.stages = nn.Sequential(*stages)
        self.norm = LayerNorm(self.num_features)
        self.head = ClassifierHead(self.num_features, num_classes, pool_type=global_pool, drop_rate=drop_rate,
                                   input_fmt='NHWC')
        # official VMAMBA2._init_weights: Linear trunc-normal(0.02) with zero bias, LayerNorm (1, 0);
        # dt_bias / A_log / D keep their Mamba2 init, convs PyTorch's default
        self.apply(init_linear_trunc_normal)

    @torch.jit.ignore
    def no_weight_decay(self):
        # dt_bias, A_log and D are marked ``_no_weight_decay`` in the official Mamba2
        return {name for name, _ in self.named_parameters() if name.endswith(('.dt_bias', '.A_log', '.D'))}


# Official key -> ours (YuHengsss/VSSD ``VMAMBA2``; module names in mamba2.py / mamba_util.py).
_DOWNSAMPLE_PARTS = {'0.conv': 'expand', '1.conv': 'dw', '2.conv': 'project.conv', '2.norm': 'project.bn'}
_DOWNSAMPLE_KEY = re.compile(r'^layers\.(\d+)\.downsample\.conv\.(\d\.(?:conv|norm))\.(.*)$')
_KEY_RENAMES = [
    (r'^patch_embed\.(.*)\.norm\.', r'stem.\1.bn.'),  # ConvLayer.norm (BatchNorm) -> ConvNormAct.bn
    (r'^patch_embed\.', 'stem.'),
    (r'^layers\.(\d+)\.blocks\.(\d+)\.attn\.to_qkv\.', r'stages.\1.blocks.\2.mixer.qkv.'),
    (r'^layers\.(\d+)\.blocks\.(\d+)\.attn\.to_out\.', r'stages.\1.blocks.\2.mixer.proj.'),
    (r'^layers\.(\d+)\.blocks\.(\d+)\.attn\.', r'stages.\1.blocks.\2.mixer.'),
    (r'^layers\.(\d+)\.blocks\.', r'stages.\1.blocks.'),
    (r'^head\.', 'head.fc.'),
]


def _rename_official_key(key: str) -> str:
    m = _DOWNSAMPLE_KEY.match(key)
    if m:
        part = _DOWNSAMPLE_PARTS.get(m.group(2))
        return f'stages.{int(m.group(1)) + 1}.downsample.{part}.{m.group(3)}' if part else key
    for pattern, repl in _KEY_RENAMES:
        key, n = re.subn(pattern, repl, key)
        if n:
            return key
    return key  # 'norm.*' is the same on both sides; anything else is reported as unexpected


def checkpoint_filter_fn(state_dict, model: VSSD):
    """Convert an official YuHengsss/VSSD classification checkpoint (as saved: weights under 'model',
    'state_dict' or bare) into this module's keys. A checkpoint already in zoo format is returned unchanged.

    Raises ValueError naming the keys when the checkpoint does not fit the model (the classifier excepted: timm's
    loader adapts or drops it when num_classes differs).
    """
    state_dict = unwrap_state_dict(state_dict)
    if any(k.startswith(('stem.', 'stages.')) for k in state_dict):
        return state_dict
    target = model.state_dict()
    out = {_rename_official_key(k): v for k, v in state_dict.items() if not k.startswith('outnorm')}
    check_state_dict_fits(out, target, 'VSSD')
    return out


def _cfg(url: str = '', **kwargs):
    # Official eval (classification/config.py, Swin's data pipeline): 224x224, TEST.CROP with crop ratio 0.875,
    # bicubic, ImageNet mean/std. The official repo has no LICENSE file.
    return imagenet_eval_cfg(dict(
        first_conv='stem.conv1.conv', license='unknown', paper_ids='arXiv:2407.18559',
        paper_name='VSSD: Vision Mamba with Non-Causal State Space Duality',
        origin_url='https://github.com/YuHengsss/VSSD'),
        url=url, **kwargs)


# Official weights: Hugging Face repo YuhengSSS/VSSD (file names from the official readme.md). The zoo downloads
# nothing: load a downloaded file with pretrained_cfg_overlay=dict(file=...); checkpoint_filter_fn converts it.
default_cfgs = generate_default_cfgs({
    'vssd_micro.in1k': _cfg(notes=('official: huggingface.co/YuhengSSS/VSSD vssd_micro_best.pth',)),
    'vssd_tiny.in1k': _cfg(notes=('official: huggingface.co/YuhengSSS/VSSD vssd_tiny_best_ema.pth',)),
    'vssd_tiny.in1k_mesa': _cfg(notes=('official: huggingface.co/YuhengSSS/VSSD vssd_tiny_e300_with_mesa.pth',)),
    'vssd_small.in1k': _cfg(notes=('official: huggingface.co/YuhengSSS/VSSD vssd_small_best_ema.pth',)),
    'vssd_small.in1k_mesa': _cfg(notes=('official: huggingface.co/YuhengSSS/VSSD vssd_small_e300_with_mesa.pth',)),
    'vssd_base.in1k': _cfg(notes=('official: huggingface.co/YuhengSSS/VSSD vssd_base_best_ema.pth',)),
    'vssd_base.in1k_mesa': _cfg(notes=('official: huggingface.co/YuhengSSS/VSSD vssd_base_e300_with_mesa.pth',)),
})


def _create_vssd(variant: str, pretrained: bool = False, **kwargs) -> VSSD:
    return build_zoo_model(VSSD, variant, pretrained, checkpoint_filter_fn, **kwargs)


@register_zoo_model
def vssd_micro(pretrained: bool = False, **kwargs) -> VSSD:
    """VSSD-Micro: 14M params, 2.3G FLOPs, 82.5% top-1 (official ``vssd_micro_e300.yaml``)."""
    args = dict(depths=(2, 2, 8, 4), dims=48, num_heads=(2, 4, 8, 16), d_state=48, drop_path_rate=0.2)
    return _create_vssd('vssd_micro', pretrained, **dict(args, **kwargs))


@register_zoo_model
def vssd_tiny(pretrained: bool = False, **kwargs) -> VSSD:
    """VSSD-Tiny: 24M params, 4.5G FLOPs, 83.6% top-1 (84.1% with MESA) (official ``vssd_tiny_e300.yaml``)."""
    args = dict(depths=(2, 4, 8, 4), dims=64, num_heads=(2, 4, 8, 16), d_state=64, drop_path_rate=0.2)
    return _create_vssd('vssd_tiny', pretrained, **dict(args, **kwargs))


@register_zoo_model
def vssd_small(pretrained: bool = False, **kwargs) -> VSSD:
    """VSSD-Small: 40M params, 7.4G FLOPs, 84.1% top-1 (84.5% with MESA) (official ``vssd_small_e300.yaml``)."""
    args = dict(depths=(3, 4, 21, 5), dims=64, num_heads=(2, 4, 8, 16), d_state=64, drop_path_rate=0.4)
    return _create_vssd('vssd_small', pretrained, **dict(args, **kwargs))


@register_zoo_model
def vssd_base(pretrained: bool = False, **kwargs) -> VSSD:
    """VSSD-Base: 89M params, 16.1G FLOPs, 84.7% top-1 (85.4% with MESA) (official ``vssd_base_e300.yaml``)."""
    args = dict(depths=(3, 4, 21, 5), dims=96, num_heads=(3, 6, 12, 24), d_state=64, drop_path_rate=0.6)
    return _create_vssd('vssd_base', pretrained, **dict(args, **kwargs))
