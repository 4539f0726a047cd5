"""Vim (Zhu et al., "Vision Mamba: Efficient Visual Representation Learning with Bidirectional State Space Model",
ICML 2024), from hustvl/Vim (commit dd0358a).

Plain (non-hierarchical), ViT-like: Conv2d patch embedding (kernel 16, stride 16, or stride 8 for the "+"
fine-grained variants) -> class token inserted in the MIDDLE of the patch sequence -> absolute position embedding
-> 24 blocks of (Add -> RMSNorm -> bidirectional Mamba mixer) with the residual stream kept apart in fp32 ->
final Add -> RMSNorm -> linear head on the class token.

Facts from hustvl/Vim ``vim/models_mamba.py`` (``VisionMamba``, ``Block``, ``create_block``, ``_init_weights``,
``segm_init_weights``, the ``*_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2`` entrypoints) and
``mamba-1p1p1/mamba_ssm/modules/mamba_simple.py`` (``Mamba`` with ``bimamba_type="v2"``, ``if_divide_out``).
The released models all use ``rms_norm=True, residual_in_fp32=True, fused_add_norm=True, if_abs_pos_embed=True,
if_rope=False, bimamba_type="v2", if_cls_token=True, use_middle_cls_token=True, if_divide_out=True``; this module
implements exactly that path (the unused ``if_rope`` / ``if_bidirectional`` / double-cls-token options are not
reproduced). ``final_pool_type='mean'`` in the official names is dead code when a class token exists: the
official ``forward_features`` returns ``hidden_states[:, token_position]``.

Layout here: ``patch_embed.proj`` -> ``cls_token`` / ``pos_embed`` (official layout: the class token's slot is
index M // 2 of the (1, M + 1, C) table) -> ``blocks[i]`` (``norm``: RMSNorm, ``mixer``: ``MambaMixer`` with K=2
stacked direction parameters) -> ``norm`` (official ``norm_f``) -> ``head``.

Scans: the mixer's K directions come from a ``vmamba_zoo.scans`` strategy (default ``bidirectional``, the paper's).
The token sequence (patches row-major with the class token at M // 2) is handed to the scan library as a (1, M + 1)
map through ``VimTokenScan``, which derives the token orders from the strategy's orders over the patch grid:

* strategies that only depend on the row-major sequence (``unidirectional``, ``bidirectional``) are applied to the
  whole token sequence, class token included: for ``bidirectional`` that is exactly the official
  ``xz.flip([-1])`` backward branch, for any grid (odd M included);
* 2D strategies (``cross``, ``zigzag``, ``cross_without_row``) scan the patch grid in each of their directions and
  the class token is read next to the middle patch p_t (t = M // 2): just before p_t when the direction reads
  p_{t-1} before p_t, just after it otherwise (so a reversed direction sees the class token mirrored, like Vim's
  flip). K sets of direction parameters follow the strategy (cross: 4).
* strategies whose directions do not each read every patch exactly once (``atrous`` with step > 1, the composite
  ``multiscale``) have no well-defined class-token position and raise a ValueError.

Position embeddings are resampled on the fly for other input sizes (and by ``checkpoint_filter_fn`` for other
``img_size``): the class slot is kept and the patch slots are interpolated bicubically as a map
(``resample_pos_embed``). Note: the official fine-tuning code (``vim/main.py`` / ``vim/utils.py``
``interpolate_pos_embed``) treats index 0 as the class slot, which is wrong for middle-class-token models; the
released stride-8 "+" checkpoints were made that way from the stride-16 ones, and at their native 224 they load and
run exactly as trained here (the table is used index by index).
"""
import math
import re
from functools import lru_cache
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from timm.layers import RmsNorm, lecun_normal_, resample_abs_pos_embed, to_2tuple, trunc_normal_
from timm.models import generate_default_cfgs
from timm.models._features import feature_take_indices

from ..layers import MambaMixer, ResidualDropPath, check_image_input
from ..layers.backbone import PlainBackbone, check_output_fmt
from ..scans import ScanStrategy, get_scan
from ._checkpoint import check_state_dict_fits, unwrap_state_dict
from ._registry import build_zoo_model, imagenet_eval_cfg, register_zoo_model

__all__ = ['Vim', 'VimTokenScan', 'checkpoint_filter_fn', 'resample_pos_embed']


