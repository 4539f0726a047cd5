"""The single-resolution strategies. Each one only builds its (K, S) order table; see ``base.py`` for the rest.

The order of the K directions is part of each model's checkpoint format (per-direction x_proj_weight[k],
dt_projs_*[k], A_logs / Ds blocks k), so every strategy lists its directions exactly as the official code does.
"""
import math
from typing import Dict, Tuple

import torch

from .base import ScanStrategy, register_scan

__all__ = ['CrossScan', 'UnidirectionalScan', 'BidirectionalScan', 'ZigzagScan', 'AtrousScan']


def _row_major(H: int, W: int) -> torch.Tensor:
    return torch.arange(H * W)


def _column_major(H: int, W: int) -> torch.Tensor:
    return torch.arange(H * W).view(H, W).t().reshape(-1)


@register_scan('cross')
class CrossScan(ScanStrategy):
    """VMamba's SS2D "cross2d" scan, K=4: row-major, column-major, row-major reversed, column-major reversed.

    MzeroMiko/VMamba classification/models/csm_triton.py ``cross_scan_fwd`` (scans=0): y[:, 0] = x.flatten,
    y[:, 1] = x.transpose(H, W).flatten, y[:, 2:4] = flip(y[:, 0:2]); same in csms6s.py ``CrossScan``.
    """
    num_directions = 4

    def build_orders(self, H, W):
        row, col = _row_major(H, W), _column_major(H, W)
        return torch.stack([row, col, row.flip(0), col.flip(0)])


@register_scan('unidirectional')
class UnidirectionalScan(ScanStrategy):
    """K=1: row-major (raster) order. ``scan``/``merge`` reduce to reshapes for it."""
    num_directions = 1

    def build_orders(self, H, W):
        return _row_major(H, W).unsqueeze(0)


@register_scan('bidirectional')
class BidirectionalScan(ScanStrategy):
    """Vim's bidirectional scan, K=2: row-major, then row-major reversed.

    hustvl/Vim mamba-1p1p1/mamba_ssm/modules/mamba_simple.py (bimamba_type "v2"): the forward branch reads the
    token sequence as is, the backward branch reads ``xz.flip([-1])`` and its output is flipped back and added
    (``out + out_b.flip([-1])``). The class token and the optional division by 2 are the model's business.
    """
    num_directions = 2

    def build_orders(self, H, W):
        row = _row_major(H, W)
        return torch.stack([row, row.flip(0)])


def _boustrophedon(grid: torch.Tensor) -> torch.Tensor:
    """Read a 2D table of pixel ids line by line, reversing every second line (a continuous snake)."""
    grid = grid.clone()
    grid[1::2] = grid[1::2].flip(1)
    return grid.reshape(-1)


# PlainMamba's per-step direction codes (get_permute_order: "[start, right, left, up, down] [0, 1, 2, 3, 4]").
ZIGZAG_START, ZIGZAG_RIGHT, ZIGZAG_LEFT, ZIGZAG_UP, ZIGZAG_DOWN = range(5)


@register_scan('zigzag')
class ZigzagScan(ScanStrategy):
    """PlainMamba's continuous zig-zag scans, K=4, in its order (ChenhongyiYang/PlainMamba
    mmcls/plain_mamba_dev/models/plain_mamba/plain_mamba_layer.py ``PlainMamba2D.get_permute_order``):

    0. rows from the top-left: row 0 left->right, row 1 right->left, ... (o1)
    1. the same path walked backwards: starts on the bottom row at the end where (0) stopped, i.e. bottom-right
       if H is odd else bottom-left, and snakes upwards (o2)
    2. columns from the top-left: column 0 top->bottom, column 1 bottom->top, ... (o3)
    3. (2) walked backwards: starts in the right-most column, at the bottom if W is odd else at the top (o4)

    Every step moves to a 4-neighbour, so the scan never jumps. PlainMamba adds a learned per-step "direction"
    vector to B (``direction_Bs[d]``); ``step_directions`` returns those codes.
    """
    num_directions = 4

    def __init__(self):
        super().__init__()
        self._direction_cache: Dict[Tuple[int, int, torch.device], torch.Tensor] = {}

    def build_orders(self, H, W):
        rows = _boustrophedon(torch.arange(H * W).view(H, W))
        cols = _boustrophedon(torch.arange(H * W).view(H, W).t())
        return torch.stack([rows, rows.flip(0), cols, cols.flip(0)])

    def step_directions(self, H: int, W: int, device='cpu') -> torch.Tensor:
        """(K, S) int64: the move that led into each step, as PlainMamba codes it: 0 = first step, 1 = right,
        2 = left, 3 = up, 4 = down (its ``d = [0] + d[:-1]`` shift). Cached per (H, W, device)."""
        key = (H, W, torch.device(device))
        hit = self._direction_cache.get(key)
        if hit is None:
            orders = self.index(H, W).orders
            i, j = orders // W, orders % W
            di, dj = i.diff(dim=1), j.diff(dim=1)
            moves = torch.full_like(di, -1)
            for code, (a, b) in ((ZIGZAG_RIGHT, (0, 1)), (ZIGZAG_LEFT, (0, -1)), (ZIGZAG_UP, (-1, 0)),
                                 (ZIGZAG_DOWN, (1, 0))):
                moves[(di == a) & (dj == b)] = code
            if (moves < 0).any():  # cannot happen for the snakes above; guards edits of build_orders
                raise ValueError(f'zigzag at {H}x{W}: a step is not a move to a 4-neighbour')
            codes = torch.cat([torch.full_like(orders[:, :1], ZIGZAG_START), moves], dim=1)
            hit = self._direction_cache.setdefault(key, codes.to(key[2]).contiguous())
        return hit

    def __getstate__(self):
        state = super().__getstate__()
        state['_direction_cache'] = {}
        return state


