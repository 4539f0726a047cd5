"""PlainMamba (Yang et al., "PlainMamba: Improving Non-Hierarchical Mamba in Visual Recognition", BMVC 2024),
from ChenhongyiYang/PlainMamba (commit 0975a1d).

A plain (isotropic) backbone: convolutional patch embedding to stride 16, a learned absolute position embedding,
``depth`` identical PlainMamba layers at constant width, a final LayerNorm, mean pooling and a linear head.

Architecture facts, all from the official repository:

* ``mmcls/plain_mamba_dev/models/plain_mamba/plain_mamba.py`` ``PlainMamba``: ``arch_zoo`` (L1/L2/L3), learned
  ``pos_embed`` (1, H0*W0, D) for the 224 grid, resized with mmcls ``resize_pos_embed`` (bicubic,
  align_corners=False, no antialias) when the token grid differs; final norm ``ln1`` = LayerNorm(eps=1e-6).
* ``mmcls/plain_mamba_dev/models/modules/patch_embed.py`` ``ConvPatchEmbed``: Conv7x7/s2 (64 ch, no bias) + BN +
  ReLU, ``num_convs`` x [Conv3x3 (no bias) + BN + ReLU], zero "corner" padding of the bottom/right edge to a
  multiple of patch/2, then Conv(patch/2, stride patch/2) to D (bias) -- output grid ceil(H/patch) x ceil(W/patch).
* ``.../plain_mamba_layer.py`` ``PlainMambaLayer``: x + DropPath(PlainMamba2D(LN(x))); layers listed in
  ``layers_with_dwconv`` (layer 0 of L1) then apply DWConv3x3 (no bias) + BN + GELU to the sum, without residual.
* ``PlainMamba2D``: in_proj Linear(D, 2E, bias) -> x, z; x -> depth-wise 7x7 conv (bias) -> SiLU; ONE x_proj
  Linear(E, R + 2N, no bias) and ONE dt_proj Linear(R, E) shared by all scan directions; 4 continuous zig-zag
  scans (``get_permute_order``: o1..o4, no reversed copies, so 4 sequences, not 8); y = sum_k unpermute(scan_k)
  * SiLU(z) -> out_proj Linear(E, D, bias).

  Direction-aware updating: a learned ``direction_Bs`` (5, N) holds one vector per step direction
  [start, right, left, up, down]; scan k adds ``direction_Bs[d_k[s]]`` to B at its step s.

  Official quirk, reproduced exactly: only the input u is permuted into scan order
  (``x_conv[:, o, :]``); dt, B and C are computed once in raster order and passed unpermuted, so step s of every
  direction uses dt/B/C of raster token s (and the direction vector of scan step s). The 4 directions therefore
  share delta/B/C and differ in u and the direction vectors; we run them as K=4 groups of ONE selective_scan call.
  Second quirk, also reproduced: dt = dt_proj(dt) includes the dt_proj bias and the scan adds it again as
  ``delta_bias``, i.e. delta = softplus(W_dt dt + 2 b_dt).

Scan strategies: the orders come from ``vmamba_zoo.scans`` (default ``zigzag``, whose four directions are
PlainMamba's o1..o4 in order; ``ZigzagScan.step_directions`` gives d1..d4). ``scan=`` accepts any registered strategy
whose every direction reads every pixel exactly once (S == H*W, as the raster-order dt/B/C need), e.g. ``cross``,
``bidirectional``, ``unidirectional``. For strategies other than zigzag the direction vectors are indexed by the
move into each step classified by its sign (row change > 0: down, < 0: up, else right/left; the first step:
start) -- identical to PlainMamba's codes for zigzag; ``direction_aware=False`` removes them instead.

Layout here (timm style, NHWC maps): ``patch_embed`` -> + ``pos_embed`` -> ``blocks[i]`` -> ``norm`` -> ``head``
(avg pool over tokens = the official ``CustomAveragePooling`` + fc).
"""
import math
import re
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from timm.layers import ClassifierHead, trunc_normal_
from timm.models import checkpoint_seq, generate_default_cfgs
from timm.models._features import feature_take_indices

