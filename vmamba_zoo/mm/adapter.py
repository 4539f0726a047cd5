"""PlainMamba-Adapter: the detection backbone of PlainMamba (a ViT-Adapter around the plain blocks).

Written for the zoo after ChenhongyiYang/PlainMamba (commit 0975a1d) ``downstream/mmdetection/mmdet/models/
backbones/plain_mamba_adapter.py`` (``PlainMambaAdapter``, ``InteractionBlock_PlainMamba``, ``deform_inputs``) and
``adapter_modules.py`` (its copy of czczup/ViT-Adapter's ``SpatialPriorModule``, ``Injector``, ``Extractor``,
``ConvFFN``, ``InteractionBlock``). The PlainMamba itself is the zoo's timm-registered model (``self.model``), run
block range by block range between the interaction modules; no second implementation of it.

Forward (image ``x``, H and W multiples of 32; token grid h, w = H/16, W/16):

1. spatial prior: ``spm`` -> c1 (stride 4, map) and c2, c3, c4 (strides 8 / 16 / 32, tokens) at width D;
   ``level_embed[i]`` added to c2..c4, which are concatenated into one token set ``c``;
2. tokens: ``model.patch_embed`` + ``model.pos_embed`` (resized bicubically to the grid, as the official
   ``resize_pos_embed``);
3. for each interaction i over blocks ``interaction_indexes[i] = [first, last]``: the Injector (deformable
   attention, queries = tokens at their stride-16 grid centres, values = ``c`` over 3 levels) adds
   ``gamma * attn`` to the tokens (gamma initialised to ``init_values`` = 0, so training starts from the
   pretrained model); the blocks first..last run; the Extractor (deformable attention, queries = ``c`` at the
   stride-8/16/32 centres, values = the tokens, 1 level) updates ``c``, then ConvFFN (fc -> 3x3 depth-wise conv on
   each level's map -> GELU -> fc, hidden ``cffn_ratio`` x D) with drop path at the backbone's full rate. The last
   interaction has two more Extractors (``use_extra_extractor``);
4. outputs: c2..c4 back to maps, ``c1 = c1 + up(c2)`` (2x2 transposed conv), then (``add_vit_feature``) the final
   tokens resized bilinearly to each stride (x4, x2, x1, x0.5) added, and each level through its own norm
   (``ad_norm1..4``, SyncBN in the official code). No final LayerNorm (official ``final_norm=False``).

Norms: LayerNorm eps 1e-6 inside the Injector / Extractor; ``norm_cfg`` (BN / SyncBN) in the spatial prior and
``ad_norm*``; the PlainMamba patch embedding keeps its BatchNorm2d as the official one. Deformable attention is
mmcv's ``MultiScaleDeformableAttention`` (CUDA kernel on GPU, pure-PyTorch ``grid_sample`` path elsewhere), run in
float32 as the official ``force_fp32`` module; its parameter names (``sampling_offsets``, ``attention_weights``,
``value_proj``, ``output_proj``) and init are those of the official ``MSDeformAttn``.

State-dict keys follow the official module (``level_embed``, ``spm.*``, ``interactions.*``, ``up.*``,
``ad_norm{1..4}.*``), except the PlainMamba's, which live under ``model.`` in zoo names
(``official_adapter_key`` / ``convert_official_adapter`` map an official detector checkpoint).

Official facts (``plain_mamba_det_configs/maskrcnn/l{1,2,3}_maskrcnn_1x.py``): conv_inplane 64, n_points 4,
deform_num_heads 6 (L3: 8), cffn_ratio 0.25, deform_ratio 1.0, interaction_indexes [[0,5],[6,11],[12,17],[18,23]]
(L3: [[0,8],[9,17],[18,26],[27,35]]), drop path 0.1 / 0.2 / 0.3; class defaults init_values 0, with_cffn,
add_vit_feature and use_extra_extractor True, pretrain_size 224.
"""
import logging
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import timm
import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from torch import nn
from timm.layers import DropPath, trunc_normal_

