#!/usr/bin/env python
"""Tune the fused 2D-scan kernels' launch configuration on a CUDA machine, in one run (device time is scarce).

    python tools/tune_fused_gpu.py --out DIR [--stages 196 ...] [--models] [--profile]

1. Compiles every candidate (``CANDIDATES``: BLOCK_L, forward BLOCK_D and warps, backward BLOCK_D and warps,
   BC_ROW, SHIFTED_SCAN) at VMamba-T's four stage shapes in parallel subprocesses, so the timing loop reads
   Triton's cache.
2. Times ``selective_scan_fused_triton`` fwd and fwd+bwd (bf16, batch 128, K=4, N=1, the inputs
   ``tools/bench_gpu.py`` gives the fused core) for each candidate, checks its output and every gradient against
   the baseline row (the launch table in the code before the run), and picks the fastest correct one per stage.
3. Times baseline and winners again, in fp32 too, and writes the winners as a VMAMBA_ZOO_FUSED_BLOCKS value
   (``DIR/tuned_spec.txt``) for the tests and the model benchmark.
4. ``--models``: vmamba_tiny training / inference throughput with the baseline and the tuned rule,
   and the official VMamba-T when its peer is installed (``tools/bench_gpu.py``'s protocol); ``--profile``: one
   profiled training step with each rule.
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _tuning  # noqa: E402
import bench_gpu  # noqa: E402  (puts the repo on sys.path and registers the models)
from _tuning import bench_ms, max_rel_error, results, with_env  # noqa: E402
from vmamba_zoo.ops.selective_scan.triton import _launch_config, selective_scan_fused_triton  # noqa: E402
from vmamba_zoo.scans import get_scan  # noqa: E402

ENV = 'VMAMBA_ZOO_FUSED_BLOCKS'
SMOKE = os.environ.get('TUNE_FUSED_SMOKE') == '1'  # CPU dry run of this script under TRITON_INTERPRET=1, tiny
DEVICE = 'cpu' if SMOKE else 'cuda'
STAGES = bench_gpu.STAGES  # (D, L) of VMamba-T
BUCKETS = ['64', '256', '1024', '*']  # longest L of the table row that each stage (4, 3, 2, 1) tunes


def _shipped_spec(length):
    """The launch the code ships for a stage (``_FUSED_TABLE``, whatever the environment pins), as a
    VMAMBA_ZOO_FUSED_BLOCKS row: BL,BDf,Wf,BDb,Wb,BC,SH (BD in channels: N = 1)."""
    _, bl, (bdf, wf), (bdb, wb), bc_row, shifted = with_env(ENV, None, lambda: _launch_config(
        1, length, fused=True, dtype=torch.bfloat16))
    return f'{bl},{bdf},{wf},{bdb},{wb},{int(bc_row)},{int(shifted)}'


# the baseline is the table in the code; the candidates each come with both backward forms (last field:
# SHIFTED_SCAN 1 or 0, see vmamba_zoo/ops/selective_scan/triton.py)
BASELINE = {length: _shipped_spec(length) for _, length in STAGES}
_LONG = ['32,32,4,16,4,1', '32,32,4,32,4,1', '32,32,4,16,2,1', '64,32,4,16,4,1', '16,32,2,16,2,1', '32,32,4,8,2,1',
         '64,32,4,32,8,1', '32,16,2,16,4,1', '32,16,4,16,4,1', '32,64,8,16,4,1', '16,64,4,16,4,1']
# at L = 196 the 32- and 64-step chunks leave a 4-step tail chunk (``_tail_length``); 16-step ones do not. In run 21f
# (H200) those candidates were 1.14-1.58 ms fwd+bwd in bf16 against the baseline's 0.94-1.18: no gain for the fused
# path, unlike the plain one
_SHORT = ['16,32,2,16,1,1', '32,32,4,32,4,1', '16,32,2,32,2,1', '32,32,4,16,2,1', '16,64,4,64,4,1', '16,32,2,32,4,1',
          '16,16,1,16,1,1', '16,64,4,16,1,1', '32,32,4,8,2,1', '64,16,4,16,4,1', '64,32,4,16,4,1', '64,16,2,8,2,1']
_SHORTEST = ['32,32,4,32,4,1', '64,32,4,16,4,1', '16,64,4,64,4,1', '32,32,4,16,1,1', '64,64,8,32,8,1', '32,16,2,32,4,1',
             '16,32,2,32,4,1']


def _both(specs):
    return [f'{s},{shifted}' for s in specs for shifted in (1, 0)]


CANDIDATES = {3136: _both(_LONG), 784: _both(_LONG), 196: _both(_SHORT), 49: _both(_SHORTEST)}


def _specs(length):
    """The baseline first, then the candidates that differ from it."""
    return [BASELINE[length]] + [c for c in CANDIDATES[length] if c != BASELINE[length]]


def make_inputs(batch, dim, length, dtype):
    """The fused core's inputs as SS2D produces them (channels-last map, pixel-order per-direction maps)."""
    side = int(round(length ** 0.5))
    if SMOKE:
        batch, dim, side = 1, min(dim, 8), 5
    g = torch.Generator(device=DEVICE).manual_seed(length)

    def rnd(shape, dtype, g, scale=1.0, shift=0.0):
        return (torch.randn(*shape, device=DEVICE, generator=g) * scale + shift).to(dtype)
    K, N = bench_gpu.K, bench_gpu.N
    length = side * side
    x = rnd((batch, side, side, dim), dtype, g).permute(0, 3, 1, 2)
    delta = rnd((K, batch, length, dim), dtype, g, 0.5, -4).permute(1, 0, 3, 2)
    bc = rnd((batch, length, K, 2 * N), dtype, g)
    B, C = bc[..., :N].permute(0, 2, 3, 1), bc[..., N:].permute(0, 2, 3, 1)
    A = -torch.rand(K * dim, N, device=DEVICE, generator=g) - 0.5
    D = torch.ones(K * dim, device=DEVICE)
    bias = torch.randn(K * dim, device=DEVICE, generator=g) * 0.1
    leaves = [t.requires_grad_() for t in (x, delta, B, C, A, D, bias)]
    index = get_scan('cross').index(side, side, DEVICE)
    dout = torch.randn(x.shape, device=DEVICE, generator=g).to(dtype).permute(0, 2, 3, 1).contiguous() \
        .permute(0, 3, 1, 2)

    def run():
        return selective_scan_fused_triton(x, delta, A, B, C, index, D=D, delta_bias=bias, delta_softplus=True)
    return run, leaves, dout


