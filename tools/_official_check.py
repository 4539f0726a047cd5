"""Shared pieces of the ``tools/verify_official_*.py`` scripts (an official model built from a local checkout,
compared with the zoo's on CPU): the weight perturbation, the comparison options and the per-variant comparison.
Not a tool itself; the scripts import it from tools/.
"""
import argparse

import torch

from vmamba_zoo.flops import count_flops


def perturb_official_(model: torch.nn.Module, scale: float = 0.05) -> None:
    """Move every floating-point tensor of ``model.state_dict()`` away from its init (LN 1/0, D 1, A_logs log(1..N),
    BN statistics 0/1) so a wrong mapping shows: ``+ scale * randn``, BN ``running_var`` drawn from U(0.5, 1.5)."""
    with torch.no_grad():
        for key, t in model.state_dict().items():
            if key.endswith('running_var'):
                t.uniform_(0.5, 1.5)
            elif t.is_floating_point():
                t.add_(torch.randn_like(t) * scale)


def add_comparison_args(ap: argparse.ArgumentParser) -> None:
    """--batch, --atol, --float64, --flops, --flops-rtol (the options ``compare_with_official`` reads)."""
    ap.add_argument('--batch', type=int, default=2)
    ap.add_argument('--atol', type=float, default=1e-4, help='max |logit diff| allowed')
    ap.add_argument('--float64', action='store_true',
                    help='compare in float64 (then only real differences remain, ~1e-14 when equal)')
    ap.add_argument('--flops', action='store_true', help='also count FLOPs at 224x224 (slow on CPU)')
    ap.add_argument('--flops-rtol', type=float, default=1e-5, help='relative FLOPs difference allowed')


def compare_with_official(label: str, ref: torch.nn.Module, ours: torch.nn.Module, args, official_flops) -> bool:
    """Parameter counts, eval-mode max |logit diff| at each of ``args.sizes`` (in float64 with ``args.float64``)
    and, with ``args.flops``, ``official_flops(ref)`` against the zoo's ``count_flops`` at 224x224. Prints one line
    ending in OK or MISMATCH and returns whether every check held. ``ours`` already holds ``ref``'s converted
    weights; both are in eval mode."""
    dtype = torch.float64 if args.float64 else torch.float32
    ref, ours = ref.to(dtype), ours.to(dtype)
    n_ref = sum(p.numel() for p in ref.parameters())
    n_ours = sum(p.numel() for p in ours.parameters())
    ok = n_ref == n_ours
    line = f'{label} params official {n_ref} zoo {n_ours}'
    for h, w in args.sizes:
        x = torch.randn(args.batch, 3, h, w, dtype=dtype)
        with torch.no_grad():
            diff = (ref(x) - ours(x)).abs().max().item()
        ok &= diff <= args.atol
        line += f'  {h}x{w}: max|logit diff| {diff:.1e}'
    if args.flops:
        ref, ours = ref.float(), ours.float()
        f_ref, f_ours = official_flops(ref), count_flops(ours, (3, 224, 224))
        rel = (f_ours - f_ref) / f_ref
        ok &= abs(rel) <= args.flops_rtol
        line += f'  FLOPs official {f_ref} zoo {f_ours} ({rel:+.1e})'
    print(line + ('  OK' if ok else '  MISMATCH'), flush=True)
    return ok