from ..layers import LayerNorm, ResidualDropPath, check_image_input, init_A_log, init_D, init_dt_projection
from ..layers.backbone import PlainBackbone, check_output_fmt
from ..ops import selective_scan
from ..scans import ScanStrategy, get_scan, scan as scan_map, merge as merge_map
from ..scans.strategies import ZIGZAG_DOWN, ZIGZAG_LEFT, ZIGZAG_RIGHT, ZIGZAG_START, ZIGZAG_UP
from ._checkpoint import check_state_dict_fits, unwrap_state_dict
from ._registry import build_zoo_model, imagenet_eval_cfg, register_zoo_model

__all__ = ['PlainMamba', 'PlainMamba2D', 'PlainMambaBlock', 'ConvPatchEmbed', 'checkpoint_filter_fn',
           'step_direction_codes', 'codes_from_orders']

NUM_DIRECTION_CODES = 5  # [start, right, left, up, down]


def _resolve_scan(scan: Union[str, ScanStrategy]) -> ScanStrategy:
    strategy = get_scan(scan)  # ValueError for unknown names
    if strategy.composite:
        raise ValueError(f"PlainMamba scans one token map; scan strategy '{strategy.name}' is composite "
                         '(several resolutions)')
    # dt/B/C are used in raster order at every step (official behaviour), so each direction must read every one of
    # the H*W tokens exactly once. Probe a small odd-by-even map.
    probe = strategy.index(3, 4)
    if probe.padded or not probe.complete or probe.seq_len != 12:
        raise ValueError(f"PlainMamba needs a scan strategy whose every direction reads every token exactly once; "
                         f"'{strategy.name}' ({strategy!r}) does not (padded={probe.padded}, "
                         f"complete={probe.complete}, steps {probe.seq_len} for 12 tokens)")
    return strategy


def step_direction_codes(strategy: ScanStrategy, H: int, W: int, device='cpu') -> torch.Tensor:
    """(K, H*W) int64 direction code of every scan step: 0 start, 1 right, 2 left, 3 up, 4 down.

    ``zigzag`` uses ``ZigzagScan.step_directions`` (PlainMamba's own codes). Other strategies classify the move
    from the previous step by its sign: row index grows -> down, shrinks -> up, same row -> right/left by the
    column change (a raster line wrap counts as "down"). For zigzag this rule gives the same codes.
    """
    H, W = int(H), int(W)  # plain ints (traced sizes are 0-d tensors) so the strategies' caches hit
    step_directions = getattr(strategy, 'step_directions', None)
    if step_directions is not None:
        return step_directions(H, W, device)
    return codes_from_orders(strategy.index(H, W, device).orders, W)


def codes_from_orders(orders: torch.Tensor, W: int) -> torch.Tensor:
    """Direction codes of (K, S) flat orders of a width-W map by the sign rule of ``step_direction_codes``."""
    i, j = torch.div(orders, W, rounding_mode='floor'), orders % W
    di, dj = i.diff(dim=1), j.diff(dim=1)
    moves = torch.where(di > 0, ZIGZAG_DOWN, torch.where(di < 0, ZIGZAG_UP,
                                                         torch.where(dj > 0, ZIGZAG_RIGHT, ZIGZAG_LEFT)))
    return torch.cat([torch.full_like(orders[:, :1], ZIGZAG_START), moves], dim=1)


