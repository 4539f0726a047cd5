"""MSVMamba's multi-scale scan, described as data: per-resolution groups of ordinary strategies.

What the official code does (YuHengsss/MSVMamba classification/models/vmamba.py ``SS2D.forward`` with
``sscore_type='multiscale_4scan_12'`` and the default ``MS_SPLIT=[1, 3]`` of classification/config.py, used by
every released config; the selective scan is ``x_selective_scan`` in classification/models/utils.py):

* full-resolution branch: the usual depth-wise conv (stride 1) + SiLU, then ONE direction, row-major
  (``x.flatten(2)``), with its own parameter set.
* low-resolution branch: a learned depth-wise ``Conv2d(d, d, kernel_size=7, stride=2, padding=3, groups=d)``
  + SiLU applied to the pre-conv input (so the map is ceil(H/2) x ceil(W/2)), then THREE directions:
  row-major reversed, column-major, column-major reversed (``x_hori_r, x_vert, x_vert_r``). They are
  concatenated end to end into one sequence of length 3*h*w and run as ONE selective scan with ONE parameter
  set (the state carries over from one direction into the next).
* parameter sets: ``forward_core_multiscale`` gets ``[x_b1, x]``, so set 0 (x_proj_weight[0], A_logs block 0, ...)
  belongs to the low-resolution branch and set 1 to the full-resolution one.
* each branch's output goes through ``out_norm`` (per token) inside ``x_selective_scan``; the low-res
  directions are put back and summed, upsampled with ``F.interpolate(mode='bilinear', align_corners=False)``
  to (H, W) and added to the full-resolution output.

How a model uses it::

    ms = get_scan('multiscale')
    maps = [act(conv_low(x)), act(conv_full(x))]          # in ms.groups order; conv_low as ms.downsample says
    merged = []
    for group, xg in zip(ms.groups, maps):
        seq = group.pack(scan(xg, group.strategy))         # (B, P, C, L): P = group.param_sets
        out = selective_scan(seq, params[group.param_slice])   # any per-token norm may go here
        merged.append(merge(group.unpack(out), group.strategy, xg.shape[-2:]))
    y = ms.fuse(merged, (H, W))                            # upsample (bilinear) + sum

``scan(x, 'multiscale')`` / ``merge(y, 'multiscale', ...)`` raise a ValueError that points here: the
low-resolution map comes from a learned convolution, which is no part of a scan library.

MSVMambav3 (the NeurIPS models, branch ``v2`` of YuHengsss/MSVMamba, ``SS2Dv2.forward_corev2`` with forward type
``vms`` and the default ``FULL_RES_INDEX=1``) scans the same four directions with two differences, both options
here: its parameter set 0 belongs to the full-resolution branch (``full_res_params_first=True``) and the
low-resolution sum is upsampled with ``mode='nearest'`` (``upsample_mode='nearest'``). Where the per-token norm
goes (per branch on master, once after ``fuse`` in v3) is the model's business.
"""
import math
from types import MappingProxyType
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F

from .base import ScanStrategy, get_scan, register_scan
from .strategies import _column_major, _row_major

__all__ = ['ScanGroup', 'MultiScaleScan', 'CrossWithoutRowScan']


@register_scan('cross_without_row')
class CrossWithoutRowScan(ScanStrategy):
    """MSVMamba's low-resolution directions, K=3: row-major reversed, column-major, column-major reversed
    (``x_hori_r``, ``x_vert``, ``x_vert_r`` in MSVMamba's SS2D.forward; VMamba's cross scan minus its first,
    plain row-major direction, which MSVMamba runs on the full-resolution map instead)."""
    num_directions = 3

    def build_orders(self, H, W):
        row, col = _row_major(H, W), _column_major(H, W)
        return torch.stack([row.flip(0), col, col.flip(0)])