from mmcv.cnn import build_norm_layer
from mmcv.ops import MultiScaleDeformableAttention
from mmengine.model import BaseModule

from .backbone import _strip_prefix, checkpoint_filter_for, family_of, load_checkpoint_file, resolve_checkpoint

__all__ = ['PlainMambaAdapter', 'SpatialPriorModule', 'Injector', 'Extractor', 'ConvFFN', 'InteractionBlock',
           'official_adapter_key', 'convert_official_adapter', 'OFFICIAL_ADAPTER_ARGS']

_log = logging.getLogger(__name__)

# per variant, from plain_mamba_det_configs/maskrcnn/l{1,2,3}_maskrcnn_1x.py
OFFICIAL_ADAPTER_ARGS = {
    'plainmamba_l1': dict(deform_num_heads=6, interaction_indexes=((0, 5), (6, 11), (12, 17), (18, 23)),
                          drop_path_rate=0.1),
    'plainmamba_l2': dict(deform_num_heads=6, interaction_indexes=((0, 5), (6, 11), (12, 17), (18, 23)),
                          drop_path_rate=0.2),
    'plainmamba_l3': dict(deform_num_heads=8, interaction_indexes=((0, 8), (9, 17), (18, 26), (27, 35)),
                          drop_path_rate=0.3),
}

_LN_EPS = 1e-6


def _norm(norm_cfg: dict, channels: int) -> nn.Module:
    return build_norm_layer(dict(norm_cfg), channels)[1]


def _grid_centres(shapes: Sequence[Tuple[int, int]], device) -> torch.Tensor:
    """(1, sum h*w, 1, 2) normalised (x, y) centres of the cells of each (h, w) grid, levels concatenated."""
    refs = []
    for h, w in shapes:
        ys = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h
        xs = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w
        gy, gx = torch.meshgrid(ys, xs, indexing='ij')
        refs.append(torch.stack((gx.reshape(-1), gy.reshape(-1)), -1))
    return torch.cat(refs, 0)[None, :, None]


def _shapes_tensor(shapes: Sequence[Tuple[int, int]], device) -> Tuple[torch.Tensor, torch.Tensor]:
    spatial = torch.as_tensor(shapes, dtype=torch.long, device=device)
    starts = torch.cat((spatial.new_zeros(1), spatial.prod(1).cumsum(0)[:-1]))
    return spatial, starts


def _attn_module(dim, num_heads, num_levels, num_points, ratio) -> MultiScaleDeformableAttention:
    # keep the official key layout: ...attn.sampling_offsets.weight, not ...attn.attn.sampling_offsets.weight
    return MultiScaleDeformableAttention(embed_dims=dim, num_heads=num_heads, num_levels=num_levels,
                                         num_points=num_points, dropout=0., batch_first=True, value_proj_ratio=ratio)


def _deform(attn: MultiScaleDeformableAttention, query, value, reference_points, spatial_shapes, level_start_index):
    """The deformable attention output alone (mmcv adds ``identity``: a 0-d zero here), computed in float32 as the
    official ``force_fp32`` ``MSDeformAttn``."""
    with torch.autocast(device_type=query.device.type, enabled=False):
        query, value = query.float(), value.float()
        return attn(query, value=value, identity=query.new_zeros(()), reference_points=reference_points,
                    spatial_shapes=spatial_shapes, level_start_index=level_start_index)