class ConvPatchEmbed(nn.Module):
    """PlainMamba's convolutional tokenizer (official ``ConvPatchEmbed``), NCHW image -> NHWC tokens.

    stem: Conv(in, 64, 7, s2, p3, no bias) + BN + ReLU; convs: ``num_convs`` x [Conv(64, 64, 3, p1, no bias) + BN +
    ReLU]; bottom/right zero padding to a multiple of patch/2 (mmcv ``AdaptivePadding(padding='corner')``);
    proj: Conv(64, D, patch/2, stride patch/2, bias). Output grid: ceil(H / patch) x ceil(W / patch).
    """

    def __init__(self, in_chans: int = 3, embed_dim: int = 192, patch_size: int = 16, num_convs: int = 1,
                 stem_chs: int = 64):
        super().__init__()
        if patch_size < 2 or patch_size % 2:
            raise ValueError(f'PlainMamba patch_size must be even (a stride-2 stem then patch/2), got {patch_size}')
        self.in_chans = in_chans
        self.patch_size = patch_size
        self.proj_stride = patch_size // 2
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, stem_chs, kernel_size=7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(stem_chs),
            nn.ReLU(inplace=True),
        )
        convs = []
        for _ in range(num_convs):
            convs += [nn.Conv2d(stem_chs, stem_chs, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(stem_chs),
                      nn.ReLU(inplace=True)]
        self.convs = nn.Sequential(*convs) if convs else nn.Identity()
        self.proj = nn.Conv2d(stem_chs, embed_dim, kernel_size=self.proj_stride, stride=self.proj_stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_input(x, self.in_chans, self.patch_size, 'PlainMamba')
        x = self.convs(self.stem(x))
        h, w = x.shape[-2:]
        s = self.proj_stride
        pad_h, pad_w = (s - h % s) % s, (s - w % s) % s
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        return self.proj(x).permute(0, 2, 3, 1)


class PlainMamba2D(nn.Module):
    """PlainMamba's 2D selective-scan mixer on NHWC maps (official ``PlainMamba2D``; parameter names kept).

    Args:
        dim: channels in/out (D). expand: E = expand * D. d_state: N. dt_rank: 'auto' = ceil(D / 16).
        conv_size: depth-wise conv kernel (odd). conv_bias / bias: biases of the conv / in_proj and out_proj.
        scan: scan strategy (default ``zigzag``); see the module docstring for the requirements.
        direction_aware: learned per-direction vectors added to B (official: on).
    """

    def __init__(self, dim: int, d_state: int = 16, expand: float = 2, dt_rank: Union[int, str] = 'auto',
                 conv_size: int = 7, conv_bias: bool = True, bias: bool = True,
                 scan: Union[str, ScanStrategy] = 'zigzag', direction_aware: bool = True):
        super().__init__()
        if conv_size < 1 or conv_size % 2 != 1:
            raise ValueError(f'PlainMamba conv_size must be odd, got {conv_size}')
        self.scan_strategy = _resolve_scan(scan)
        self.k_group = self.scan_strategy.num_directions
        self.d_inner = E = int(expand * dim)
        self.d_state = N = int(d_state)
        self.dt_rank = R = int(math.ceil(dim / 16) if dt_rank == 'auto' else dt_rank)

        self.in_proj = nn.Linear(dim, 2 * E, bias=bias)
        self.conv2d = nn.Conv2d(E, E, conv_size, padding=conv_size // 2, groups=E, bias=conv_bias)
        self.act = nn.SiLU()
        self.x_proj = nn.Linear(E, R + 2 * N, bias=False)
        self.dt_proj = nn.Linear(R, E, bias=True)
        dt_w, dt_b = init_dt_projection(1, E, R)  # Mamba "random" dt init, as the official module
        with torch.no_grad():
            self.dt_proj.weight.copy_(dt_w[0])
            self.dt_proj.bias.copy_(dt_b[0])
        self.A_log = nn.Parameter(init_A_log(1, E, N))  # (E, N)
        self.D = nn.Parameter(init_D(1, E))  # (E,)
        self.out_proj = nn.Linear(E, dim, bias=bias)
        if direction_aware:
            self.direction_Bs = nn.Parameter(torch.zeros(NUM_DIRECTION_CODES, N))
            trunc_normal_(self.direction_Bs, std=0.02)
        else:
            self.register_parameter('direction_Bs', None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, H, W, dim) -> (B, H, W, dim)."""
        batch, H, W, _ = x.shape
        K, E, N, R = self.k_group, self.d_inner, self.d_state, self.dt_rank
        L = H * W
        x, z = self.in_proj(x).chunk(2, dim=-1)
        x = self.act(self.conv2d(x.permute(0, 3, 1, 2)))  # (B, E, H, W)

        # dt, B, C in raster token order, shared by every direction (the official code never permutes them).
        x_dbl = self.x_proj(x.permute(0, 2, 3, 1).reshape(batch, L, E))
        dt, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=-1)
        # Official quirk: dt = dt_proj(dt) WITH its bias, and the same bias is passed again as delta_bias, so
        # delta = softplus(W dt + 2 * bias). Reproduced for checkpoint parity.
        dt = self.dt_proj(dt).transpose(1, 2)  # (B, E, L)
        delta = dt.unsqueeze(1).expand(batch, K, E, L).reshape(batch, K * E, L)
        Bs = Bs.transpose(1, 2).unsqueeze(1)  # (B, 1, N, L)
        if self.direction_Bs is not None:
            codes = step_direction_codes(self.scan_strategy, H, W, x.device)  # (K, L)
            Bs = Bs + self.direction_Bs[codes].permute(0, 2, 1).to(Bs.dtype)  # (B, K, N, L)
        else:
            Bs = Bs.expand(batch, K, N, L)
        Cs = Cs.transpose(1, 2).unsqueeze(1).expand(batch, K, N, L)

        us = scan_map(x, self.scan_strategy)  # (B, K, E, L): u permuted into each direction's order
        if us.shape[-1] != L:
            raise ValueError(f"PlainMamba: scan strategy '{self.scan_strategy.name}' gives {us.shape[-1]} steps for "
                             f'{H}x{W}={L} tokens')
        A = -torch.exp(self.A_log.float())
        ys = selective_scan(
            us.reshape(batch, K * E, L), delta, A.repeat(K, 1), Bs.contiguous(), Cs.contiguous(),
            D=self.D.float().repeat(K), delta_bias=self.dt_proj.bias.float().repeat(K), delta_softplus=True,
        )
        y = merge_map(ys.view(batch, K, E, L), self.scan_strategy, (H, W))  # sum over directions, (B, E, H, W)
        y = y.permute(0, 2, 3, 1) * self.act(z)
        return self.out_proj(y)


class PlainMambaBlock(nn.Module):
    """x + DropPath(PlainMamba2D(LN(x))), then (``with_dwconv``) DWConv3x3 + BN + GELU of the sum. NHWC."""

    def __init__(self, dim: int, drop_path: float = 0., with_dwconv: bool = False, norm_eps: float = 1e-5,
                 **mixer_kwargs):
        super().__init__()
        self.norm = LayerNorm(dim, eps=norm_eps)
        self.mixer = PlainMamba2D(dim, **mixer_kwargs)
        self.drop_path = ResidualDropPath(drop_path)
        if with_dwconv:
            self.dw = nn.Sequential(
                nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim, bias=False),
                nn.BatchNorm2d(dim),
                nn.GELU(),
            )
        else:
            self.dw = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop_path.add(x, self.mixer(self.norm(x)))
        if self.dw is not None:
            x = self.dw(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x


class PlainMamba(PlainBackbone):
    """PlainMamba backbone / classifier.

    Args:
        img_size: training resolution; fixes the stored ``pos_embed`` grid (img_size / patch_size). Other input
            sizes work: the position embedding is resized bicubically, as the official ``resize_pos_embed``.
        patch_size: total stride (even). embed_dim, depth: width and number of layers.
        num_convs_patch_embed: extra 3x3 convs in the tokenizer. layers_with_dwconv: layer indices with the
            DWConv+BN+GELU after the residual (L1: (0,)).
        d_state, expand, dt_rank, conv_size: PlainMamba2D settings. scan / direction_aware: see the module docs.
        norm_eps: eps of the final LayerNorm (official ``norm_cfg`` eps 1e-6; per-layer norms use 1e-5).
        pos_drop_rate: dropout after the position embedding; drop_rate: dropout before the classifier.
    """

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = 'avg',
            img_size: Union[int, Tuple[int, int]] = 224,
            patch_size: int = 16,
            embed_dim: int = 192,
            depth: int = 24,
            num_convs_patch_embed: int = 1,
            layers_with_dwconv: Sequence[int] = (),
            d_state: int = 16,
            expand: float = 2,
            dt_rank: Union[int, str] = 'auto',
            conv_size: int = 7,
            scan: Union[str, ScanStrategy] = 'zigzag',
            direction_aware: bool = True,
            norm_eps: float = 1e-6,
            pos_drop_rate: float = 0.,
            drop_rate: float = 0.,
            drop_path_rate: float = 0.,
    ):
        super().__init__()
        img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        bad = sorted(i for i in layers_with_dwconv if not 0 <= i < depth)
        if bad:
            raise ValueError(f'layers_with_dwconv {bad} outside 0..{depth - 1}')
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.scan = scan
        self.output_fmt = 'NHWC'
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.patch_size = patch_size
        self.grad_checkpointing = False

        self.patch_embed = ConvPatchEmbed(in_chans, embed_dim, patch_size, num_convs_patch_embed)
        self.patch_grid = (-(-img_size[0] // patch_size), -(-img_size[1] // patch_size))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_grid[0] * self.patch_grid[1], embed_dim))
        self.pos_drop = nn.Dropout(pos_drop_rate)
        dpr = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.Sequential(*[
            PlainMambaBlock(embed_dim, drop_path=dpr[i], with_dwconv=i in layers_with_dwconv, d_state=d_state,
                            expand=expand, dt_rank=dt_rank, conv_size=conv_size, scan=scan,
                            direction_aware=direction_aware)
            for i in range(depth)
        ])
        self.feature_info = [dict(num_chs=embed_dim, reduction=patch_size, module=f'blocks.{i}') for i in range(depth)]
        self.norm = LayerNorm(embed_dim, eps=norm_eps)
        self.head = ClassifierHead(embed_dim, num_classes, pool_type=global_pool, drop_rate=drop_rate,
                                   input_fmt='NHWC')
        self._init_weights()

    def _init_weights(self):
        # Official classifier init_cfg (plain_mamba_l*_in1k_300e.py): TruncNormal(std=0.02, bias=0) on Linear and
        # Constant(1, 0) on LayerNorm; pos_embed and direction_Bs TN(0.02); Conv/BN keep PyTorch defaults.
        # Deviation: mmcv's init_cfg also reached dt_proj (weight TN(0.02), bias 0 => dt = softplus(0) ~ 0.69 at
        # start), overwriting the Mamba dt init that PlainMamba2D sets and marks ``_no_reinit``. We keep the Mamba
        # dt init (dt in [1e-3, 0.1]); the architecture and pretrained weights are unaffected.
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear) and not name.endswith('dt_proj'):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        trunc_normal_(self.pos_embed, std=.02)

    @torch.jit.ignore
    def no_weight_decay(self):
        # paramwise_cfg custom_keys of the official configs: pos_embed, A_log, D, direction_Bs (decay_mult 0)
        return {'pos_embed', '*.A_log', '*.D', '*.direction_Bs'}

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None):
        self.num_classes = num_classes
        self.head.reset(num_classes, pool_type=global_pool)

    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        """Add the position embedding, resized bicubically (align_corners=False, as mmcls ``resize_pos_embed``)
        when the token grid is not the stored one."""
        H, W = x.shape[1:3]
        gh, gw = self.patch_grid
        pos = self.pos_embed.reshape(1, gh, gw, -1)
        if (H, W) != (gh, gw):
            pos = F.interpolate(pos.permute(0, 3, 1, 2), size=(H, W), mode='bicubic', align_corners=False)
            pos = pos.permute(0, 2, 3, 1)
        return self.pos_drop(x + pos)

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Outputs of the chosen layers (all by default; ``norm=True`` applies the final LayerNorm to each).

        The official segmentation backbone (``PlainMambaSeg``, out_indices (5, 11, 17, 23) for L1/L2 and
        (8, 17, 26, 35) for L3) applies freshly initialised per-level LayerNorms to these; dense heads add theirs.
        """
        check_output_fmt(output_fmt)
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        x = self._pos_embed(self.patch_embed(x))
        blocks = self.blocks if torch.jit.is_scripting() or not stop_early else self.blocks[:max_index + 1]
        intermediates = []
        for i, blk in enumerate(blocks):
            x = blk(x)
            if i in take_indices:
                y = self.norm(x) if norm else x
                intermediates.append(y.permute(0, 3, 1, 2).contiguous() if output_fmt == 'NCHW' else y)
        if intermediates_only:
            return intermediates
        return self.norm(x), intermediates

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self._pos_embed(self.patch_embed(x))
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.blocks, x)
        else:
            x = self.blocks(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# Official (mmcls ImageClassifier) key -> ours, applied after the 'backbone.' prefix is removed.
_KEY_RENAMES = [
    (r'^patch_embed\.projection\.', 'patch_embed.proj.'),
    (r'^layers\.(\d+)\.mamba\.', r'blocks.\1.mixer.'),
    (r'^layers\.(\d+)\.', r'blocks.\1.'),
    (r'^ln1\.', 'norm.'),
]
_SKIP_KEY = re.compile(r'^(ema_|backbone\.norm_layer\d+\.|norm_layer\d+\.)')


def _resize_pos_embed(pos: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
    n = pos.shape[1]
    side = int(round(math.sqrt(n)))
    if side * side != n:
        raise ValueError(f'checkpoint mismatch for PlainMamba: pos_embed of {n} tokens is not a square grid')
    pos = pos.reshape(1, side, side, -1).permute(0, 3, 1, 2).float()
    pos = F.interpolate(pos, size=grid, mode='bicubic', align_corners=False)
    return pos.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], -1)


def checkpoint_filter_fn(state_dict, model: PlainMamba):
    """Convert an official ChenhongyiYang/PlainMamba checkpoint (mmcls: weights under 'state_dict' with
    'backbone.' / 'head.' prefixes; a bare backbone state_dict also works) into this module's keys.

    Dropped: the mmcls ``EMACheckpointHook`` buffers ``ema_*`` (L2/L3 training; the hook swaps EMA weights into the
    parameters before each checkpoint is written, so the regular keys hold the evaluated EMA weights) and the
    segmentation backbone's ``norm_layer{i}``. ``pos_embed`` is resized when the model's ``img_size`` differs.
    A checkpoint already in zoo format is returned unchanged. Raises ValueError naming missing / unexpected keys and
    shape mismatches (the classifier excepted: timm's loader resizes or drops it).
    """
    state_dict = unwrap_state_dict(state_dict)
    if 'patch_embed.proj.weight' in state_dict:
        return state_dict
    target = model.state_dict()
    out = {}
    for key, value in state_dict.items():
        if _SKIP_KEY.match(key) or key.startswith('neck.'):
            continue
        if key.startswith('backbone.'):  # without the prefix: a bare backbone state_dict, renamed the same way
            key = key[len('backbone.'):]
        for pattern, repl in _KEY_RENAMES:
            key, n = re.subn(pattern, repl, key)
            if n:
                break
        out[key] = value
    if 'pos_embed' in out and 'pos_embed' in target and out['pos_embed'].shape != target['pos_embed'].shape \
            and out['pos_embed'].shape[-1] == target['pos_embed'].shape[-1]:
        out['pos_embed'] = _resize_pos_embed(out['pos_embed'], model.patch_grid).to(out['pos_embed'].dtype)
    check_state_dict_fits(out, target, 'PlainMamba', optional=('head.',))
    return out


def _cfg(url: str = '', **kwargs):
    # Official eval pipeline (configs/_base_/datasets/imagenet_bs64_swin_224_lmdb.py test_pipeline): Resize short
    # side to 256 (pillow, bicubic) + CenterCrop 224 -> crop_pct 224/256 = 0.875; mean/std 123.675,116.28,103.53 /
    # 58.395,57.12,57.375 on 0-255 RGB = the ImageNet mean/std of imagenet_eval_cfg.
    return imagenet_eval_cfg(dict(
        first_conv='patch_embed.stem.0', license='apache-2.0', pool_size=(14, 14), paper_ids='arXiv:2403.17695',
        paper_name='PlainMamba: Improving Non-Hierarchical Mamba in Visual Recognition',
        origin_url='https://github.com/ChenhongyiYang/PlainMamba'),
        url=url, **kwargs)


# Official weights: the README's Hugging Face links (mmcls checkpoints; converted by checkpoint_filter_fn).
_HF = 'https://huggingface.co/ChenhongyiYang/PlainMamba/resolve/main/'
default_cfgs = generate_default_cfgs({
    'plainmamba_l1.in1k': _cfg(url=_HF + 'l1.pth'),
    'plainmamba_l2.in1k': _cfg(url=_HF + 'l2.pth'),
    'plainmamba_l3.in1k': _cfg(url=_HF + 'l3.pth'),
})


def _evenly_spaced(depth: int, n: int = 4) -> Tuple[int, ...]:
    """(5, 11, 17, 23) for 24 layers, (8, 17, 26, 35) for 36: the official UperNet out_indices."""
    return tuple(depth * (i + 1) // n - 1 for i in range(n))


def _create_plainmamba(variant: str, pretrained: bool = False, **kwargs) -> PlainMamba:
    depth = kwargs.get('depth', 24)
    return build_zoo_model(PlainMamba, variant, pretrained, checkpoint_filter_fn, out_indices=_evenly_spaced(depth),
                           **kwargs)


@register_zoo_model
def plainmamba_l1(pretrained: bool = False, **kwargs) -> PlainMamba:
    """PlainMamba-L1: 7.3M params, 3.0G FLOPs, 77.9% top-1 (official ``plain_mamba_l1_in1k_300e.py``)."""
    args = dict(embed_dim=192, depth=24, num_convs_patch_embed=1, layers_with_dwconv=(0,), drop_path_rate=0.2)
    return _create_plainmamba('plainmamba_l1', pretrained, **dict(args, **kwargs))


@register_zoo_model
def plainmamba_l2(pretrained: bool = False, **kwargs) -> PlainMamba:
    """PlainMamba-L2: 25.7M params, 8.1G FLOPs, 81.6% top-1 (official ``plain_mamba_l2_in1k_300e.py``)."""
    args = dict(embed_dim=384, depth=24, num_convs_patch_embed=2, layers_with_dwconv=(), drop_path_rate=0.2)
    return _create_plainmamba('plainmamba_l2', pretrained, **dict(args, **kwargs))


@register_zoo_model
def plainmamba_l3(pretrained: bool = False, **kwargs) -> PlainMamba:
    """PlainMamba-L3: 50.5M params, 14.4G FLOPs, 82.3% top-1 (official ``plain_mamba_l3_in1k_300e.py``)."""
    args = dict(embed_dim=448, depth=36, num_convs_patch_embed=2, layers_with_dwconv=(), drop_path_rate=0.4)
    return _create_plainmamba('plainmamba_l3', pretrained, **dict(args, **kwargs))