def with_spec(spec, fn):
    return with_env(ENV, spec, fn)


def time_spec(spec, run, leaves, dout, rep=120):
    def fb():
        torch.autograd.grad(run(), leaves, dout)

    def timed():
        with torch.no_grad():
            fwd = bench_ms(run, 20, rep // 2, SMOKE)
        return fwd, bench_ms(fb, 20, rep, SMOKE)
    return with_spec(spec, timed)


def compile_worker(jobs):
    """Subprocess: run each job once so that Triton compiles and caches its kernels: 'L@spec@dtype' (the fused
    core at batch 128) or 'model@spec' (vmamba_tiny at 224x224, batch 2: a bf16-autocast training step, fp32 and
    bf16 inference; the kernels' specialisations do not depend on the batch)."""
    import timm
    for job in jobs:
        what, spec, *dtype = job.split('@')
        try:
            if what == 'model':
                model = timm.create_model('vmamba_tiny').cuda()
                x = torch.randn(2, 3, 224, 224, device='cuda')

                def steps():
                    with torch.autocast('cuda', dtype=torch.bfloat16):
                        model(x).float().mean().backward()
                    with torch.no_grad():
                        model.eval()
                        model(x)
                        with torch.autocast('cuda', dtype=torch.bfloat16):
                            model(x)
                with_spec(spec, steps)
            else:
                length = int(what)
                dim = dict((l, d) for d, l in STAGES)[length]
                run, leaves, dout = make_inputs(128, dim, length, getattr(torch, dtype[0]))
                with_spec(spec, lambda: torch.autograd.grad(run(), leaves, dout))
            if not SMOKE:
                torch.cuda.synchronize()
        except Exception as exc:  # recorded again (and skipped) by the timing loop
            print(f'compile {job} failed: {type(exc).__name__}: {str(exc)[:200]}', flush=True)
        if not SMOKE:
            torch.cuda.empty_cache()


def precompile(jobs, workers):
    _tuning.precompile([__file__, '--out', '.', '--compile-worker'], jobs, workers)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', required=True)
    ap.add_argument('--workers', type=int, default=12)
    ap.add_argument('--compile-worker', nargs='*', help=argparse.SUPPRESS)
    ap.add_argument('--stages', nargs='+', type=int, default=[l for _, l in STAGES],
                    help='stage lengths L to tune (the others keep the baseline row)')
    ap.add_argument('--models', action='store_true')
    ap.add_argument('--profile', action='store_true')
    ap.add_argument('--official-vmamba', default=os.path.join(bench_gpu.REPO, '.peers', 'VMamba', 'classification'))
    args = ap.parse_args()
    unknown = sorted(set(args.stages) - {length for _, length in STAGES})
    if unknown:
        ap.error(f'--stages {unknown}: not one of the stage lengths {[length for _, length in STAGES]}')
    if args.compile_worker is not None:
        return compile_worker(args.compile_worker)
    os.makedirs(args.out, exist_ok=True)
    report = dict(software=bench_gpu.software() if not SMOKE else {}, stages={})
    if SMOKE:
        for length in CANDIDATES:
            CANDIDATES[length] = CANDIDATES[length][:2]
    lines = []

    def log(msg):
        print(msg, flush=True)
        lines.append(msg)

    def dump():
        with open(os.path.join(args.out, 'tune.json'), 'w') as f:
            json.dump(dict(report, log=lines), f, indent=2)

    log(f"{report['software']}")
    # 1. compile in parallel (Triton's on-disk cache is shared by the processes)
    tuned_stages = [(d, l) for d, l in STAGES if l in args.stages]
    jobs = [f'{l}@{s}@bfloat16' for _, l in tuned_stages for s in _specs(l)]
    t0 = time.time()
    precompile(jobs, args.workers)
    log(f'compiled {len(jobs)} (stage, config) pairs in {time.time() - t0:.0f} s with {args.workers} processes')
    # 2. time every candidate against the baseline, bf16
    winners = dict(BASELINE)
    for dim, length in tuned_stages:
        run, leaves, dout = make_inputs(128, dim, length, torch.bfloat16)
        ref = with_spec(BASELINE[length], lambda: results(run, leaves, dout))
        rows = []
        for spec in _specs(length):
            row = dict(spec=spec)
            try:
                got = with_spec(spec, lambda: results(run, leaves, dout))
                row['max_rel_err_vs_baseline'] = max_rel_error(got, ref)
                row['fwd_ms'], row['fwdbwd_ms'] = time_spec(spec, run, leaves, dout)
            except Exception as exc:
                row['error'] = f'{type(exc).__name__}: {str(exc)[:200]}'
            rows.append(row)
            log(f"bf16 D={dim:3d} L={length:4d} {spec:18s} " + (
                f"fwd {row['fwd_ms']:.3f}  fwd+bwd {row['fwdbwd_ms']:.3f} ms  err {row['max_rel_err_vs_baseline']:.1e}"
                if 'error' not in row else row['error']))
        ok = [r for r in rows if 'error' not in r and r['max_rel_err_vs_baseline'] < 2e-2]
        best = min(ok, key=lambda r: r['fwdbwd_ms'])
        winners[length] = best['spec']
        report['stages'][length] = dict(dim=dim, rows=rows, winner=best['spec'])
        log(f'  -> winner {best["spec"]} ({rows[0]["fwdbwd_ms"] / best["fwdbwd_ms"]:.2f}x the baseline)')
        run = leaves = dout = ref = None
        if not SMOKE:
            torch.cuda.empty_cache()
        dump()
    tuned = ';'.join(f'{b}:{winners[l]}' for b, (_, l) in zip(BUCKETS, reversed(STAGES)))
    baseline = ';'.join(f'{b}:{BASELINE[l]}' for b, (_, l) in zip(BUCKETS, reversed(STAGES)))
    report['tuned_spec'], report['baseline_spec'] = tuned, baseline
    with open(os.path.join(args.out, 'tuned_spec.txt'), 'w') as f:
        f.write(tuned + '\n')
    log(f'tuned {ENV}={tuned}')
    t0 = time.time()
    jobs = [f'{l}@{s}@float32' for _, l in tuned_stages for s in {BASELINE[l], winners[l]}]
    precompile(jobs + ([f'model@{baseline}', f'model@{tuned}'] if args.models or args.profile else []), args.workers)
    log(f'compiled the fp32 / model kernels in {time.time() - t0:.0f} s')
    # 3. baseline vs tuned again, bf16 and fp32 (fp32 winners are the bf16 ones)
    report['confirm'] = []
    for dtype in (torch.bfloat16, torch.float32):
        for dim, length in tuned_stages:
            run, leaves, dout = make_inputs(128, dim, length, dtype)
            row = dict(dtype=str(dtype).split('.')[-1], dim=dim, length=length)
            for name, spec in (('baseline', baseline), ('tuned', tuned), ('baseline2', baseline), ('tuned2', tuned)):
                row[f'{name}_fwd_ms'], row[f'{name}_fwdbwd_ms'] = time_spec(spec, run, leaves, dout, rep=200)
            if dtype == torch.float32:
                a = with_spec(baseline, lambda: results(run, leaves, dout))
                b = with_spec(tuned, lambda: results(run, leaves, dout))
                row['max_rel_err_tuned_vs_baseline'] = max_rel_error(b, a)
            report['confirm'].append(row)
            log(f"confirm {row['dtype']:8s} D={dim:3d} L={length:4d} fwd {row['baseline_fwd_ms']:.3f}/"
                f"{row['baseline2_fwd_ms']:.3f} -> {row['tuned_fwd_ms']:.3f}/{row['tuned2_fwd_ms']:.3f}  fwd+bwd "
                f"{row['baseline_fwdbwd_ms']:.3f}/{row['baseline2_fwdbwd_ms']:.3f} -> {row['tuned_fwdbwd_ms']:.3f}/"
                f"{row['tuned2_fwdbwd_ms']:.3f} ms" + (f"  err {row['max_rel_err_tuned_vs_baseline']:.1e}"
                                                       if 'max_rel_err_tuned_vs_baseline' in row else ''))
            run = leaves = dout = None
            if not SMOKE:
                torch.cuda.empty_cache()
        dump()
    # 4. model level
    if args.models:
        bench_gpu.load_peers(args.official_vmamba, log)
        specs = []
        for rep in (1,):
            specs += [(f'vmamba_tiny (fused, baseline) #{rep}', 'vmamba_tiny', {ENV: baseline}, None),
                      (f'vmamba_tiny (fused, tuned) #{rep}', 'vmamba_tiny', {ENV: tuned}, None)]
        if 'official_vmamba' in bench_gpu.PEERS:
            specs.append(('official vmamba_tiny (oflex + triton)', 'vmamba_tiny_s1l8', {},
                          bench_gpu.official_vmamba_tiny))
        report['models'] = bench_gpu.bench_models(specs, 128, 50, 30, log)
        dump()
    if args.profile:
        import timm
        report['profile'] = []
        for name, spec in (('baseline', baseline), ('tuned', tuned)):
            report['profile'].append(with_spec(spec, lambda: bench_gpu.profile_model(
                f'vmamba_tiny (fused, {name})', lambda: timm.create_model('vmamba_tiny'), 128, log, rows=12)))
        dump()
    dump()


if __name__ == '__main__':
    main()
