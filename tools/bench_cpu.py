#!/usr/bin/env python
"""CPU benchmark: selective-scan paths side by side, and vmamba_tiny against convnext_tiny.

Paths: ``naive`` (sequential reference), ``chunked`` (pure PyTorch), ``cpp`` (the C++ kernel of kernels/cpu,
built on first use; the default CPU inference path). Model rows: each zoo model on its default CPU path (the
fused C++ 2D scan), the same model with the pure-PyTorch paths pinned ('[pytorch]'), and the reference.

    python tools/bench_cpu.py                 # both sections
    python tools/bench_cpu.py --section ops   # naive / chunked / cpp at VMamba-T stage-1 shapes
    python tools/bench_cpu.py --section models --json bench_results/cpu.json

Speed is reported here, never asserted in a test: the numbers depend on the machine. Every figure is a median
over interleaved repetitions (A, B, A, B, ...) so a slow phase of a shared machine hits all candidates alike.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

import vmamba_zoo  # noqa: E402  (registers the models)
from vmamba_zoo.benchmark import inference_latency  # noqa: E402
from vmamba_zoo.ops.scan2d import ENV_BACKEND as ENV_SCAN2D  # noqa: E402
from vmamba_zoo.ops.selective_scan import ENV_BACKEND as ENV_SCAN  # noqa: E402
from vmamba_zoo.ops.selective_scan import selective_scan_chunked, selective_scan_naive  # noqa: E402
from vmamba_zoo.ops.selective_scan.cpu import cpu_backend_available, selective_scan_cpu  # noqa: E402


def stage1_inputs(batch, groups=4, dim=192, d_state=1, length=56 * 56, seed=0):
    """VMamba-T stage-1 selective-scan inputs, laid out as SS2D passes them (softplus'ed dt with bias, D)."""
    g = torch.Generator().manual_seed(seed)
    channels = groups * dim
    return dict(
        u=torch.randn(batch, channels, length, generator=g),
        delta=torch.randn(batch, channels, length, generator=g) * 0.5 - 4.0,  # softplus -> dt ~ 0.02, as trained
        A=-torch.rand(channels, d_state, generator=g).add(0.5),
        B=torch.randn(batch, groups, d_state, length, generator=g),
        C=torch.randn(batch, groups, d_state, length, generator=g),
        D=torch.ones(channels), delta_bias=torch.randn(channels, generator=g) * 0.1, delta_softplus=True,
    )


def interleaved(candidates, rounds):
    """{name: fn} -> {name: [seconds per round]}, one warm-up call each, rounds interleaved."""
    for fn in candidates.values():
        fn()
    times = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


@torch.inference_mode()
def bench_ops(batch, rounds):
    """naive / chunked / cpp (the C++ kernel, when it builds) at the stage-1 shape, interleaved."""
    inputs = stage1_inputs(batch)
    ref = selective_scan_naive(**inputs)
    candidates = {'naive': lambda: selective_scan_naive(**inputs),
                  'chunked': lambda: selective_scan_chunked(**inputs)}
    if cpu_backend_available():
        candidates['cpp'] = lambda: selective_scan_cpu(**inputs)
    errors = {name: (fn() - ref).abs().max().item() for name, fn in candidates.items() if name != 'naive'}
    times = interleaved(candidates, rounds)
    ms = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    shape = f"B={batch} K=4 D=192 N=1 L=3136"
    print(f"\nselective scan, VMamba-T stage-1 shape ({shape}), inference, {rounds} interleaved rounds")
    print(f"  {'path':10s} {'ms':>10s} {'speed-up vs naive':>18s} {'max |diff| vs naive':>20s}")
    for name, value in ms.items():
        err = f"{errors[name]:.2e}" if name in errors else '-'
        print(f"  {name:10s} {value:10.1f} {ms['naive'] / value:18.1f} {err:>20s}")
    if 'cpp' not in ms:
        print('  cpp: the C++ CPU kernel is unavailable here (no compiler?), not timed')
    result = {'shape': shape, 'naive_ms': ms['naive'], 'chunked_ms': ms['chunked'],
              'speedup': ms['naive'] / ms['chunked'], 'max_abs_diff': errors['chunked']}
    if 'cpp' in ms:
        result.update(cpp_ms=ms['cpp'], cpp_speedup=ms['naive'] / ms['cpp'], cpp_max_abs_diff=errors['cpp'])
    return result


class _PinnedPaths(torch.nn.Module):
    """A model run with the pure-PyTorch scan paths pinned (plain 2D scan + chunked selective scan), for the
    side-by-side row that shows what the C++ kernels buy."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        saved = {k: os.environ.get(k) for k in (ENV_SCAN2D, ENV_SCAN)}
        os.environ[ENV_SCAN2D], os.environ[ENV_SCAN] = 'plain', 'chunked'
        try:
            return self.model(x)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@torch.inference_mode()
def bench_models(names, reference, batch, rounds, reps):
    """Batch-``batch`` latency of each model and the reference, interleaved per round, plus each zoo model with
    the pure-PyTorch paths pinned ('<name>[pytorch]')."""
    import timm
    models = {reference: timm.create_model(reference).eval()}
    for name in names:
        models[name] = timm.create_model(name).eval()
        if cpu_backend_available():
            models[f'{name}[pytorch]'] = _PinnedPaths(models[name]).eval()
    per_round = {n: [] for n in models}
    for _ in range(rounds):
        for n, m in models.items():
            per_round[n].append(inference_latency(m, (3, 224, 224), batch, warmup=2, reps=reps)['median'])
    ref = statistics.median(per_round[reference])
    result = {n: {'ms': statistics.median(t) * 1e3, 'ratio_to_reference': statistics.median(t) / ref}
              for n, t in per_round.items()}
    print(f"\nbatch-{batch} 224x224 inference latency, {rounds} interleaved rounds x {reps} reps (median)")
    print(f"  {'model':24s} {'ms':>8s} {'x ' + reference:>18s}")
    for name, r in result.items():
        print(f"  {name:24s} {r['ms']:8.1f} {r['ratio_to_reference']:18.2f}")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--section', choices=['ops', 'models', 'all'], default='all')
    parser.add_argument('--batch', type=int, default=8, help='batch of the op benchmark (issue: 8)')
    parser.add_argument('--models', nargs='+', default=['vmamba_tiny'])
    parser.add_argument('--reference', default='convnext_tiny')
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--quick', action='store_true', help='fewer rounds (smoke run)')
    parser.add_argument('--json', help='also write the results to this JSON file')
    args = parser.parse_args(argv)
    rounds = 2 if args.quick else args.rounds

    report = {'machine': {'python': platform.python_version(), 'torch': torch.__version__,
                          'threads': torch.get_num_threads(), 'cpu': platform.processor() or platform.machine()}}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, zoo {vmamba_zoo.__version__}")
    if args.section in ('ops', 'all'):
        report['ops'] = bench_ops(args.batch, rounds)
    if args.section in ('models', 'all'):
        report['models'] = bench_models(args.models, args.reference, 1, rounds, 3 if args.quick else 10)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == '__main__':
    main()