@dataclass(frozen=True)
class ScanGroup:
    """One resolution of a composite scan.

    strategy: an ordinary strategy over this group's own map.
    stride: the group's map is the input downsampled by this stride: (ceil(H / stride), ceil(W / stride)).
    chained: the group's K directions run as ONE sequence (concatenated end to end, length K*S) with one
        parameter set, as MSVMamba's low-resolution branch does; otherwise K sequences, K parameter sets.
    param_offset: index of the group's first parameter set among the composite's ``num_param_sets``.
    """
    strategy: ScanStrategy
    stride: int
    chained: bool
    param_offset: int

    @property
    def param_sets(self) -> int:
        return 1 if self.chained else self.strategy.num_directions

    @property
    def param_slice(self) -> slice:
        return slice(self.param_offset, self.param_offset + self.param_sets)

    def size(self, H: int, W: int) -> Tuple[int, int]:
        return math.ceil(H / self.stride), math.ceil(W / self.stride)

    def pack(self, xs: torch.Tensor) -> torch.Tensor:
        """(B, K, C, S) -> what the selective scan reads: (B, 1, C, K*S) if chained, else unchanged."""
        if not self.chained:
            return xs
        B, K, C, S = xs.shape
        return xs.transpose(1, 2).reshape(B, 1, C, K * S)

    def unpack(self, ys: torch.Tensor) -> torch.Tensor:
        """Inverse of ``pack``: (B, 1, C, K*S) -> (B, K, C, S) if chained, else unchanged."""
        if not self.chained:
            return ys
        B, _, C, L = ys.shape
        K = self.strategy.num_directions
        return ys.reshape(B, C, K, L // K).transpose(1, 2)


@register_scan('multiscale')
class MultiScaleScan(ScanStrategy):
    """MSVMamba's multi-scale scan (see the module docstring): group 0 = 3 chained directions on the
    stride-2 map, group 1 = row-major on the full map.

    num_directions = 4 (all directions of all groups); num_param_sets = 2.

    Options:
        upsample_mode: how ``fuse`` brings the low-resolution sum to full size: 'bilinear' (master,
            align_corners=False) or 'nearest' (MSVMambav3).
        full_res_params_first: parameter set 0 belongs to the full-resolution group (MSVMambav3); by default
            (master) set 0 is the low-resolution group's. ``groups`` keep their order either way.
    """
    composite = True
    num_directions = 4
    scale_factor = 2  # stride of the low-resolution map
    # The learned downsampling that makes the low-resolution map (depth-wise, followed by the block's SiLU).
    downsample = MappingProxyType(dict(kernel_size=7, stride=2, padding=3, depthwise=True))
    align_corners = False  # for 'bilinear'

    def __init__(self, *, upsample_mode: str = 'bilinear', full_res_params_first: bool = False):
        super().__init__()
        if upsample_mode not in ('bilinear', 'nearest'):
            raise ValueError(f"multiscale: upsample_mode must be 'bilinear' or 'nearest', got {upsample_mode!r}")
        if not isinstance(full_res_params_first, bool):
            raise ValueError(f'multiscale: full_res_params_first must be a bool, got {full_res_params_first!r}')
        self.upsample_mode = upsample_mode
        self.full_res_params_first = full_res_params_first
        low_offset, full_offset = (1, 0) if full_res_params_first else (0, 1)
        self.groups: Tuple[ScanGroup, ...] = (
            ScanGroup(get_scan('cross_without_row'), stride=self.scale_factor, chained=True, param_offset=low_offset),
            ScanGroup(get_scan('unidirectional'), stride=1, chained=False, param_offset=full_offset),
        )
        self.num_param_sets = sum(g.param_sets for g in self.groups)

    def group_sizes(self, H: int, W: int) -> List[Tuple[int, int]]:
        """Map size of each group; ceil(H / 2) is also what the stride-2, k=7, p=3 conv produces."""
        return [g.size(H, W) for g in self.groups]

    def index(self, H, W, device='cpu'):
        raise ValueError("'multiscale' is a composite scan: scan each of get_scan('multiscale').groups on its own "
                         'map (group.strategy, group.size(H, W)) and fuse the merged maps with .fuse(); '
                         'see vmamba_zoo.scans.multiscale')

    def build_orders(self, H, W):
        raise ValueError("'multiscale' has no single order table; use its groups")

    def fuse(self, merged: Sequence[torch.Tensor], size: Tuple[int, int]) -> torch.Tensor:
        """Sum the groups' merged maps (each (B, C, h_g, w_g), in ``groups`` order) at ``size``, upsampling the
        coarse ones the way MSVMamba does (``upsample_mode``: bilinear with align_corners=False, or nearest)."""
        if len(merged) != len(self.groups):
            raise ValueError(f'fuse expects {len(self.groups)} merged maps (one per group), got {len(merged)}')
        H, W = size
        out = None
        for g, y in zip(self.groups, merged):
            if y.dim() != 4 or tuple(y.shape[-2:]) != g.size(H, W):
                raise ValueError(f'fuse: a map of group {g.strategy.name} (stride {g.stride}) must be '
                                 f'(B, C, {g.size(H, W)[0]}, {g.size(H, W)[1]}) for size {(H, W)}; '
                                 f'got {tuple(y.shape)}')
            if tuple(y.shape[-2:]) != (H, W):
                align = self.align_corners if self.upsample_mode == 'bilinear' else None  # nearest takes none
                y = F.interpolate(y, size=(H, W), mode=self.upsample_mode, align_corners=align)
            out = y if out is None else out + y
        return out
