#!/usr/bin/env python
"""Check the zoo's VSSD against the official implementation, on CPU, with random weights.

    python tools/verify_official_vssd.py --repo /path/to/YuHengsss/VSSD [--models vssd_tiny ...] [--flops]

Builds the official ``VMAMBA2`` (``classification/models/mamba2.py``) from a local checkout with the arguments
``classification/models/__init__.py`` ``build_vssd_model`` passes for ``configs/vssd/vssd_{micro,tiny,small,base}
_e300.yaml`` over the ``MODEL.VMAMBA2`` defaults of ``classification/config.py``, perturbs its weights and the
stem's / downsamples' BN statistics, converts its state_dict with the zoo's ``checkpoint_filter_fn``, loads it
strictly and compares logits in eval mode at several input sizes. The official classifier's ``forward_features``
halves H and W by floor division while its stride-2 convs round up, so it only runs inputs whose sides are
multiples of 32; odd feature maps are reached in the last stage (the default 96x160 gives 3x5 there, the
attention stage). ``--flops`` also counts FLOPs at 224^2 with the official ``VMAMBA2.flops()`` (fvcore
``flop_count`` with its ``supported_ops``; its ``.cuda()`` is made a no-op for the call), next to the zoo's
``count_flops``; the check then also requires them to agree within ``--flops-rtol``.

The official module imports Triton kernels of ``mamba_ssm`` at the top. With ``LINEAR_ATTN_DUALITY: True`` (every
published config) its forward is plain PyTorch (``Mamba2.non_casual_linear_attn``), so this script registers
stand-ins for those imports instead of needing ``mamba_ssm``:
``mamba_ssm.ops.triton.ssd_combined.mamba_chunk_scan_combined`` (the causal chunked SSD, only reached with
``LINEAR_ATTN_DUALITY: False``) is computed by the zoo's sequential ``selective_scan_naive`` (Mamba2's SSD is a
selective scan whose A is one scalar per head, dt shared by the head's channels and B/C shared by a group of
heads); ``mamba_split_conv1d_scan_combined``, ``layernorm_gated.RMSNorm`` and
``selective_state_update.selective_state_update`` are imported but never called by ``mamba2.py`` and raise if
they ever are. It also needs ``einops`` (``pip install einops``) and ``fvcore``.

``--float64`` runs the comparison in double precision, where equal computations agree to ~1e-14.

Exits 1 if any model's parameter count, logits (``--atol``) or, with ``--flops``, FLOPs disagree.
"""
import argparse
import contextlib
import importlib
import logging
import sys
import types
import warnings
from pathlib import Path

import timm
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import vmamba_zoo  # noqa: E402,F401
from vmamba_zoo.models.vssd import checkpoint_filter_fn  # noqa: E402
from vmamba_zoo.ops.selective_scan import selective_scan_naive  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _official_check import add_comparison_args, compare_with_official, perturb_official_  # noqa: E402

# zoo name -> the yaml's MODEL.VMAMBA2 values that differ between variants (config.py defaults otherwise:
# D_STATE 64, DROP_PATH_RATE 0.2, NUM_HEADS [2, 4, 8, 16])
VARIANTS = {
    'vssd_micro': dict(embed_dim=48, depths=[2, 2, 8, 4], num_heads=[2, 4, 8, 16], d_state=48, drop_path_rate=0.2),
    'vssd_tiny': dict(embed_dim=64, depths=[2, 4, 8, 4], num_heads=[2, 4, 8, 16], d_state=64, drop_path_rate=0.2),
    'vssd_small': dict(embed_dim=64, depths=[3, 4, 21, 5], num_heads=[2, 4, 8, 16], d_state=64, drop_path_rate=0.4),
    'vssd_base': dict(embed_dim=96, depths=[3, 4, 21, 5], num_heads=[3, 6, 12, 24], d_state=64, drop_path_rate=0.6),
}


def mamba_chunk_scan_combined(x, dt, A, B, C, chunk_size=256, D=None, z=None, dt_bias=None, initial_states=None,
                              seq_idx=None, dt_softplus=False, dt_limit=(0.0, float('inf')), **_unused):
    """The causal SSD of ``mamba_ssm`` (x (b, l, h, p), dt (b, l, h), A (h), B / C (b, l, g, n), D (h)) as a
    sequential selective scan over the h * p channels; the chunking only changes the order of the sums."""
    if z is not None or initial_states is not None or seq_idx is not None or dt_limit != (0.0, float('inf')):
        raise NotImplementedError('stand-in mamba_chunk_scan_combined: z, initial_states, seq_idx, dt_limit')
    b, length, h, p = x.shape
    if dt_bias is not None:
        dt = dt + dt_bias
    if dt_softplus:
        dt = torch.nn.functional.softplus(dt)
    u = x.permute(0, 2, 3, 1).reshape(b, h * p, length)
    delta = dt.permute(0, 2, 1).repeat_interleave(p, dim=1)
    y = selective_scan_naive(u, delta, A.repeat_interleave(p)[:, None].expand(h * p, B.shape[-1]),
                             B.permute(0, 2, 3, 1), C.permute(0, 2, 3, 1),
                             D=None if D is None else D.repeat_interleave(p))
    return y.reshape(b, h, p, length).permute(0, 3, 1, 2)


