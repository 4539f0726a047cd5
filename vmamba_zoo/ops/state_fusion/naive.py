"""Structure-aware state fusion, sequentially: the reference every other path is tested against.

Spatial-Mamba (EdwardChasel/Spatial-Mamba ``classification/models/spatialmamba.py`` ``StructureAwareSSM.ssm``
and ``StateFusion``; ``classification/models/utils.py`` ``SelectiveScanStateFn``) changes the selective scan's
read-out: the hidden states h_t of one causal scan are laid back onto the 2D map, fused by depth-wise dilated
convolutions with replicate borders, and only then read out by C:

    h_t      = exp(dt_t A) h_{t-1} + dt_t B_t u_t                    (the Mamba recurrence; see selective_scan)
    H[p]     = h_t for the step t at which the scan visits pixel p     (row-major scan: p = t)
    F[p]     = sum_i sum_(a,b) w_i[a, b] * H[clamp(p + d_i * (a - kh//2, b - kw//2))]   (replicate border)
    y_t      = <C_t, F[p_t]> + D u_t

The official ``StateFusion`` uses 3x3 kernels with dilations 1, 3, 5, each scaled by its ``alpha``; its eval path
merges them into one 11x11 kernel with the same (replicate) border, so both are this formula.

Here: the sequential reference scan (``selective_scan_naive(return_states=True)``) and the fusion written as one
gather per kernel tap over clamped pixel coordinates (no convolution routine), in fp32 (float64 for float64).
Slow by design.
"""
import torch

from ..selective_scan.common import compute_dtype
from ..selective_scan.naive import selective_scan_naive
from .common import check_inputs, pixel_inverse

__all__ = ['state_fusion_scan_naive']


def _neighbour_pixels(height, width, di, dj, device):
    """(H*W,) flat index of pixel (clamp(i + di), clamp(j + dj)) for every pixel (i, j): the replicate border."""
    rows = (torch.arange(height, device=device) + di).clamp(0, height - 1)
    cols = (torch.arange(width, device=device) + dj).clamp(0, width - 1)
    return (rows[:, None] * width + cols[None, :]).reshape(-1)


def state_fusion_scan_naive(u, delta, A, B, C, weight, size, D=None, delta_bias=None, delta_softplus=False,
                            dilations=(1, 3, 5), order=None):
    """See ``vmamba_zoo.ops.state_fusion.state_fusion_scan``. Returns (batch, K*D, L) in u's dtype."""
    fs = check_inputs(u, delta, A, B, C, weight, size, D, delta_bias, dilations, order)
    batch, channels, length, d_state, groups, _ = fs.scan
    dtype = compute_dtype(u, delta, A, B, C, weight, D, delta_bias)
    per_group = channels // groups
    states = selective_scan_naive(u.to(dtype), delta.to(dtype), A.to(dtype), B.to(dtype), None,
                                  delta_bias=None if delta_bias is None else delta_bias.to(dtype),
                                  delta_softplus=delta_softplus, return_states=True)  # (batch, K*D, N, L)
    states = states.view(batch, groups, per_group, d_state, length)
    if order is None:
        order = torch.arange(length, device=u.device).expand(groups, length)
    inverse = pixel_inverse(order)
    w = weight.to(dtype).view(len(fs.dilations), groups, per_group, 1, *fs.kernel_size)
    kh, kw = fs.kernel_size
    fused = torch.zeros_like(states)
    for i, dil in enumerate(fs.dilations):
        for a in range(kh):
            for b in range(kw):
                nb = _neighbour_pixels(fs.height, fs.width, dil * (a - kh // 2), dil * (b - kw // 2), u.device)
                # step s of direction k sits at pixel order[k, s]; its tap reads the step that visits the neighbour
                src_step = inverse.gather(1, nb[order])  # (K, L)
                tap = states.gather(-1, src_step.view(1, groups, 1, 1, length).expand_as(states))
                fused = fused + w[i, ..., a, b, None] * tap
    Cg = C.to(dtype).view(batch, -1, 1, d_state, length)
    y = (fused * Cg).sum(-2).view(batch, channels, length)
    if D is not None:
        y = y + D.to(dtype)[:, None] * u.to(dtype)
    return y.to(u.dtype)