@register_scan('atrous')
class AtrousScan(ScanStrategy):
    """EfficientVMamba's skip-sampling ("atrous") scan: the map is split into step x step interleaved sub-grids
    and each direction scans one sub-grid only, so every pixel is read by exactly one direction (coverage 1) and
    each sequence is ~1/step^2 as long.

    Official code (TerryPei/EfficientVMamba classification/lib/models/mamba/efficient_scan.py ``EfficientScan``,
    step_size=2, after zero-padding the map to even H, W):
      k=0: x[::2, ::2] row-major          (rows = 0 mod 2, cols = 0 mod 2)
      k=1: x.T[::2, 1::2] row-major = x[1::2, ::2] column-major
      k=2: x[::2, 1::2] row-major
      k=3: x.T[1::2, 1::2] row-major = x[1::2, 1::2] column-major
    i.e. direction k = c0 * step + r0 scans the sub-grid with row offset r0 and column offset c0, row-major for
    even k and column-major for odd k. The official code hard-codes the four slices (for step_size > 2 it reads
    only offsets 0 and 1 and leaves the rest of its merged map uninitialised), so for step != 2 we use the same
    rule over all step^2 offsets: K = step^2. step=1 is plain row-major.

    Options:
      step: sub-grid stride (>= 1), default 2 as in EfficientVMamba.
      pad: where the shorter sequences of a map whose H or W is not a multiple of ``step`` get their padding.
        'end' (default): real pixels first, sentinel steps at the end of the sequence. For a causal scan trailing
          padding never changes the outputs of real tokens.
        'grid': the official layout: pad the map with zeros to a multiple of ``step`` and scan the padded grid,
          so sentinel steps sit where the padded pixels are (between columns for a column-major direction). Use it
          to reproduce EfficientVMamba's numbers at odd sizes; identical to 'end' when step divides H and W.
    """

    def __init__(self, *, step: int = 2, pad: str = 'end'):
        if isinstance(step, bool) or not isinstance(step, int) or step < 1:
            raise ValueError(f"atrous scan: step must be an int >= 1, got {step!r}")
        if pad not in ('end', 'grid'):
            raise ValueError(f"atrous scan: pad must be 'end' or 'grid', got {pad!r}")
        super().__init__()
        self.step = step
        self.pad = pad
        self.num_directions = step * step

    def build_orders(self, H, W):
        s, HW = self.step, H * W
        S = math.ceil(H / s) * math.ceil(W / s)  # the (0, 0) sub-grid is the largest
        # 'grid' walks the zero-padded map (rows/cols past the edge become sentinels); 'end' only real pixels.
        H_walk, W_walk = (math.ceil(H / s) * s, math.ceil(W / s) * s) if self.pad == 'grid' else (H, W)
        orders = torch.full((s * s, S), HW, dtype=torch.long)
        for k in range(s * s):
            r0, c0 = k % s, k // s
            # max(): an offset past a tiny map's edge gives an empty sub-grid (torch.arange rejects start > end)
            rows = torch.arange(r0, max(r0, H_walk), s).view(-1, 1)
            cols = torch.arange(c0, max(c0, W_walk), s).view(1, -1)
            ids = torch.where((rows < H) & (cols < W), rows * W + cols, HW)
            ids = ids.reshape(-1) if k % 2 == 0 else ids.t().reshape(-1)
            orders[k, :ids.numel()] = ids
        return orders
