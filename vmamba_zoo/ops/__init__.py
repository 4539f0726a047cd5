"""Sequence ops shared by the zoo's models; each op has a reference ``naive.py`` beside its fast paths."""
from .selective_scan import available_backends, register_backend, selective_scan
from .nc_ssd import nc_ssd
from .state_fusion import state_fusion_scan

__all__ = ['selective_scan', 'register_backend', 'available_backends', 'nc_ssd', 'state_fusion_scan']
