#!/usr/bin/env python
"""CPU benchmark of the zoo's sequence ops: each op's fast path against its ``naive.py`` reference.

    python tools/bench_ops.py                       # every op, default batch
    python tools/bench_ops.py --ops state_fusion --batch 1 --rounds 7 --json bench_results/ops.json

Every op is one ``BenchOp`` row of ``OPS``: a name, the reference, the fast path, and a builder of keyword inputs
at the stage-1 shapes of the family's Tiny variant. A new op adds a row. Times are medians over interleaved
rounds (naive, fast, naive, fast, ...), so a slow phase of a shared machine hits both; speed is printed, never
asserted in a test (it depends on the machine).
"""
import argparse
import json
import os
import platform
import statistics
import sys
from typing import Callable, Dict, NamedTuple

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_cpu import interleaved  # noqa: E402
from vmamba_zoo.ops.selective_scan.cpu import cpu_backend_available  # noqa: E402
from vmamba_zoo.ops.state_fusion import (state_fusion_scan_chunked, state_fusion_scan_cpu,  # noqa: E402
                                         state_fusion_scan_naive)
from vmamba_zoo.ops.nc_ssd import nc_ssd_matmul, nc_ssd_naive  # noqa: E402


class BenchOp(NamedTuple):
    name: str
    naive: Callable
    fast: Callable
    inputs: Callable[[int], Dict]  # batch -> keyword arguments of both paths
    shape: str  # what the inputs are, for the printout


def state_fusion_inputs(batch: int, seed: int = 0) -> Dict:
    """Spatial-Mamba-T stage 1 (224^2 input): d_inner 128 (2 x 64), 56x56 map, d_state 1, one row-major scan,
    3x3 kernels at dilations 1/3/5; softplus'ed dt with bias around 0.02 as trained."""
    g = torch.Generator().manual_seed(seed)
    dim, d_state, height, width = 128, 1, 56, 56
    length = height * width
    return dict(
        u=torch.randn(batch, dim, length, generator=g),
        delta=torch.randn(batch, dim, length, generator=g) * 0.5 - 4.0,
        A=-torch.rand(dim, d_state, generator=g).add(0.5),
        B=torch.randn(batch, d_state, length, generator=g),
        C=torch.randn(batch, d_state, length, generator=g),
        weight=torch.randn(3, dim, 3, 3, generator=g) / 9, size=(height, width),
        D=torch.ones(dim), delta_bias=torch.randn(dim, generator=g) * 0.1, delta_softplus=True,
    )



def nc_ssd_inputs(batch: int, seed: int = 0) -> Dict:
    """VSSD-T stage 1 (224^2 input): dim 64 -> d_inner 128 as 2 heads of 64, d_state 64, one B/C group, 56x56
    tokens; dt = softplus(dt + dt_bias) and A = exp(A_log) with A in [1, 16], as the model passes them."""
    g = torch.Generator().manual_seed(seed)
    nheads, headdim, d_state, length = 2, 64, 64, 56 * 56
    return dict(
        x=torch.randn(batch, length, nheads, headdim, generator=g),
        dt=torch.nn.functional.softplus(torch.randn(batch, length, nheads, generator=g) - 4.0),
        A=torch.rand(nheads, generator=g) * 15 + 1,
        B=torch.randn(batch, length, 1, d_state, generator=g),
        C=torch.randn(batch, length, 1, d_state, generator=g),
        D=torch.ones(nheads),
    )


OPS = [
    BenchOp('state_fusion', state_fusion_scan_naive, state_fusion_scan_chunked, state_fusion_inputs,
            'Spatial-Mamba-T stage 1: D=128 N=1 56x56 (L=3136), dilations 1/3/5'),
    # the same op with its state scan in the C++ CPU kernel (kernels/cpu), the CPU default when it builds
    BenchOp('state_fusion_cpp', state_fusion_scan_naive, state_fusion_scan_cpu, state_fusion_inputs,
            'Spatial-Mamba-T stage 1, states from the C++ scan'),
    BenchOp('nc_ssd', nc_ssd_naive, nc_ssd_matmul, nc_ssd_inputs,
            'VSSD-T stage 1: 2 heads x 64, N=64, 1 group, 56x56 (L=3136)'),
]


@torch.inference_mode()
def bench_op(op: BenchOp, batch: int, rounds: int) -> Dict:
    inputs = op.inputs(batch)
    ref = op.naive(**inputs)
    err = (op.fast(**inputs).float() - ref.float()).abs().max().item()
    times = interleaved({'naive': lambda: op.naive(**inputs), 'fast': lambda: op.fast(**inputs)}, rounds)
    naive_ms = statistics.median(times['naive']) * 1e3
    fast_ms = statistics.median(times['fast']) * 1e3
    return {'shape': f'B={batch} {op.shape}', 'naive_ms': naive_ms, 'fast_ms': fast_ms,
            'speedup': naive_ms / fast_ms, 'max_abs_diff': err}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--ops', nargs='+', default=[op.name for op in OPS], help='names from OPS')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--threads', type=int, default=None, help='torch threads (default: torch\'s choice)')
    parser.add_argument('--json', help='also write the results to this JSON file')
    args = parser.parse_args(argv)
    known = {op.name: op for op in OPS}
    unknown = [name for name in args.ops if name not in known]
    if unknown:
        parser.error(f"unknown op(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, inference, {args.rounds} interleaved rounds')
    print(f"  {'op':14s} {'naive ms':>10s} {'fast ms':>10s} {'speed-up':>9s} {'max |diff|':>11s}  shape")
    report = {'machine': {'python': platform.python_version(), 'torch': torch.__version__,
                          'threads': torch.get_num_threads(), 'cpu': platform.processor() or platform.machine()},
              'ops': {}}
    for name in args.ops:
        if name.endswith('_cpp') and not cpu_backend_available():
            print(f'  {name:14s} skipped: the C++ CPU kernel is unavailable here')
            continue
        r = report['ops'][name] = bench_op(known[name], args.batch, args.rounds)
        print(f"  {name:14s} {r['naive_ms']:10.1f} {r['fast_ms']:10.2f} {r['speedup']:8.1f}x "
              f"{r['max_abs_diff']:11.2e}  {r['shape']}")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == '__main__':
    main()