# --------------------------------------------------------------------------------------------------------------
# The token layout as scan data
# --------------------------------------------------------------------------------------------------------------
class VimTokenScan(ScanStrategy):
    """A scan strategy's K directions over Vim's token sequence, as a (1, M + 1) map for ``scan`` / ``merge``.

    Tokens: the gh x gw patches in row-major order with the class token inserted at index t = M // 2 (M = gh * gw),
    as the official ``forward_features``. See the module docstring for how the class token is placed in each
    direction. Not registered: built per (base strategy, grid) by the model.
    """

    def __init__(self, *, base: ScanStrategy, grid: Tuple[int, int]):
        super().__init__()
        self.base = base
        self.grid = (int(grid[0]), int(grid[1]))
        self.num_directions = base.num_directions
        self.name = f'{base.name} (vim tokens)'

    def build_orders(self, H, W):
        gh, gw = self.grid
        M = gh * gw
        if (H, W) != (1, M + 1):
            raise ValueError(f'VimTokenScan for a {gh}x{gw} grid orders a (1, {M + 1}) token map, not {H}x{W}')
        patches = self.base.index(gh, gw)
        if patches.padded or not patches.complete or patches.seq_len != M:
            raise ValueError(
                f"Vim needs a scan strategy whose every direction reads every patch exactly once (to place the class "
                f"token); '{self.base.name}' {self.base.options() or ''} does not at a {gh}x{gw} grid. "
                "Use e.g. 'bidirectional' (default), 'unidirectional', 'cross', 'zigzag' or 'cross_without_row'")
        orders = patches.orders  # (K, M)
        if torch.equal(orders, self.base.index(1, M).orders):
            # The strategy only sees the row-major sequence: apply it to the token sequence itself (class included).
            return self.base.index(1, M + 1).orders
        t = M // 2
        tokens = orders + (orders >= t).long()  # patch p sits at token index p (p < t) or p + 1 (p >= t)
        rows = []
        for k in range(orders.shape[0]):
            step = int(patches.inverse[k, t])
            backwards = t > 0 and int(patches.inverse[k, t - 1]) > step  # p_{t-1} is read after p_t
            pos = step + 1 if backwards else step
            rows.append(torch.cat([tokens[k, :pos], tokens.new_tensor([t]), tokens[k, pos:]]))
        return torch.stack(rows)


@lru_cache(maxsize=64)
def _token_scan(base: ScanStrategy, grid: Tuple[int, int]) -> VimTokenScan:
    return VimTokenScan(base=base, grid=grid)


def resample_pos_embed(pos_embed: torch.Tensor, new_grid: Sequence[int], old_grid: Sequence[int],
                       interpolation: str = 'bicubic', antialias: bool = False) -> torch.Tensor:
    """Resample a Vim position embedding (1, M + 1, C), class slot at index M // 2, from ``old_grid`` (h, w) to
    ``new_grid``: the class slot is kept, the M patch slots are interpolated as an (h, w) map (bicubic without
    antialias, as the official ``interpolate_pos_embed``), and the class slot goes back to the new middle."""
    old_m = int(old_grid[0]) * int(old_grid[1])
    new_m = int(new_grid[0]) * int(new_grid[1])
    if pos_embed.shape[1] != old_m + 1:
        raise ValueError(f'pos_embed has {pos_embed.shape[1]} slots; a {tuple(old_grid)} grid needs {old_m + 1}')
    t_old, t_new = old_m // 2, new_m // 2
    cls = pos_embed[:, t_old:t_old + 1]
    patches = torch.cat([pos_embed[:, :t_old], pos_embed[:, t_old + 1:]], dim=1)
    patches = resample_abs_pos_embed(patches, [int(new_grid[0]), int(new_grid[1])],
                                     [int(old_grid[0]), int(old_grid[1])], num_prefix_tokens=0,
                                     interpolation=interpolation, antialias=antialias)
    return torch.cat([patches[:, :t_new], cls, patches[:, t_new:]], dim=1)