class SpatialPriorModule(nn.Module):
    """Conv stem (3x3 s2 + two 3x3, norm + ReLU each, 3x3 s2 max pool) -> stride 4, then 3x3 s2 convs to 2C, 4C,
    4C channels (strides 8, 16, 32); 1x1 convs ``fc1..fc4`` project each level to ``embed_dim``.
    Returns c1 as a map (B, D, H/4, W/4) and c2..c4 as tokens (B, h*w, D)."""

    def __init__(self, inplanes: int = 64, embed_dim: int = 384, norm_cfg: Optional[dict] = None):
        super().__init__()
        norm_cfg = norm_cfg or dict(type='SyncBN')
        c = inplanes
        self.stem = nn.Sequential(
            nn.Conv2d(3, c, 3, stride=2, padding=1, bias=False), _norm(norm_cfg, c), nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, stride=1, padding=1, bias=False), _norm(norm_cfg, c), nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, stride=1, padding=1, bias=False), _norm(norm_cfg, c), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1))

        def down(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), _norm(norm_cfg, cout),
                                 nn.ReLU(inplace=True))

        self.conv2 = down(c, 2 * c)
        self.conv3 = down(2 * c, 4 * c)
        self.conv4 = down(4 * c, 4 * c)
        self.fc1 = nn.Conv2d(c, embed_dim, 1)
        self.fc2 = nn.Conv2d(2 * c, embed_dim, 1)
        self.fc3 = nn.Conv2d(4 * c, embed_dim, 1)
        self.fc4 = nn.Conv2d(4 * c, embed_dim, 1)

    def forward(self, x):
        f1 = self.stem(x)
        f2 = self.conv2(f1)
        f3 = self.conv3(f2)
        f4 = self.conv4(f3)
        tokens = [fc(f).flatten(2).transpose(1, 2) for fc, f in ((self.fc2, f2), (self.fc3, f3), (self.fc4, f4))]
        return (self.fc1(f1), *tokens)


class _DWConv(nn.Module):
    """3x3 depth-wise conv applied to each level's map of a multi-level token set (official ``DWConv``; the
    ``dwconv`` attribute keeps the official key ``ffn.dwconv.dwconv``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x, shapes: Sequence[Tuple[int, int]]):
        B, _, C = x.shape
        out, start = [], 0
        for h, w in shapes:
            level = x[:, start:start + h * w].transpose(1, 2).reshape(B, C, h, w)
            out.append(self.dwconv(level).flatten(2).transpose(1, 2))
            start += h * w
        return torch.cat(out, 1)


class ConvFFN(nn.Module):
    """fc1 -> depth-wise 3x3 per level -> GELU -> dropout -> fc2 -> dropout."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = _DWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x, shapes):
        x = self.drop(self.act(self.dwconv(self.fc1(x), shapes)))
        return self.drop(self.fc2(x))


class Injector(nn.Module):
    """tokens + gamma * DeformAttn(LN(tokens), LN(c)) over the 3 spatial-prior levels."""

    def __init__(self, dim: int, num_heads: int, n_points: int, n_levels: int = 3, deform_ratio: float = 1.0,
                 init_values: float = 0.):
        super().__init__()
        self.query_norm = nn.LayerNorm(dim, eps=_LN_EPS)
        self.feat_norm = nn.LayerNorm(dim, eps=_LN_EPS)
        self.attn = _attn_module(dim, num_heads, n_levels, n_points, deform_ratio)
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, query, feat, reference_points, spatial_shapes, level_start_index):
        attn = _deform(self.attn, self.query_norm(query), self.feat_norm(feat), reference_points, spatial_shapes,
                       level_start_index)
        return query + self.gamma * attn


class Extractor(nn.Module):
    """c + DeformAttn(LN(c), LN(tokens)) over the one token level, then c + DropPath(ConvFFN(LN(c)))."""

    def __init__(self, dim: int, num_heads: int, n_points: int, n_levels: int = 1, deform_ratio: float = 1.0,
                 with_cffn: bool = True, cffn_ratio: float = 0.25, drop: float = 0., drop_path: float = 0.):
        super().__init__()
        self.query_norm = nn.LayerNorm(dim, eps=_LN_EPS)
        self.feat_norm = nn.LayerNorm(dim, eps=_LN_EPS)
        self.attn = _attn_module(dim, num_heads, n_levels, n_points, deform_ratio)
        self.with_cffn = with_cffn
        if with_cffn:
            self.ffn = ConvFFN(dim, int(dim * cffn_ratio), drop=drop)
            self.ffn_norm = nn.LayerNorm(dim, eps=_LN_EPS)
            self.drop_path = DropPath(drop_path) if drop_path > 0. else nn.Identity()

    def forward(self, query, feat, reference_points, spatial_shapes, level_start_index, query_shapes):
        query = query + _deform(self.attn, self.query_norm(query), self.feat_norm(feat), reference_points,
                                spatial_shapes, level_start_index).to(query.dtype)
        if self.with_cffn:
            query = query + self.drop_path(self.ffn(self.ffn_norm(query), query_shapes))
        return query


