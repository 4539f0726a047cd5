#!/usr/bin/env python
"""Check the zoo's EfficientVMamba against the official implementation, on CPU, with random weights.

    python tools/verify_official_efficientvmamba.py --repo /path/to/TerryPei/EfficientVMamba [--flops]

Builds the official ``EfficientVSSM`` (``classification/models/vmamba_efficient.py``) from a local checkout with the
arguments ``classification/models/__init__.py`` ``build_vssm_model`` passes for ``vssm_efficient_{tiny,small,base}
.yaml`` (S with embed dim 64, as released), perturbs its weights and BN statistics, converts its state_dict with the
zoo's ``checkpoint_filter_fn``, loads it strictly and compares logits at even and odd input sizes (odd maps
exercise the official zero-padding of the atrous scan). ``--flops`` also counts the official model's FLOPs at 224^2
the way ``analyze/get_flops.py`` ``fvcore_flop_count`` does, next to the zoo's ``count_flops``.

The official code imports compiled CUDA selective-scan modules; this script registers stand-ins for them that run
the zoo's reference scan (``selective_scan_naive``), so nothing needs compiling. It also needs ``einops``.
"""
import argparse
import builtins
import importlib
import sys
import types
from pathlib import Path

import timm
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import vmamba_zoo  # noqa: E402,F401
from vmamba_zoo.flops import count_flops  # noqa: E402
from vmamba_zoo.models.efficientvmamba import checkpoint_filter_fn  # noqa: E402
from vmamba_zoo.ops.selective_scan import selective_scan_naive  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _official_check import perturb_official_  # noqa: E402

# zoo name -> EfficientVSSM depths / dims (yaml values; S: see vmamba_zoo/models/efficientvmamba.py)
VARIANTS = {
    'efficientvmamba_tiny': dict(depths=[2, 2, 4, 2], dims=48),
    'efficientvmamba_small': dict(depths=[2, 2, 4, 2], dims=64),
    'efficientvmamba_base': dict(depths=[2, 2, 9, 2], dims=96),
}


def _install_scan_stand_ins():
    def fwd(u, delta, A, B, C, D, delta_bias, delta_softplus, *rest):
        return selective_scan_naive(u, delta, A, B, C, D=D, delta_bias=delta_bias, delta_softplus=delta_softplus), None

    core = types.ModuleType('selective_scan_cuda_core')
    core.fwd = fwd
    pkg = types.ModuleType('selective_scan_vmamba_pt202')
    pkg.selective_scan_cuda_core = core
    for name, mod in (('selective_scan_vmamba_pt202', pkg), ('selective_scan_vmamba', pkg),
                      ('selective_scan_cuda_core', core), ('selective_scan_cuda', core)):
        sys.modules.setdefault(name, mod)


def _build_official(module, depths, dims):
    # classification/models/__init__.py build_vssm_model, with the yaml values
    return module.EfficientVSSM(
        patch_size=4, in_chans=3, num_classes=1000, depths=depths, dims=dims, d_state=16, dt_rank='auto',
        ssm_ratio=2.0, attn_drop_rate=0.0, shared_ssm=False, softmax_version=False, drop_rate=0.0,
        drop_path_rate=0.2, mlp_ratio=0.0, patch_norm=True, downsample_version='v1', use_checkpoint=False,
        window_size=2)


def _official_flops(ref, official_vmamba):
    from fvcore.nn import FlopCountAnalysis
    handle = official_vmamba.selective_scan_flop_jit
    ops = {'aten::silu': None, 'aten::neg': None, 'aten::exp': None, 'aten::flip': None,
           'prim::PythonOp.SelectiveScanFn': handle, 'prim::PythonOp.CrossScan': None,
           'prim::PythonOp.CrossMerge': None, 'prim::PythonOp.SelectiveScan': handle}
    quiet, builtins.print = builtins.print, lambda *a, **k: None  # the official handle prints its inputs
    try:
        analysis = FlopCountAnalysis(ref, (torch.randn(1, 3, 224, 224),)).set_op_handle(**ops)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return int(analysis.total())
    finally:
        builtins.print = quiet


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--repo', required=True, help='local checkout of TerryPei/EfficientVMamba')
    ap.add_argument('--models', nargs='+', default=sorted(VARIANTS))
    ap.add_argument('--sizes', nargs='+', default=['64x96', '100x76', '36x44'], help='input sizes HxW')
    ap.add_argument('--atol', type=float, default=1e-4)
    ap.add_argument('--flops', action='store_true', help='also count FLOPs at 224x224 (slow on CPU)')
    args = ap.parse_args()

    sys.path.insert(0, str(Path(args.repo) / 'classification'))
    _install_scan_stand_ins()
    official = importlib.import_module('models.vmamba_efficient')
    official_vmamba = importlib.import_module('models.vmamba')

    failures = 0
    for name in args.models:
        torch.manual_seed(0)
        ref = _build_official(official, **VARIANTS[name]).eval()
        perturb_official_(ref)
        ours = timm.create_model(name).eval()
        ours.load_state_dict(checkpoint_filter_fn({'model': ref.state_dict()}, ours), strict=True)
        n_ref = sum(p.numel() for p in ref.parameters())
        n_ours = sum(p.numel() for p in ours.parameters())
        ok = n_ref == n_ours
        line = f'{name:<22} params {n_ref} vs {n_ours}'
        for size in args.sizes:
            h, w = (int(v) for v in size.lower().split('x'))
            x = torch.randn(2, 3, h, w)
            with torch.no_grad():
                diff = (ref(x) - ours(x)).abs().max().item()
            ok &= diff <= args.atol
            line += f'  {h}x{w}: max|logit diff| {diff:.1e}'
        if args.flops:
            f_ref, f_ours = _official_flops(ref, official_vmamba), count_flops(ours, (3, 224, 224))
            line += f'  FLOPs official {f_ref} vs zoo {f_ours} ({(f_ours - f_ref) / f_ref:+.3%})'
        failures += not ok
        print(line + ('  OK' if ok else '  MISMATCH'), flush=True)
    sys.exit(1 if failures else 0)


if __name__ == '__main__':
    main()
