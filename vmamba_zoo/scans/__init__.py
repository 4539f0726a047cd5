"""2D scan strategies as data.

A scan strategy turns an (H, W) map into K flatten orders ("directions") and their inverses: a ``ScanIndex``
built once per (H, W, device) and cached. One ``scan`` and one ``merge`` serve every strategy, and any model or
kernel can consume the same index maps:

    xs = scan(x, 'cross')             # (B, C, H, W) -> (B, K, C, S)
    ys = selective_scan(xs, ...)      # per-direction sequence model
    y = merge(ys, 'cross', (H, W))    # (B, K, C, S) -> (B, C, H, W), summed over directions

``merge(scan(x, s), s, (H, W)) == index.coverage * x``. Padding steps (sentinel ``H*W`` in ``orders``) read zero
and are dropped by ``merge``.

Registered strategies (``list_scans()``):

  cross               VMamba SS2D, K=4: row-major, column-major, both reversed
  unidirectional      K=1 row-major
  bidirectional       Vim, K=2: row-major and reversed
  zigzag              PlainMamba, K=4 continuous snakes (rows, rows backwards, columns, columns backwards)
  atrous              EfficientVMamba skip-sampling, K=step^2 interleaved sub-grids, each pixel read once
  cross_without_row   K=3: cross minus its row-major direction (MSVMamba's low-resolution directions)
  multiscale          MSVMamba: composite of per-resolution groups; see ``vmamba_zoo.scans.multiscale``

Add one by subclassing ``ScanStrategy`` (set ``num_directions``, implement ``build_orders``) and decorating it
with ``@register_scan('name')``; options are keyword-only ``__init__`` arguments.
"""
from .base import ScanIndex, ScanStrategy, get_scan, list_scans, register_scan
from .ops import merge, scan
from .strategies import AtrousScan, BidirectionalScan, CrossScan, UnidirectionalScan, ZigzagScan
from .multiscale import CrossWithoutRowScan, MultiScaleScan, ScanGroup

__all__ = [
    'ScanIndex', 'ScanStrategy', 'register_scan', 'get_scan', 'list_scans', 'scan', 'merge',
    'CrossScan', 'UnidirectionalScan', 'BidirectionalScan', 'ZigzagScan', 'AtrousScan',
    'CrossWithoutRowScan', 'MultiScaleScan', 'ScanGroup',
]
