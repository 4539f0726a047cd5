"""Structure-aware state fusion in plain PyTorch: the fast path (CPU, and the fallback on any device).

Same contract and results as ``naive.py``; three changes make it fast:

* the states come from the chunked selective scan (``selective_scan_chunked(return_states=True)``: cumulative
  sums per chunk instead of one Python step per token);
* the fusion is one replicate pad of the state map by the widest reach, then one depth-wise ``conv2d`` per
  dilation over the padded map, each output cropped to the pixels it centres on (the same border for all);
* a non-row-major scan order is applied as two gathers (states to pixels, fused states back to steps).
"""
import torch
import torch.nn.functional as F

from ..selective_scan.chunked import selective_scan_chunked
from ..selective_scan.common import compute_dtype
from .common import check_inputs, pixel_inverse

__all__ = ['state_fusion_scan_chunked', 'fuse_states', 'fuse_scan_states']


def fuse_states(maps: torch.Tensor, weight: torch.Tensor, dilations) -> torch.Tensor:
    """Sum over i of the depth-wise conv of ``maps`` (B, C, H, W) with ``weight[i]`` (C, kh, kw), dilation
    ``dilations[i]``, replicate border; the output keeps the map's size and is contiguous (NCHW)."""
    _, channels, height, width = maps.shape
    kh, kw = weight.shape[-2:]
    reach_h = [d * (kh // 2) for d in dilations]
    reach_w = [d * (kw // 2) for d in dilations]
    ph, pw = max(reach_h), max(reach_w)
    # One replicate pad by the widest reach serves every dilation: each conv runs over the whole padded map and
    # its output is cropped to the pixels it centres on. Channels-last because oneDNN's depth-wise kernels
    # vectorise over channels there (NCHW was 1-10x slower, measured at 128x56x56 on 1 CPU thread); convolving
    # the whole padded map rather than a window avoids a copy of the non-contiguous window per dilation.
    padded = F.pad(maps, (pw, pw, ph, ph), mode='replicate').contiguous(memory_format=torch.channels_last)
    in_place = not (torch.is_grad_enabled() and (maps.requires_grad or weight.requires_grad))
    out = None
    for i, dil in enumerate(dilations):
        part = F.conv2d(padded, weight[i].unsqueeze(1), dilation=dil, groups=channels)
        top, left = ph - reach_h[i], pw - reach_w[i]
        part = part[..., top:top + height, left:left + width]
        # accumulate into the first conv's own output when autograd is off: no further map-sized temporaries
        out = part if out is None else out.add_(part) if in_place else out + part
    return out.contiguous()  # the read-out runs on plain (B, C, L) tensors: mixed layouts there were ~10x slower


def state_fusion_scan_chunked(u, delta, A, B, C, weight, size, D=None, delta_bias=None, delta_softplus=False,
                              dilations=(1, 3, 5), order=None, chunk_size=None):
    """See ``vmamba_zoo.ops.state_fusion.state_fusion_scan``; ``chunk_size`` is passed to the chunked scan."""
    def states_of(u, delta, A, B, delta_bias, delta_softplus):
        return selective_scan_chunked(u, delta, A, B, None, delta_bias=delta_bias, delta_softplus=delta_softplus,
                                      chunk_size=chunk_size, return_states=True)
    return fuse_scan_states(states_of, u, delta, A, B, C, weight, size, D, delta_bias, delta_softplus, dilations,
                            order)


def fuse_scan_states(states_of, u, delta, A, B, C, weight, size, D=None, delta_bias=None, delta_softplus=False,
                     dilations=(1, 3, 5), order=None):
    """The state-fusion data flow around any scan that returns every hidden state: ``states_of(u, delta, A, B,
    delta_bias, delta_softplus)`` -> (batch, K*D, N, L) (the chunked scan here, the C++ kernel in ``cpu.py``)."""
    fs = check_inputs(u, delta, A, B, C, weight, size, D, delta_bias, dilations, order)
    batch, channels, length, d_state, groups, _ = fs.scan
    dtype = compute_dtype(u, delta, A, B, C, weight, D, delta_bias)
    per_group = channels // groups
    states = states_of(u, delta, A, B, delta_bias, delta_softplus)  # (batch, K*D, N, L)
    states = states.to(dtype)  # float64 weights with float32 sequences: fuse in float64 as the reference does
    rows = per_group * d_state  # state maps per direction
    states = states.view(batch, groups, rows, length)
    if order is not None:
        inverse = pixel_inverse(order)
        states = states.gather(-1, inverse.view(1, groups, 1, length).expand_as(states))
    # every state of a channel is fused with that channel's kernel: (n, K*D, kh, kw) -> (n, K*D*N, kh, kw)
    w = weight.to(dtype)
    if d_state > 1:
        w = w.repeat_interleave(d_state, dim=1)
    maps = states.reshape(batch, groups * rows, fs.height, fs.width)
    fused = fuse_states(maps, w, fs.dilations).view(batch, groups, rows, length)
    if order is not None:
        fused = fused.gather(-1, order.view(1, groups, 1, length).expand_as(fused))
    fused = fused.view(batch, groups, per_group, d_state, length)
    Cg = C.view(batch, -1, 1, d_state, length).to(dtype)
    y = (fused * Cg).sum(-2) if d_state > 1 else fused.squeeze(-2) * Cg.squeeze(-2)
    y = y.reshape(batch, channels, length)
    if D is not None:
        y = torch.addcmul(y, u.to(dtype), D.to(dtype)[:, None])
    return y.to(u.dtype)
