"""Input checking shared by every state-fusion backend, so all of them reject bad input the same way."""
from typing import NamedTuple, Optional, Sequence, Tuple

import torch

from ..selective_scan.common import ScanShapes, check_inputs as check_scan_inputs


class FusionShapes(NamedTuple):
    scan: ScanShapes
    height: int
    width: int
    dilations: Tuple[int, ...]
    kernel_size: Tuple[int, int]


def check_inputs(u, delta, A, B, C, weight, size, D=None, delta_bias=None, dilations: Sequence[int] = (1, 3, 5),
                 order: Optional[torch.Tensor] = None) -> FusionShapes:
    """Validate the state-fusion contract (see ``vmamba_zoo.ops.state_fusion``); one ValueError naming the problem.

    ``order`` rows are only checked for shape and dtype here; ``pixel_inverse`` checks that they are permutations.
    """
    shapes = check_scan_inputs(u, delta, A, B, C, D, None, delta_bias)
    try:
        height, width = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f'state_fusion_scan: size must be (H, W), got {size!r}') from None
    if height * width != shapes.length:
        raise ValueError(f'state_fusion_scan: size {height}x{width} does not hold the L={shapes.length} steps of u')
    dilations = tuple(int(d) for d in dilations)
    if not dilations or min(dilations) < 1:
        raise ValueError(f'state_fusion_scan: dilations must be positive integers, got {dilations}')
    if weight.dim() != 4 or weight.shape[0] != len(dilations) or weight.shape[1] != shapes.channels:
        raise ValueError(f'state_fusion_scan: weight must be (len(dilations)={len(dilations)}, K*D={shapes.channels}'
                         f', kh, kw), got {tuple(weight.shape)}')
    kernel_size = (int(weight.shape[2]), int(weight.shape[3]))
    if kernel_size[0] % 2 == 0 or kernel_size[1] % 2 == 0:
        raise ValueError(f'state_fusion_scan: kernel sizes must be odd (centred taps), got {kernel_size}')
    if order is not None:
        if order.dtype != torch.long or tuple(order.shape) != (shapes.groups, shapes.length):
            raise ValueError(f'state_fusion_scan: order must be an int64 (K={shapes.groups}, L={shapes.length}) '
                             f'tensor of pixel indices, got {order.dtype} {tuple(order.shape)}')
    return FusionShapes(shapes, height, width, dilations, kernel_size)


def pixel_inverse(order: torch.Tensor) -> torch.Tensor:
    """inverse[k, p] = the step at which direction k visits pixel p; ValueError unless every row of ``order`` is
    a permutation of 0..L-1 (fusion needs every pixel's state exactly once per direction)."""
    inverse = torch.argsort(order, dim=1)
    pixels = torch.arange(order.shape[1], device=order.device).expand_as(order)
    if not torch.equal(order.gather(1, inverse), pixels):  # the sorted rows must be exactly 0..L-1
        raise ValueError('state_fusion_scan: every row of order must visit each of the H*W pixels exactly once')
    return inverse
