#!/usr/bin/env python
"""Check a zoo model against the official implementation, on CPU, with random weights.

    python tools/verify_official.py --repo /path/to/MzeroMiko/VMamba [--models vmamba_tiny vmamba_small ...]

Builds the official model from a local checkout of its repository (nothing is downloaded or copied), perturbs its
weights, converts its state_dict with the zoo's ``checkpoint_filter_fn``, loads it strictly into the zoo model and
compares logits on a non-square input. The official VMamba code enters ``torch.cuda.device(x.device)`` around its
scans, which fails on CPU-only machines, so this script replaces that context manager with a no-op while it runs.
Its pure-PyTorch fallbacks need ``einops`` (``pip install einops``).
"""
import argparse
import contextlib
import importlib
import sys
from pathlib import Path

import timm
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import vmamba_zoo  # noqa: E402,F401
from vmamba_zoo.models import vmamba as zoo_vmamba  # noqa: E402

# zoo name -> (official builder in classification/models/vmamba.py, zoo module with checkpoint_filter_fn)
OFFICIAL_BUILDERS = {
    'vmamba_tiny': ('vmamba_tiny_s1l8', zoo_vmamba),
    'vmamba_small': ('vmamba_small_s2l15', zoo_vmamba),
    'vmamba_base': ('vmamba_base_s2l15', zoo_vmamba),
    'vmamba_tiny_s2l5': ('vmamba_tiny_s2l5', zoo_vmamba),
    'vmamba_small_s1l20': ('vmamba_small_s1l20', zoo_vmamba),
    'vmamba_base_s1l20': ('vmamba_base_s1l20', zoo_vmamba),
    'vanilla_vmamba_tiny': ('vanilla_vmamba_tiny', zoo_vmamba),
    'vanilla_vmamba_small': ('vanilla_vmamba_small', zoo_vmamba),
    'vanilla_vmamba_base': ('vanilla_vmamba_base', zoo_vmamba),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--repo', required=True, help='local checkout of MzeroMiko/VMamba')
    ap.add_argument('--models', nargs='+', default=sorted(OFFICIAL_BUILDERS))
    ap.add_argument('--size', type=int, nargs=2, default=(64, 96), help='input H W')
    ap.add_argument('--atol', type=float, default=1e-4)
    args = ap.parse_args()

    sys.path.insert(0, str(Path(args.repo) / 'classification' / 'models'))
    torch.cuda.device = lambda *_a, **_k: contextlib.nullcontext()  # official scans wrap CPU tensors in it
    official = importlib.import_module('vmamba')

    failures = 0
    for name in args.models:
        builder, zoo_module = OFFICIAL_BUILDERS[name]
        torch.manual_seed(0)
        ref = getattr(official, builder)().eval()
        with torch.no_grad():
            for p in ref.parameters():  # move away from the init values (LN = 1/0, ...) so mistakes show
                p.add_(torch.randn_like(p) * 0.02)
        ours = timm.create_model(name).eval()
        ours.load_state_dict(zoo_module.checkpoint_filter_fn({'model': ref.state_dict()}, ours), strict=True)
        x = torch.randn(2, 3, *args.size)
        with torch.no_grad():
            diff = (ref(x) - ours(x)).abs().max().item()
        n_ref = sum(p.numel() for p in ref.parameters())
        n_ours = sum(p.numel() for p in ours.parameters())
        ok = diff <= args.atol and n_ref == n_ours
        failures += not ok
        print(f'{name:<20} official {builder:<20} params {n_ref} vs {n_ours}  max|logit diff| {diff:.2e}  '
              f'{"OK" if ok else "MISMATCH"}')
    sys.exit(1 if failures else 0)


if __name__ == '__main__':
    main()