class InteractionBlock(nn.Module):
    """Injector, (the caller's block range), Extractor [+ 2 extra Extractors in the last interaction]."""

    def __init__(self, dim: int, num_heads: int = 6, n_points: int = 4, drop: float = 0., drop_path: float = 0.,
                 with_cffn: bool = True, cffn_ratio: float = 0.25, init_values: float = 0.,
                 deform_ratio: float = 1.0, extra_extractor: bool = False):
        super().__init__()
        self.injector = Injector(dim, num_heads, n_points, n_levels=3, deform_ratio=deform_ratio,
                                 init_values=init_values)
        ext = dict(num_heads=num_heads, n_points=n_points, n_levels=1, deform_ratio=deform_ratio,
                   with_cffn=with_cffn, cffn_ratio=cffn_ratio, drop=drop, drop_path=drop_path)
        self.extractor = Extractor(dim, **ext)
        self.extra_extractors = nn.Sequential(*[Extractor(dim, **ext) for _ in range(2)]) if extra_extractor \
            else None

    def extractors(self) -> List[Extractor]:
        return [self.extractor] + (list(self.extra_extractors) if self.extra_extractors is not None else [])


def _maybe_checkpoint(enabled: bool, fn, *args):
    if enabled and torch.is_grad_enabled() and any(isinstance(a, torch.Tensor) and a.requires_grad for a in args):
        return cp.checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


