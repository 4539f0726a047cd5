#!/usr/bin/env python
"""Check the zoo's Spatial-Mamba against the official implementation, on CPU, with random weights.

    python tools/verify_official_spatialmamba.py --repo /path/to/EdwardChasel/Spatial-Mamba [--flops]

Builds the official ``SpatialMamba`` (``classification/models/spatialmamba.py``) from a local checkout with the
arguments ``classification/models/__init__.py`` ``build_model`` passes for ``spatialmamba_{tiny,small,base}.yaml``,
perturbs its weights (fusion kernels and ``alpha`` included) and BN statistics, converts its state_dict with the
zoo's ``checkpoint_filter_fn``, loads it strictly and compares logits in eval mode (the official merged 11x11
kernel path) and in train mode without drop-path (its three dilated convs), at even and odd input sizes.
``--flops`` also counts the official FLOPs at 224^2 the way ``SpatialMamba.flops()`` does (fvcore ``flop_count``
in train mode with its ``supported_ops``), next to the zoo's ``count_flops``.

The official code imports two compiled CUDA modules; this script registers stand-ins that compute the same
thing in PyTorch, so nothing needs compiling: ``selective_scan_cuda_oflex_rh.fwd`` returns every hidden state
(the zoo's ``selective_scan(return_states=True)``, tested against its sequential reference), and
``Dwconv.dwconv_layer.DepthwiseFunction`` is a depth-wise conv with a replicate border (what
``kernels/dwconv2d/depthwise_fwd/kernel.cuh`` ``copy_src`` reads).
It also needs ``einops`` (``pip install einops``).
"""
import argparse
import copy
import importlib
import sys
import types
from pathlib import Path

import timm
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import vmamba_zoo  # noqa: E402,F401
from vmamba_zoo.flops import count_flops  # noqa: E402
from vmamba_zoo.models.spatialmamba import checkpoint_filter_fn  # noqa: E402
from vmamba_zoo.ops.selective_scan import selective_scan  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _official_check import perturb_official_  # noqa: E402

# zoo name -> the yaml's EMBED_DIM / DEPTHS (D_STATE 1, MLP_RATIO 4, DT_INIT random in all three)
VARIANTS = {
    'spatialmamba_tiny': dict(depths=[2, 4, 8, 4], dims=64),
    'spatialmamba_small': dict(depths=[2, 4, 21, 5], dims=64),
    'spatialmamba_base': dict(depths=[2, 4, 21, 5], dims=96),
}


def _install_stand_ins():
    def fwd(u, delta, A, B, D, delta_bias, delta_softplus, nrows, out_float):
        B = B[:, 0] if B.dim() == 4 and B.shape[1] == 1 else B  # the official wrapper adds a group axis
        states = selective_scan(u, delta, A, B, None, delta_bias=delta_bias, delta_softplus=delta_softplus,
                                      return_states=True)
        return states, states[..., -1:].repeat_interleave(2, dim=-1).transpose(-1, -2)

    scan_module = types.ModuleType('selective_scan_cuda_oflex_rh')
    scan_module.fwd = fwd

    class DepthwiseFunction:
        @staticmethod
        def apply(x, w, b, padding_h, padding_w, is_bias):
            x = F.pad(x, (padding_w, padding_w, padding_h, padding_h), mode='replicate')
            return F.conv2d(x, w, b if is_bias else None, groups=x.shape[1])

    dw_layer = types.ModuleType('Dwconv.dwconv_layer')
    dw_layer.DepthwiseFunction = DepthwiseFunction
    dw_pkg = types.ModuleType('Dwconv')
    dw_pkg.dwconv_layer = dw_layer
    for name, mod in (('selective_scan_cuda_oflex_rh', scan_module), ('Dwconv', dw_pkg),
                      ('Dwconv.dwconv_layer', dw_layer)):
        sys.modules.setdefault(name, mod)


def _build_official(module, depths, dims, drop_path_rate=0.0):
    # classification/models/__init__.py build_model, with the yaml values (drop-path off for the comparison)
    return module.SpatialMamba(in_chans=3, patch_size=4, num_classes=1000, depths=depths, dims=dims, d_state=1,
                               dt_init='random', mlp_ratio=4.0, drop_rate=0.0, drop_path_rate=drop_path_rate)


def _official_flops(ref, utils):
    """``SpatialMamba.flops()`` without ``.cuda()``: fvcore flop_count on a train-mode copy."""
    from fvcore.nn import flop_count
    ops = {'aten::silu': None, 'aten::neg': None, 'aten::exp': None, 'aten::flip': None,
           'prim::PythonOp.SelectiveScanStateFn': utils.selective_scan_state_flop_jit}
    model = copy.deepcopy(ref).train()
    gflops, _ = flop_count(model=model, inputs=(torch.randn(1, 3, 224, 224),), supported_ops=ops)
    return int(round(sum(gflops.values()) * 1e9))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--repo', required=True, help='local checkout of EdwardChasel/Spatial-Mamba')
    ap.add_argument('--models', nargs='+', default=sorted(VARIANTS))
    ap.add_argument('--sizes', nargs='+', default=['64x96', '100x76'], help='input sizes HxW')
    ap.add_argument('--atol', type=float, default=1e-4)
    ap.add_argument('--flops', action='store_true', help='also count FLOPs at 224x224 (slow on CPU)')
    args = ap.parse_args()

    sys.path.insert(0, str(Path(args.repo) / 'classification' / 'models'))
    _install_stand_ins()
    official = importlib.import_module('spatialmamba')
    utils = importlib.import_module('utils')

    failures = 0
    for name in args.models:
        torch.manual_seed(0)
        ref = _build_official(official, **VARIANTS[name])
        perturb_official_(ref)
        ours = timm.create_model(name, drop_path_rate=0.0)
        ours.load_state_dict(checkpoint_filter_fn({'model': ref.state_dict()}, ours), strict=True)
        n_ref = sum(p.numel() for p in ref.parameters())
        n_ours = sum(p.numel() for p in ours.parameters())
        ok = n_ref == n_ours
        line = f'{name:<20} params {n_ref} vs {n_ours}'
        for mode in ('eval', 'train'):
            ref.train(mode == 'train')
            ours.train(mode == 'train')
            for size in args.sizes:
                h, w = (int(v) for v in size.lower().split('x'))
                x = torch.randn(2, 3, h, w)
                with torch.no_grad():
                    diff = (ref(x) - ours(x)).abs().max().item()
                ok &= diff <= args.atol
                line += f'  {mode} {h}x{w}: {diff:.1e}'
            if hasattr(ref, 'modules'):  # the eval path caches its merged kernels: drop them for the next model
                for m in ref.modules():
                    m.__dict__.pop('_merge_weight', None)
        if args.flops:
            f_ref, f_ours = _official_flops(ref, utils), count_flops(ours, (3, 224, 224))
            line += f'  FLOPs official {f_ref} vs zoo {f_ours} ({(f_ours - f_ref) / f_ref:+.3%})'
        failures += not ok
        print(line + ('  OK' if ok else '  MISMATCH'), flush=True)
    sys.exit(1 if failures else 0)


if __name__ == '__main__':
    main()