# --------------------------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------------------------
class VimPatchEmbed(nn.Module):
    """Conv2d(in, C, kernel=patch_size, stride=stride), no padding, no norm -> (B, gh * gw, C) row-major tokens.

    Official ``PatchEmbed``: grid = (H - patch) // stride + 1, i.e. 14x14 at 224 (stride 16), 27x27 (stride 8).
    Any input of at least patch_size x patch_size is accepted (the official module asserts the training size).
    """

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int = 16, stride: int = 16):
        super().__init__()
        self.in_chans = in_chans
        self.patch_size = patch_size
        self.stride = stride
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=stride)

    def dynamic_feat_size(self, img_size: Sequence[int]) -> Tuple[int, int]:
        return tuple((int(s) - self.patch_size) // self.stride + 1 for s in img_size)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        check_image_input(x, self.in_chans, self.patch_size, 'Vim')
        x = self.proj(x)
        grid = (int(x.shape[-2]), int(x.shape[-1]))  # plain ints, also while tracing (cache keys, index maps)
        return x.flatten(2).transpose(1, 2), grid


def _add_norm(hidden: torch.Tensor, residual: Optional[torch.Tensor], norm: nn.Module,
              drop_path: Optional[ResidualDropPath], residual_in_fp32: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """mamba_ssm's fused add + RMSNorm (``rms_norm_fn(..., prenorm=True)``) in plain PyTorch.

    residual' = residual + drop_path(hidden) (just ``hidden`` for the first block), summed and kept in fp32 when
    ``residual_in_fp32`` (drop_path None: no drop); returns (norm(residual') in hidden's dtype, residual')."""
    dtype = hidden.dtype
    if residual is None:
        residual = hidden
    else:
        residual = residual + hidden if drop_path is None else drop_path.add(residual, hidden)
    if residual_in_fp32:
        residual = residual.float()
    return norm(residual).to(dtype), residual


class VimBlock(nn.Module):
    """Add -> RMSNorm -> Mamba mixer; takes and returns (mixer output, residual stream) (official ``Block`` with
    ``fused_add_norm=True``). ``drop_path`` drops the INCOMING mixer output (the previous block's) before the add,
    as the official block does."""

    def __init__(self, dim: int, drop_path: float = 0., norm_eps: float = 1e-5, residual_in_fp32: bool = True,
                 **mixer_kwargs):
        super().__init__()
        self.residual_in_fp32 = residual_in_fp32
        self.mixer = MambaMixer(dim, **mixer_kwargs)
        self.norm = RmsNorm(dim, eps=norm_eps)
        self.drop_path = ResidualDropPath(drop_path)

    def forward(self, hidden: torch.Tensor, residual: Optional[torch.Tensor] = None,
                size: Optional[Tuple[int, int]] = None, strategy: Optional[ScanStrategy] = None):
        hidden, residual = _add_norm(hidden, residual, self.norm, self.drop_path, self.residual_in_fp32)
        return self.mixer(hidden, size, strategy), residual


class Vim(PlainBackbone):
    """Vision Mamba classifier / plain backbone.

    Args:
        img_size: training size; fixes the position-embedding grid (other input sizes resample it on the fly).
        patch_size, stride: patch-embedding conv kernel and stride (stride 8 = the "+" fine-grained models).
        embed_dim, depth: width and number of blocks.
        d_state, d_conv, expand, dt_rank: Mamba mixer settings (official: 16, 4, 2, 'auto' = ceil(C / 16)).
        scan: scan strategy name / instance of the mixers (default ``bidirectional``, the paper's); see the module
            docstring for the others. K direction parameter sets follow the strategy.
        divide_out: average the directions (official ``if_divide_out=True``) instead of summing them.
        global_pool: 'token' (the middle class token, official), 'avg' (mean of the patch tokens) or '' (none:
            the head gets the (B, M + 1, C) tokens).
        drop_rate: dropout before the head (0 in the official models).
        pos_drop_rate: dropout after adding the position embedding (the official ``drop_rate``).
        drop_path_rate: stochastic depth, linear in depth as the official ``inter_dpr``.
    """
    stem_params = r'^cls_token|^pos_embed|^patch_embed'

    def __init__(
            self,
            img_size: Union[int, Tuple[int, int]] = 224,
            patch_size: int = 16,
            stride: int = 16,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = 'token',
            embed_dim: int = 192,
            depth: int = 24,
            d_state: int = 16,
            d_conv: int = 4,
            expand: float = 2,
            dt_rank: Union[int, str] = 'auto',
            scan: Union[str, ScanStrategy] = 'bidirectional',
            divide_out: bool = True,
            norm_eps: float = 1e-5,
            residual_in_fp32: bool = True,
            drop_rate: float = 0.,
            pos_drop_rate: float = 0.,
            drop_path_rate: float = 0.1,
    ):
        super().__init__()
        if global_pool not in ('token', 'avg', ''):
            raise ValueError(f"Vim global_pool must be 'token', 'avg' or ''; got {global_pool!r}")
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.in_chans = in_chans
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.residual_in_fp32 = residual_in_fp32
        self.output_fmt = 'NLC'  # forward_features gives (B, M + 1, C) tokens, class token in the middle
        self.grad_checkpointing = False

        self.scan_strategy = get_scan(scan)
        if self.scan_strategy.composite:
            raise ValueError(f"Vim scans one token sequence; scan strategy '{self.scan_strategy.name}' is composite")

        self.patch_embed = VimPatchEmbed(in_chans, embed_dim, patch_size=patch_size, stride=stride)
        self.grid_size = self.patch_embed.dynamic_feat_size(to_2tuple(img_size))
        if min(self.grid_size) < 1:
            raise ValueError(f'Vim img_size {img_size} is smaller than the patch size {patch_size}')
        num_patches = self.grid_size[0] * self.grid_size[1]
        _token_scan(self.scan_strategy, self.grid_size).index(1, num_patches + 1)  # a bad scan fails here, not later

        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim))
        self.pos_drop = nn.Dropout(pos_drop_rate)

        # Official: dpr = linspace(0, rate, depth); block i gets inter_dpr[i] = ([0] + dpr)[i] and applies it to the
        # mixer output of block i - 1; the final add before norm_f drops the last block's output with the full rate.
        dpr = torch.linspace(0, drop_path_rate, depth).tolist()
        inter_dpr = [0.0] + dpr
        self.blocks = nn.ModuleList([
            VimBlock(embed_dim, drop_path=inter_dpr[i], norm_eps=norm_eps, residual_in_fp32=residual_in_fp32,
                     d_state=d_state, d_conv=d_conv, expand=expand, dt_rank=dt_rank, conv_bias=True,
                     proj_bias=False, scan=self.scan_strategy, merge='mean' if divide_out else 'sum')
            for i in range(depth)
        ])
        self.drop_path = ResidualDropPath(drop_path_rate)
        self.norm = RmsNorm(embed_dim, eps=norm_eps)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.feature_info = [dict(num_chs=embed_dim, reduction=stride, module=f'blocks.{i}') for i in range(depth)]
        self._init_weights(depth)

    def _init_weights(self, depth: int):
        # Official init order: segm_init_weights on patch_embed (lecun-normal conv, zero bias) and head
        # (trunc-normal 0.02, zero bias); trunc-normal 0.02 pos_embed / cls_token; then mamba _init_weights: Linear
        # biases zeroed (none in the mixer), out_proj re-drawn kaiming-uniform(a=sqrt(5)) and divided by
        # sqrt(depth) (GPT-2 prenorm residual rescale, n_residuals_per_layer=1). in_proj / x_proj / conv1d keep
        # PyTorch's default init; dt / A / D keep Mamba's (MambaMixer).
        lecun_normal_(self.patch_embed.proj.weight)
        nn.init.zeros_(self.patch_embed.proj.bias)
        if isinstance(self.head, nn.Linear):
            trunc_normal_(self.head.weight, std=.02)
            nn.init.zeros_(self.head.bias)
        trunc_normal_(self.pos_embed, std=.02)
        trunc_normal_(self.cls_token, std=.02)
        for blk in self.blocks:
            w = blk.mixer.out_proj.weight
            nn.init.kaiming_uniform_(w, a=math.sqrt(5))
            with torch.no_grad():
                w.div_(math.sqrt(depth))

    @torch.jit.ignore
    def no_weight_decay(self):
        # Official VisionMamba.no_weight_decay (timm's optimizer factory also skips 1-D params: norms, biases, Ds).
        return {'pos_embed', 'cls_token'}

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None):
        self.num_classes = num_classes
        if global_pool is not None:
            if global_pool not in ('token', 'avg', ''):
                raise ValueError(f"Vim global_pool must be 'token', 'avg' or ''; got {global_pool!r}")
            self.global_pool = global_pool
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def dynamic_feat_size(self, img_size: Sequence[int]) -> Tuple[int, int]:
        """Token grid (h, w) for an input of ``img_size`` (H, W): (H - patch) // stride + 1 per side."""
        return self.patch_embed.dynamic_feat_size(img_size)

    # -- forward pieces ---------------------------------------------------------------------------------------
    def _embed(self, x: torch.Tensor):
        x, grid = self.patch_embed(x)  # (B, M, C)
        B, M, _ = x.shape
        t = M // 2
        x = torch.cat([x[:, :t], self.cls_token.expand(B, -1, -1).to(x.dtype), x[:, t:]], dim=1)
        pos_embed = self.pos_embed
        if tuple(grid) != tuple(self.grid_size):
            pos_embed = resample_pos_embed(pos_embed, grid, self.grid_size)
        x = self.pos_drop(x + pos_embed)
        return x, grid, _token_scan(self.scan_strategy, tuple(grid)), (1, M + 1)

    def _run_block(self, blk: VimBlock, hidden, residual, size, strategy):
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint(blk, hidden, residual, size, strategy, use_reentrant=False)
        return blk(hidden, residual, size, strategy)

    def _final_norm(self, hidden, residual):
        return _add_norm(hidden, residual, self.norm, self.drop_path, self.residual_in_fp32)[0]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> normalised tokens (B, M + 1, C), class token at index M // 2."""
        hidden, _, strategy, size = self._embed(x)
        residual = None
        for blk in self.blocks:
            hidden, residual = self._run_block(blk, hidden, residual, size, strategy)
        return self._final_norm(hidden, residual)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == 'token':
            x = x[:, (x.shape[1] - 1) // 2]
        elif self.global_pool == 'avg':
            t = (x.shape[1] - 1) // 2
            x = torch.cat([x[:, :t], x[:, t + 1:]], dim=1).mean(dim=1)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Per-block features as maps, class token dropped: the mixer output of each taken block (the official
        segmentation backbone ``VisionMambaSeg.forward_features``, ``use_residual_as_feature=False``), reshaped to
        (B, C, h, w). ``norm=True`` returns norm(residual + mixer output) instead (its ``'add & norm'``)."""
        check_output_fmt(output_fmt)
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        hidden, (gh, gw), strategy, size = self._embed(x)
        B, L, C = hidden.shape
        t = (L - 1) // 2
        blocks = self.blocks if torch.jit.is_scripting() or not stop_early else self.blocks[:max_index + 1]
        residual = None
        intermediates = []
        for i, blk in enumerate(blocks):
            hidden, residual = self._run_block(blk, hidden, residual, size, strategy)
            if i in take_indices:
                feat = _add_norm(hidden, residual, self.norm, None, self.residual_in_fp32)[0] \
                    if norm else hidden
                feat = torch.cat([feat[:, :t], feat[:, t + 1:]], dim=1).reshape(B, gh, gw, C)
                intermediates.append(feat.permute(0, 3, 1, 2).contiguous() if output_fmt == 'NCHW' else feat)
        if intermediates_only:
            return intermediates
        return self._final_norm(hidden, residual), intermediates


# --------------------------------------------------------------------------------------------------------------
# Official checkpoints
# --------------------------------------------------------------------------------------------------------------
# ours (stacked over directions) <- (official forward-direction name, backward-direction name, stack or cat)
_DIRECTION_PARAMS = {
    'conv1d.weight': ('conv1d.weight', 'conv1d_b.weight', 'cat'),
    'conv1d.bias': ('conv1d.bias', 'conv1d_b.bias', 'cat'),
    'x_proj_weight': ('x_proj.weight', 'x_proj_b.weight', 'stack'),
    'dt_projs_weight': ('dt_proj.weight', 'dt_proj_b.weight', 'stack'),
    'dt_projs_bias': ('dt_proj.bias', 'dt_proj_b.bias', 'stack'),
    'A_logs': ('A_log', 'A_b_log', 'cat'),
    'Ds': ('D', 'D_b', 'cat'),
}
_SHARED_MIXER_PARAMS = ('in_proj.weight', 'in_proj.bias', 'out_proj.weight', 'out_proj.bias')
_LAYER_KEY = re.compile(r'^layers\.(\d+)\.(.*)$')


def _convert_official(state_dict):
    out, mixers = {}, {}
    for key, value in state_dict.items():
        m = _LAYER_KEY.match(key)
        if m is None:
            out['norm.' + key[len('norm_f.'):] if key.startswith('norm_f.') else key] = value
            continue
        i, rest = m.groups()
        if rest.startswith('mixer.') and rest[len('mixer.'):] not in _SHARED_MIXER_PARAMS:
            mixers.setdefault(i, {})[rest[len('mixer.'):]] = value
        else:
            out[f'blocks.{i}.{rest}'] = value
    for i, parts in mixers.items():
        for ours, (fwd, bwd, how) in _DIRECTION_PARAMS.items():
            found = [parts.pop(name) for name in (fwd, bwd) if name in parts]
            if found:
                out[f'blocks.{i}.mixer.{ours}'] = torch.cat(found) if how == 'cat' else torch.stack(found)
        for name, value in parts.items():  # left over: reported as unexpected under the official name
            out[f'layers.{i}.mixer.{name}'] = value
    return out


def checkpoint_filter_fn(state_dict, model: Vim):
    """Convert an official hustvl/Vim checkpoint (as saved by ``vim/main.py``: weights under 'model'; 'state_dict'
    or bare also accepted) into this module's keys: ``layers.i`` -> ``blocks.i``, ``norm_f`` -> ``norm``, the
    forward / backward direction parameters (``conv1d``/``conv1d_b``, ``x_proj``/``x_proj_b``, ``dt_proj``/
    ``dt_proj_b``, ``A_log``/``A_b_log``, ``D``/``D_b``) stacked into the mixer's K=2 tensors. ``pos_embed`` is
    resampled (``resample_pos_embed``) when the checkpoint's square grid differs from the model's. A zoo-format
    state_dict passes through (pos_embed resampled likewise).

    Raises ValueError naming the keys when the checkpoint does not fit the model (the classifier excepted, which
    timm's loader drops or keeps by num_classes).
    """
    state_dict = unwrap_state_dict(state_dict)
    if any(_LAYER_KEY.match(k) for k in state_dict) or 'norm_f.weight' in state_dict:
        out = _convert_official(state_dict)
    else:
        out = dict(state_dict)
    target = model.state_dict()
    pos = out.get('pos_embed')
    if pos is not None and pos.ndim == 3 and pos.shape != target['pos_embed'].shape \
            and pos.shape[-1] == target['pos_embed'].shape[-1]:
        side = math.isqrt(pos.shape[1] - 1)
        if side * side == pos.shape[1] - 1:
            out['pos_embed'] = resample_pos_embed(pos, model.grid_size, (side, side))
    check_state_dict_fits(out, target, 'Vim', hint='a non-bidirectional scan')
    return out


# --------------------------------------------------------------------------------------------------------------
# Configs and entrypoints
# --------------------------------------------------------------------------------------------------------------
def _cfg(**kwargs):
    # Official eval (vim/datasets.py build_transform, main.py --eval-crop-ratio 0.875): Resize(256, bicubic) ->
    # CenterCrop(224), ImageNet default mean/std.
    return imagenet_eval_cfg(dict(
        first_conv='patch_embed.proj', classifier='head', license='apache-2.0', pool_size=None,
        fixed_input_size=False, paper_ids='arXiv:2401.09417',
        paper_name='Vision Mamba: Efficient Visual Representation Learning with Bidirectional State Space Model',
        origin_url='https://github.com/hustvl/Vim'),
        **kwargs)


# Weights: the Hugging Face repos linked from the hustvl/Vim README "Model Weights" table (file names as cited by
# third-party code for those repos; not downloaded here). The zoo downloads nothing (see _registry.py): put the file
# at <weights dir>/<model>.pth, pass pretrained_cfg_overlay=dict(file=...), or convert it with tools/convert.py.
# The files are vim/main.py training checkpoints ({'model', 'model_ema', 'optimizer', ..., 'args'}); the README
# accuracies are the 'model' weights, which checkpoint_filter_fn (and so tools/convert.py) takes. NOTE: timm's own
# file loader (the file= path) prefers 'model_ema' when a file has it, before checkpoint_filter_fn sees the file.
_HF = 'https://huggingface.co/hustvl/'
default_cfgs = generate_default_cfgs({
    'vim_tiny_patch16_224.in1k': _cfg(notes=(f'official: {_HF}Vim-tiny-midclstok/vim_t_midclstok_76p1acc.pth',)),
    'vim_tiny_patch16_stride8_224.in1k': _cfg(
        notes=(f'official: {_HF}Vim-tiny-midclstok/vim_t_midclstok_ft_78p3acc.pth',)),
    'vim_small_patch16_224.in1k': _cfg(notes=(f'official: {_HF}Vim-small-midclstok/vim_s_midclstok_80p5acc.pth',)),
    'vim_small_patch16_stride8_224.in1k': _cfg(
        notes=(f'official: {_HF}Vim-small-midclstok/vim_s_midclstok_ft_81p6acc.pth',)),
    'vim_base_patch16_224.in1k': _cfg(notes=(f'official: {_HF}Vim-base-midclstok/vim_b_midclstok_81p9acc.pth',)),
})


def _create_vim(variant: str, pretrained: bool = False, **kwargs) -> Vim:
    depth = kwargs.get('depth', 24)
    # Evenly spaced blocks, as the official UperNet configs (out_indices [5, 11, 17, 23] for depth 24).
    out_indices = tuple(sorted({max(depth * (i + 1) // 4 - 1, 0) for i in range(4)}))
    return build_zoo_model(Vim, variant, pretrained, checkpoint_filter_fn, out_indices=out_indices, **kwargs)


@register_zoo_model
def vim_tiny_patch16_224(pretrained: bool = False, **kwargs) -> Vim:
    """Vim-Ti: 7M params, 76.1% top-1 (official ``vim_tiny_patch16_224_bimambav2_..._midclstok_div2``,
    drop path 0.0 as ``vim/scripts/pt-vim-t.sh``)."""
    args = dict(patch_size=16, stride=16, embed_dim=192, depth=24, drop_path_rate=0.0)
    return _create_vim('vim_tiny_patch16_224', pretrained, **dict(args, **kwargs))


@register_zoo_model
def vim_tiny_patch16_stride8_224(pretrained: bool = False, **kwargs) -> Vim:
    """Vim-Ti+: stride-8 patch embedding (27x27 tokens at 224), 7M params, 78.3% top-1 (official
    ``vim_tiny_patch16_stride8_224_..._midclstok_div2``, fine-tuned with drop path 0.0, ``ft-vim-t.sh``)."""
    args = dict(patch_size=16, stride=8, embed_dim=192, depth=24, drop_path_rate=0.0)
    return _create_vim('vim_tiny_patch16_stride8_224', pretrained, **dict(args, **kwargs))


@register_zoo_model
def vim_small_patch16_224(pretrained: bool = False, **kwargs) -> Vim:
    """Vim-S: 26M params, 80.5% top-1 (official ``vim_small_patch16_224_..._midclstok_div2``, drop path 0.05
    as ``pt-vim-s.sh``)."""
    args = dict(patch_size=16, stride=16, embed_dim=384, depth=24, drop_path_rate=0.05)
    return _create_vim('vim_small_patch16_224', pretrained, **dict(args, **kwargs))


@register_zoo_model
def vim_small_patch16_stride8_224(pretrained: bool = False, **kwargs) -> Vim:
    """Vim-S+: stride-8 patch embedding, 26M params, 81.6% top-1 (official
    ``vim_small_patch16_stride8_224_..._midclstok_div2``, fine-tuned with drop path 0.0, ``ft-vim-s.sh``)."""
    args = dict(patch_size=16, stride=8, embed_dim=384, depth=24, drop_path_rate=0.0)
    return _create_vim('vim_small_patch16_stride8_224', pretrained, **dict(args, **kwargs))


@register_zoo_model
def vim_base_patch16_224(pretrained: bool = False, **kwargs) -> Vim:
    """Vim-B: 98M params, 81.9% top-1 (official ``vim_base_patch16_224_..._middle_cls_token_div2``; no training
    script in the repo, so drop path is main.py's default 0.1)."""
    args = dict(patch_size=16, stride=16, embed_dim=768, depth=24, drop_path_rate=0.1)
    return _create_vim('vim_base_patch16_224', pretrained, **dict(args, **kwargs))
