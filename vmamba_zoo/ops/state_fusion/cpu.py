"""State fusion with its hidden states from the C++ CPU selective scan (``kernels/cpu``): the CPU inference path.

Same data flow and results as ``chunked.py`` (``fuse_scan_states``); only the state scan differs: the C++
kernel writes every hidden state in one pass (``selective_scan_cpu(return_states=True)``) where the chunked scan
makes ~15 element-wise passes. Under autograd ``selective_scan_cpu`` runs the chunked scan itself, so gradients
are those of ``chunked.py``.
"""
from ..selective_scan.cpu import selective_scan_cpu
from .chunked import fuse_scan_states

__all__ = ['state_fusion_scan_cpu']


def _states_of(u, delta, A, B, delta_bias, delta_softplus):
    return selective_scan_cpu(u, delta, A, B, None, delta_bias=delta_bias, delta_softplus=delta_softplus,
                              return_states=True)


def state_fusion_scan_cpu(u, delta, A, B, C, weight, size, D=None, delta_bias=None, delta_softplus=False,
                          dilations=(1, 3, 5), order=None):
    """See ``vmamba_zoo.ops.state_fusion.state_fusion_scan``."""
    return fuse_scan_states(_states_of, u, delta, A, B, C, weight, size, D, delta_bias, delta_softplus, dilations,
                            order)