class PlainMambaAdapter(BaseModule):
    """PlainMamba-Adapter (see the module docstring) as an mmdet backbone: 4 maps at strides 4 / 8 / 16 / 32, each
    with ``embed_dim`` channels.

    Args:
        model_name: a zoo PlainMamba (``plainmamba_l1`` / ``_l2`` / ``_l3``).
        interaction_indexes: [first, last] block of each interaction (default: the official ones of the variant,
            else four even ranges). deform_num_heads: default the official one of the variant, else 6.
        conv_inplane, n_points, init_values, with_cffn, cffn_ratio, deform_ratio, add_vit_feature,
            use_extra_extractor: as the official ``PlainMambaAdapter``.
        drop_path_rate: of the PlainMamba blocks (linearly increasing) and of every ConvFFN (the full rate, as the
            official code). None: the official rate of the variant, else 0.
        norm_cfg: norm of the spatial prior module and of the four output norms (official: SyncBN).
        with_cp: gradient checkpointing of each block, injector and extractor (the official module has none).
        model_kwargs: extra ``timm.create_model`` arguments (e.g. a smaller ``depth`` / ``embed_dim`` in tests;
            ``img_size`` = the official ``pretrain_size`` 224, the grid of the stored position embedding).
        init_cfg: ``dict(type='Pretrained', checkpoint=..., prefix=None)``: a zoo / official ImageNet PlainMamba
            (into ``model``; the adapter modules keep their init), an official PlainMamba-Adapter detector
            checkpoint (``prefix='backbone.'``; keys mapped by ``convert_official_adapter``), or an mm checkpoint of
            this module (``prefix='backbone.'``).
    """

    def __init__(self, model_name: str = 'plainmamba_l1', interaction_indexes: Optional[Sequence[Sequence[int]]] = None,
                 conv_inplane: int = 64, n_points: int = 4, deform_num_heads: Optional[int] = None,
                 init_values: float = 0., with_cffn: bool = True, cffn_ratio: float = 0.25, deform_ratio: float = 1.0,
                 add_vit_feature: bool = True, use_extra_extractor: bool = True,
                 drop_path_rate: Optional[float] = None, norm_cfg: Optional[dict] = None, with_cp: bool = False,
                 model_kwargs: Optional[dict] = None, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        from ..models import list_models
        known = [n for n in list_models() if family_of(n) == 'plainmamba']
        if model_name not in known:
            raise ValueError(f'PlainMambaAdapter: unknown model_name {model_name!r}; PlainMamba models: {known}')
        official = OFFICIAL_ADAPTER_ARGS.get(model_name, {})
        self.model_name = model_name
        self.model_kwargs = dict(model_kwargs or {})
        if drop_path_rate is None:
            drop_path_rate = official.get('drop_path_rate', 0.)
        self.drop_path_rate = float(drop_path_rate)
        self.model_kwargs['drop_path_rate'] = self.drop_path_rate
        model = timm.create_model(model_name, pretrained=False, **self.model_kwargs)
        # the detector uses no classifier and no final norm (official final_norm=False)
        model.reset_classifier(0, '')
        model.norm = nn.Identity()
        self.model = model
        depth, dim = len(model.blocks), model.embed_dim
        self.embed_dim = dim

        if interaction_indexes is None:
            interaction_indexes = official.get('interaction_indexes')
            if interaction_indexes is None or interaction_indexes[-1][-1] != depth - 1:  # e.g. a shallower test model
                interaction_indexes = [(depth * i // 4, depth * (i + 1) // 4 - 1) for i in range(4)]
        ranges = [tuple(int(i) for i in r) for r in interaction_indexes]
        expected_first = 0
        for first, last in ranges:
            if first != expected_first or last < first:
                raise ValueError(f'interaction_indexes {ranges} must be consecutive [first, last] block ranges '
                                 f'covering blocks 0..{depth - 1}')
            expected_first = last + 1
        if expected_first != depth:
            raise ValueError(f'interaction_indexes {ranges} must end at the last block ({depth - 1})')
        self.interaction_indexes = ranges
        if deform_num_heads is None:
            deform_num_heads = official.get('deform_num_heads', 6)
        if dim % deform_num_heads:
            raise ValueError(f'embed_dim {dim} is not divisible by deform_num_heads {deform_num_heads}')
        self.add_vit_feature = add_vit_feature
        self.with_cp = with_cp
        norm_cfg = dict(norm_cfg or dict(type='SyncBN'))

        self.level_embed = nn.Parameter(torch.zeros(3, dim))
        self.spm = SpatialPriorModule(conv_inplane, dim, norm_cfg)
        self.interactions = nn.Sequential(*[
            InteractionBlock(dim, num_heads=deform_num_heads, n_points=n_points, drop_path=self.drop_path_rate,
                             with_cffn=with_cffn, cffn_ratio=cffn_ratio, init_values=init_values,
                             deform_ratio=deform_ratio,
                             extra_extractor=use_extra_extractor and i == len(ranges) - 1)
            for i in range(len(ranges))])
        self.up = nn.ConvTranspose2d(dim, dim, 2, 2)
        for i in range(1, 5):
            self.add_module(f'ad_norm{i}', _norm(norm_cfg, dim))
        self.out_channels = [dim] * 4
        self.out_strides = [4, 8, 16, 32]
        self._init_adapter()

    # -- init --------------------------------------------------------------------------------------------------
    def _init_adapter(self):
        """Official init: Linear TN(0.02) / bias 0, LayerNorm and BN 1 / 0, Conv and ConvTranspose N(0, sqrt(2 /
        fan_out)) / bias 0 on ``up``, ``spm`` and ``interactions``; then every deformable attention its own reset
        (zero offsets weight, a ring of offsets in the bias, zero attention weights, Xavier projections);
        ``level_embed`` N(0, 1). ``gamma`` stays ``init_values``."""
        def init(m):
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.LayerNorm, nn.modules.batchnorm._BatchNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0., (2.0 / fan_out) ** 0.5)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

        for part in (self.up, self.spm, self.interactions):
            part.apply(init)
        for m in self.interactions.modules():
            if isinstance(m, MultiScaleDeformableAttention):
                m.init_weights()
        nn.init.normal_(self.level_embed)

    def init_weights(self):
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            self.load_pretrained(cfg['checkpoint'], prefix=cfg.get('prefix'))
            self._is_init = True
            return
        # no BaseModule.init_weights: it would re-run the deformable attentions' random init only; the rest is
        # initialised in __init__ already
        self._is_init = True

    def load_pretrained(self, checkpoint: Union[str, Path], prefix: Optional[str] = None):
        """Load an ImageNet PlainMamba (zoo or official), an official PlainMamba-Adapter detector checkpoint or an
        mm checkpoint of this module (see the class docs); returns the (missing, unexpected) keys, logged."""
        state_dict = load_checkpoint_file(resolve_checkpoint(checkpoint))
        for wrapper in ('state_dict', 'model', 'module'):
            if isinstance(state_dict.get(wrapper), dict):
                state_dict = state_dict[wrapper]
                break
        if prefix:
            state_dict = _strip_prefix(state_dict, prefix)
        if any(k.startswith('model.') for k in state_dict):  # ours
            missing, unexpected = self.load_state_dict(state_dict, strict=False)
        elif any(k == 'level_embed' or k.startswith(('spm.', 'interactions.')) for k in state_dict):  # official
            missing, unexpected = self.load_state_dict(convert_official_adapter(state_dict, self), strict=False)
        else:  # an ImageNet PlainMamba: through the family converter, checked against the full classifier
            reference = timm.create_model(self.model_name, pretrained=False, **self.model_kwargs)
            converted = checkpoint_filter_for(self.model_name)(state_dict, reference)
            del reference
            missing, unexpected = self.model.load_state_dict(converted, strict=False)
            unexpected = [k for k in unexpected if not k.startswith(('head', 'norm.'))]
        if missing or unexpected:
            _log.warning('PlainMambaAdapter: loaded %s with missing keys %s, unexpected keys %s', checkpoint,
                         list(missing)[:10], list(unexpected)[:10])
        else:
            _log.info('PlainMambaAdapter: loaded %s', checkpoint)
        return missing, unexpected

    # -- forward -----------------------------------------------------------------------------------------------
    def _run_blocks(self, x: torch.Tensor, first: int, last: int) -> torch.Tensor:
        for blk in self.model.blocks[first:last + 1]:
            x = _maybe_checkpoint(self.with_cp, blk, x)
        return x

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        B, _, H, W = x.shape
        if H % 32 or W % 32:
            raise ValueError(f'PlainMambaAdapter needs H and W divisible by 32 (mmdet pads to 32); got {H}x{W}')
        h, w = H // 16, W // 16
        c_shapes = [(H // 8, W // 8), (h, w), (H // 32, W // 32)]
        # injector: queries at the token grid, values = the 3 prior levels; extractor: the reverse, 1 level
        inj_ref = _grid_centres([(h, w)], x.device)
        inj_shapes, inj_starts = _shapes_tensor(c_shapes, x.device)
        ext_ref = _grid_centres(c_shapes, x.device)
        ext_shapes, ext_starts = _shapes_tensor([(h, w)], x.device)

        c1, c2, c3, c4 = self.spm(x)
        c = torch.cat([c2 + self.level_embed[0], c3 + self.level_embed[1], c4 + self.level_embed[2]], 1)

        tokens = self.model._pos_embed(self.model.patch_embed(x))  # (B, h, w, D)
        D = tokens.shape[-1]
        tokens = tokens.reshape(B, h * w, D)
        for block, (first, last) in zip(self.interactions, self.interaction_indexes):
            tokens = _maybe_checkpoint(self.with_cp, block.injector, tokens, c, inj_ref, inj_shapes, inj_starts)
            tokens = self._run_blocks(tokens.reshape(B, h, w, D), first, last).reshape(B, h * w, D)
            for extractor in block.extractors():
                c = _maybe_checkpoint(self.with_cp, extractor, c, tokens, ext_ref, ext_shapes, ext_starts,
                                      c_shapes)

        n2, n3 = c_shapes[0][0] * c_shapes[0][1], h * w
        c2 = c[:, :n2].transpose(1, 2).reshape(B, D, *c_shapes[0])
        c3 = c[:, n2:n2 + n3].transpose(1, 2).reshape(B, D, h, w)
        c4 = c[:, n2 + n3:].transpose(1, 2).reshape(B, D, *c_shapes[2])
        c1 = self.up(c2) + c1
        outs = [c1, c2, c3, c4]
        if self.add_vit_feature:
            x3 = tokens.transpose(1, 2).reshape(B, D, h, w)
            outs = [o + (x3 if s == 1 else F.interpolate(x3, scale_factor=s, mode='bilinear', align_corners=False))
                    for o, s in zip(outs, (4, 2, 1, 0.5))]
        return tuple(getattr(self, f'ad_norm{i + 1}')(o) for i, o in enumerate(outs))


# -- official checkpoints ----------------------------------------------------------------------------------------
# Official PlainMambaAdapter subclasses the mmcls PlainMamba, so its plain-model keys sit at the top level in mmcls
# names; the zoo keeps the model under ``model.`` in timm names (vmamba_zoo.models.plainmamba._KEY_RENAMES).
_OFFICIAL_MODEL_RENAMES = [
    (re.compile(r'^patch_embed\.projection\.'), 'model.patch_embed.proj.'),
    (re.compile(r'^patch_embed\.'), 'model.patch_embed.'),
    (re.compile(r'^pos_embed$'), 'model.pos_embed'),
    (re.compile(r'^layers\.(\d+)\.mamba\.'), r'model.blocks.\1.mixer.'),
    (re.compile(r'^layers\.(\d+)\.'), r'model.blocks.\1.'),
]
_ADAPTER_PREFIXES = ('level_embed', 'spm.', 'interactions.', 'up.', 'ad_norm')


def official_adapter_key(key: str) -> Optional[str]:
    """An official PlainMambaAdapter key (without ``backbone.``) -> ours; None for keys the zoo module does not have
    (the official ``norm1`` final norm / ``norm_layer{i}``, absent with final_norm=False and out_indices=-1)."""
    if key.startswith(_ADAPTER_PREFIXES):
        return key  # same module layout
    for pattern, repl in _OFFICIAL_MODEL_RENAMES:
        new, n = pattern.subn(repl, key)
        if n:
            return new
    return None


def convert_official_adapter(state_dict: Dict[str, torch.Tensor],
                             adapter: Optional[PlainMambaAdapter] = None) -> Dict[str, torch.Tensor]:
    """An official PlainMamba-Adapter state dict (the detector's ``backbone.*`` keys with the prefix removed; a
    whole detector state dict works too: its ``backbone.`` keys are taken) -> this module's keys.

    With ``adapter``, ``pos_embed`` is resized to its grid if it differs and the result is checked: missing /
    unexpected keys and shape mismatches raise ValueError.
    """
    if any(k.startswith('backbone.') for k in state_dict):
        state_dict = {k[len('backbone.'):]: v for k, v in state_dict.items() if k.startswith('backbone.')}
    out, dropped = {}, []
    for key, value in state_dict.items():
        new = official_adapter_key(key)
        if new is None:
            dropped.append(key)
        else:
            out[new] = value
    if dropped:
        _log.info('convert_official_adapter: dropped %s', dropped[:10])
    if adapter is not None:
        target = adapter.state_dict()
        pos = out.get('model.pos_embed')
        if pos is not None and pos.shape != target['model.pos_embed'].shape:
            from ..models.plainmamba import _resize_pos_embed
            out['model.pos_embed'] = _resize_pos_embed(pos, adapter.model.patch_grid).to(pos.dtype)
        problems = [f'missing {k}' for k in sorted(set(target) - set(out))]
        problems += [f'unexpected {k}' for k in sorted(set(out) - set(target))]
        problems += [f'{k}: {tuple(out[k].shape)} vs {tuple(target[k].shape)}' for k in sorted(set(out) & set(target))
                     if out[k].shape != target[k].shape]
        if problems:
            raise ValueError(f'official PlainMamba-Adapter checkpoint does not fit {adapter.model_name} '
                             f'({len(problems)} problems): {"; ".join(problems[:6])}')
    return out
