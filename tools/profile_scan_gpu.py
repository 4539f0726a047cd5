#!/usr/bin/env python
"""One forward + backward of the selective-scan kernels at VMamba-T stage shapes, for Nsight Compute.

    ncu --clock-control none --profile-from-start off --section SpeedOfLight --section Occupancy \\
        --section WarpStateStats --section LaunchStats --section MemoryWorkloadAnalysis \\
        python tools/profile_scan_gpu.py --stages 1 3 --dtypes float32 bfloat16 --paths plain fused

Each (path, stage, dtype) is run once untimed first (Triton compiles, caches warm), then once between
``cudaProfilerStart`` / ``cudaProfilerStop``, so ncu (``--profile-from-start off``) sees exactly one ``_fwd_kernel``
and one ``_bwd_kernel`` per case, in the order printed. ``plain``: ``selective_scan(backend='triton')`` on
(B, K*D, L) sequences in scan order (``--backend cuda``: the CUDA C++ kernels of ``kernels/selective_scan``);
``fused``: ``selective_scan_fused_triton`` on a channels-last map with per-direction inputs in pixel order
(``tools/tune_fused_gpu.py``'s inputs). The script prints, per case,
the bytes that must move and the element count, so ncu's DRAM throughput and instruction counts can be read as
fractions of the HBM bound and as instructions per element.
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_gpu  # noqa: E402  (puts the repo on sys.path)
import tune_fused_gpu  # noqa: E402
from vmamba_zoo.ops.selective_scan import selective_scan  # noqa: E402


def plain_case(batch, dim, length, dtype, backend='triton'):
    inp = bench_gpu.stage_inputs(batch, dim, length, dtype)
    leaves = [v.requires_grad_() for v in inp.values()]

    def run():
        out = selective_scan(**inp, delta_softplus=True, backend=backend)
        torch.autograd.grad(out, leaves, torch.ones_like(out))
    return run


def fused_case(batch, dim, length, dtype):
    run, leaves, dout = tune_fused_gpu.make_inputs(batch, dim, length, dtype)  # the tuner's fused-core inputs

    def run_both():
        torch.autograd.grad(run(), leaves, dout)
    return run_both


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--stages', nargs='+', type=int, default=[1, 3], choices=[1, 2, 3, 4])
    ap.add_argument('--dtypes', nargs='+', default=['float32', 'bfloat16'])
    ap.add_argument('--paths', nargs='+', default=['plain', 'fused'], choices=['plain', 'fused'])
    ap.add_argument('--batch', type=int, default=128)
    ap.add_argument('--backend', default='triton', choices=['triton', 'cuda'],
                    help="the plain path's kernels: Triton, or kernels/selective_scan (CUDA C++)")
    args = ap.parse_args(argv)
    cases = []
    for path in args.paths:
        for stage in args.stages:
            dim, length = bench_gpu.STAGES[stage - 1]
            for name in args.dtypes:
                dtype = getattr(torch, name)
                run = (plain_case(args.batch, dim, length, dtype, args.backend) if path == 'plain'
                       else fused_case(args.batch, dim, length, dtype))
                cases.append((f'{path} stage {stage} (D={dim}, L={length}) {name}', run,
                              args.batch * bench_gpu.K * dim * length, dtype.itemsize))
    for _, run, _, _ in cases:
        run()
    torch.cuda.synchronize()
    for label, run, elements, size in cases:
        # forward reads u, delta and writes out; backward reads u, delta, dout and writes du, ddelta (B, C small)
        print(f'case {label}: {elements} elements, fwd bound {3 * elements * size / 1e6:.0f} MB, '
              f'bwd bound {5 * elements * size / 1e6:.0f} MB', flush=True)
        torch.cuda.profiler.start()
        run()
        torch.cuda.synchronize()
        torch.cuda.profiler.stop()


if __name__ == '__main__':
    main()