def _never_called(name):
    def fn(*_a, **_k):
        raise NotImplementedError(f'{name}: stand-in only (mamba2.py imports it, the published configs never '
                                  'call it)')
    return fn


def _install_stand_ins():
    ssd = types.ModuleType('mamba_ssm.ops.triton.ssd_combined')
    ssd.mamba_chunk_scan_combined = mamba_chunk_scan_combined
    ssd.mamba_split_conv1d_scan_combined = _never_called('mamba_split_conv1d_scan_combined')
    ln = types.ModuleType('mamba_ssm.ops.triton.layernorm_gated')
    ln.RMSNorm = _never_called('RMSNorm')
    ssu = types.ModuleType('mamba_ssm.ops.triton.selective_state_update')
    ssu.selective_state_update = _never_called('selective_state_update')
    pkgs = {name: types.ModuleType(name) for name in ('mamba_ssm', 'mamba_ssm.ops', 'mamba_ssm.ops.triton')}
    pkgs['mamba_ssm'].ops, pkgs['mamba_ssm.ops'].triton = pkgs['mamba_ssm.ops'], pkgs['mamba_ssm.ops.triton']
    for mod in (ssd, ln, ssu):
        setattr(pkgs['mamba_ssm.ops.triton'], mod.__name__.rsplit('.', 1)[1], mod)
    for mod in (*pkgs.values(), ssd, ln, ssu):
        sys.modules.setdefault(mod.__name__, mod)


def _build_official(module, embed_dim, depths, num_heads, d_state, drop_path_rate):
    # classification/models/__init__.py build_vssd_model with the yaml values over config.py's MODEL.VMAMBA2
    # defaults (the builder passes ``image_size``, which VMAMBA2 only keeps in **kwargs, and no num_classes: 1000)
    return module.VMAMBA2(
        image_size=224, patch_size=4, in_chans=3, embed_dim=embed_dim, depths=depths, num_heads=num_heads,
        mlp_ratio=4.0, drop_rate=0.0, drop_path_rate=drop_path_rate, simple_downsample=False,
        simple_patch_embed=False, ssd_expansion=2, ssd_ngroups=1, ssd_chunk_size=256, linear_attn_duality=True,
        lepe=False, attn_types=['mamba2', 'mamba2', 'mamba2', 'standard'], bidirection=False, d_state=d_state,
        ssd_positve_dA=True)


@contextlib.contextmanager
def _cuda_is_noop():
    cuda = torch.nn.Module.cuda
    torch.nn.Module.cuda = lambda self, device=None: self
    try:
        yield
    finally:
        torch.nn.Module.cuda = cuda


def _official_flops(ref):
    """``VMAMBA2.flops()`` itself (deepcopy, eval, fvcore ``flop_count`` with its ``supported_ops``) on the CPU."""
    logging.getLogger('fvcore').setLevel(logging.ERROR)  # its per-op 'unsupported operator' report
    with _cuda_is_noop(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return int(round(ref.flops((3, 224, 224))))


def _size(text):
    h, w = (int(v) for v in text.lower().split('x'))
    if h % 32 or w % 32:
        raise argparse.ArgumentTypeError(f'{text}: the official VMAMBA2 classifier needs sides that are multiples '
                                         'of 32 (its forward_features floors H/2, W/2 per stage)')
    return h, w


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--repo', required=True, help='local checkout of YuHengsss/VSSD')
    ap.add_argument('--models', nargs='+', default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument('--sizes', nargs='+', type=_size, default=[(64, 96), (96, 160)],
                    help='input sizes HxW, multiples of 32 (default 64x96 96x160)')
    add_comparison_args(ap)
    args = ap.parse_args()

    sys.path.insert(0, str(Path(args.repo) / 'classification' / 'models'))
    _install_stand_ins()
    with warnings.catch_warnings():  # timm.models.layers deprecation
        warnings.simplefilter('ignore')
        official = importlib.import_module('mamba2')

    failures = 0
    for name in args.models:
        torch.manual_seed(0)
        ref = _build_official(official, **VARIANTS[name]).eval()
        perturb_official_(ref)
        ours = timm.create_model(name).eval()
        ours.load_state_dict(checkpoint_filter_fn({'model': ref.state_dict()}, ours), strict=True)
        failures += not compare_with_official(f'{name:<11}', ref, ours, args, _official_flops)
        del ref, ours
    sys.exit(1 if failures else 0)


if __name__ == '__main__':
    main()
