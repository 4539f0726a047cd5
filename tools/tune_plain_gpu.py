#!/usr/bin/env python
"""Tune and confirm the plain selective-scan kernels' launch table (``_PLAIN_TABLES``) on a CUDA machine.

    python tools/tune_plain_gpu.py sweep --out DIR [--stages 3136 196] [--dtypes float32 bfloat16]
    python tools/tune_plain_gpu.py confirm --out DIR [--against 3136=64,32,4,16,4,1 ...] [--old-module FILE]

``sweep``: every launch of a grid (BLOCK_L x forward (BLOCK_D, warps) x backward (BLOCK_D, warps) x backward
form; ``VMAMBA_ZOO_TRITON_BLOCKS`` specs "BL,BDf,Wf,BDb,Wb,SH") at VMamba-T's four stage shapes (batch 128, K=4,
N=1, ``tools/bench_gpu.py``'s inputs), in each dtype: compiled first in parallel subprocesses, then timed fwd and
fwd+bwd (do_bench medians) and checked against the shipped table's results; the three fastest and the shipped
launch are timed again. Forward and backward kernels are independent, so a table row may take its forward from one
candidate and its backward from another with the same BLOCK_L.

``confirm``: the shipped table against other launches (``--against L=spec``, per stage length, dtype-independent
unless given as ``L:dtype=spec``) and, with ``--old-module``, against another version of the kernels (a copy of
``vmamba_zoo/ops/selective_scan/triton.py``, e.g. ``git show REV:vmamba_zoo/ops/selective_scan/triton.py``) at
its own rule; in interleaved rounds, medians, plus a d_state-16 Vim-like shape.

Results: ``DIR/tune_plain.json`` / ``DIR/confirm.json``. Speed is reported here, never asserted in a test.
"""
import argparse
import importlib.util
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _tuning  # noqa: E402
import bench_gpu  # noqa: E402  (puts the repo on sys.path)
from _tuning import bench_ms, max_rel_error, results, with_env  # noqa: E402
from vmamba_zoo.ops.selective_scan import triton as scan_triton  # noqa: E402

ENV = 'VMAMBA_ZOO_TRITON_BLOCKS'
SMOKE = os.environ.get('TUNE_PLAIN_SMOKE') == '1'  # CPU dry run under TRITON_INTERPRET=1: tiny shapes, 2 specs
DEVICE = 'cpu' if SMOKE else 'cuda'
STAGES = bench_gpu.STAGES


def candidates(length):
    """The sweep's grid for one stage length (the shipped launch is timed first, as the baseline)."""
    out = []
    if length > 256:
        for bl in (32, 64, 128):
            fwd = '32,4' if bl < 128 else '16,4'
            out += [f'{bl},{fwd},{bwd},{sh}' for bwd in ('16,4', '8,2', '16,2', '32,4', '8,4') for sh in (0, 1)]
        out += ['64,16,2,16,4,1', '64,64,8,16,4,1', '64,32,8,16,4,1']
    elif length > 64:
        for bl in (16, 32, 64):
            out += [f'{bl},32,4,{bwd},{sh}' for bwd in ('32,4', '16,2', '16,4', '8,1', '8,2', '32,8') for sh in (0, 1)]
        out += ['32,16,2,32,4,0', '32,64,4,32,4,0', '64,16,4,16,4,0']
    else:
        for bl in (16, 32, 64):
            out += [f'{bl},32,4,{bwd},{sh}' for bwd in ('16,4', '32,4', '8,2', '16,2', '64,8') for sh in (0, 1)]
    return out[:2] if SMOKE else out


def shipped_spec(length, dtype):
    """The shipped launch as a VMAMBA_ZOO_TRITON_BLOCKS spec (whatever the environment pins)."""
    _, bl, (bdf, wf), (bdb, wb), _, shifted = with_spec(None, lambda: scan_triton._launch_config(1, length,
                                                                                              dtype=dtype))
    return f'{bl},{bdf},{wf},{bdb},{wb},{int(shifted)}'


def with_spec(spec, fn):
    """fn() with the plain launch pinned to spec (None: the shipped table)."""
    return with_env(ENV, spec, fn)


def stage_case(dim, length, dtype):
    """(inputs, leaves, dout) at a VMamba-T stage shape (tiny under SMOKE)."""
    if SMOKE:
        g = torch.Generator().manual_seed(length)
        kd, length = 8, min(length, 40)
        inp = dict(u=torch.randn(1, kd, length, generator=g).to(dtype),
                   delta=(torch.randn(1, kd, length, generator=g) * 0.5 - 1).to(dtype),
                   A=-torch.rand(kd, 1, generator=g) - 0.5, B=torch.randn(1, 4, 1, length, generator=g).to(dtype),
                   C=torch.randn(1, 4, 1, length, generator=g).to(dtype), D=torch.ones(kd),
                   delta_bias=torch.randn(kd, generator=g) * 0.1)
    else:
        inp = bench_gpu.stage_inputs(128, dim, length, dtype)
    leaves = [v.requires_grad_() for v in inp.values()]
    g = torch.Generator(device=DEVICE).manual_seed(1)
    dout = torch.randn(inp['u'].shape, device=DEVICE, generator=g).to(dtype)
    return inp, leaves, dout


def vim_case(dtype):
    """Vim-T-like plain scan: d_inner 384, L 197 (196 patches + class token), d_state 16, one group, gated."""
    g = torch.Generator(device=DEVICE).manual_seed(3)
    batch, kd, length = (1, 8, 21) if SMOKE else (128, 384, 197)

    def r(*shape, scale=1.0, shift=0.0):
        return torch.randn(*shape, device=DEVICE, generator=g) * scale + shift
    inp = dict(u=r(batch, kd, length).to(dtype), delta=r(batch, kd, length, scale=0.5, shift=-4).to(dtype),
               A=-torch.rand(kd, 16, device=DEVICE, generator=g) - 0.5, B=r(batch, 16, length).to(dtype),
               C=r(batch, 16, length).to(dtype), D=torch.ones(kd, device=DEVICE), z=r(batch, kd, length).to(dtype),
               delta_bias=r(kd, scale=0.1))
    leaves = [v.requires_grad_() for v in inp.values()]
    return inp, leaves, torch.randn(inp['u'].shape, device=DEVICE, generator=g).to(dtype)


def timings(module, inp, leaves, dout, rep=100):
    """(fwd ms, fwd+bwd ms) of module.selective_scan_triton on one case."""
    run = _runner(module, inp)
    with torch.no_grad():
        fwd = bench_ms(run, 15, rep // 2, SMOKE)
    return fwd, bench_ms(lambda: torch.autograd.grad(run(), leaves, dout), 15, rep, SMOKE)


def _runner(module, inp):
    return lambda: module.selective_scan_triton(**inp, delta_softplus=True)


def tolerance(dtype):
    return 1e-4 if dtype == torch.float32 else 2e-2


def precompile(jobs, workers):
    _tuning.precompile([os.path.abspath(__file__), 'compile'], jobs, workers)


def compile_worker(jobs, old_module):
    """Each job 'L@spec@dtype' (spec '-' = shipped table, 'old' = --old-module at its rule, 'vim' as L: the
    Vim-like case): one fwd+bwd, so that Triton compiles and caches the kernels."""
    for job in jobs:
        what, spec, dtype_name = job.split('@')
        dtype = getattr(torch, dtype_name)
        try:
            inp, leaves, dout = vim_case(dtype) if what == 'vim' else stage_case(
                dict((l, d) for d, l in STAGES)[int(what)], int(what), dtype)
            module = load_module(old_module) if spec == 'old' else scan_triton
            with_spec(None if spec in ('-', 'old') else spec, lambda: results(_runner(module, inp), leaves, dout))
            if not SMOKE:
                torch.cuda.synchronize()
        except Exception as exc:  # the timing loop records it again
            print(f'compile {job} failed: {type(exc).__name__}: {str(exc)[:200]}', flush=True)


def load_module(path):
    """Another version of the kernels' module (its relative import of .common becomes absolute)."""
    source = open(path).read().replace('from .common import', 'from vmamba_zoo.ops.selective_scan.common import')
    name = 'vmamba_zoo_old_selective_scan_triton'
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__file__ = os.path.abspath(path)  # triton.jit reads the kernels' source from the file
    sys.modules[name] = module
    exec(compile(source, module.__file__, 'exec'), module.__dict__)
    return module


def sweep(args, log):
    report = dict(software=bench_gpu.software() if not SMOKE else {}, stages=[])
    dtypes = [getattr(torch, d) for d in args.dtypes]
    stages = [(d, l) for d, l in STAGES if l in args.stages]
    jobs = [f'{l}@{s}@{str(dt)[6:]}' for dt in dtypes for _, l in stages
            for s in [shipped_spec(l, dt)] + candidates(l)]
    t0 = time.time()
    precompile(jobs, args.workers)
    log(f'compiled {len(jobs)} (stage, dtype, launch) jobs in {time.time() - t0:.0f} s with {args.workers} processes')
    for dtype in dtypes:
        for dim, length in stages:
            inp, leaves, dout = stage_case(dim, length, dtype)
            base = shipped_spec(length, dtype)
            specs = [base] + [c for c in candidates(length) if c != base]
            ref = with_spec(base, lambda: results(_runner(scan_triton, inp), leaves, dout))
            rows = []
            for spec in specs:
                row = dict(spec=spec)
                try:
                    row['max_rel_err_vs_shipped'] = max_rel_error(with_spec(spec, lambda: results(
                        _runner(scan_triton, inp), leaves, dout)), ref)
                    row['fwd_ms'], row['fwdbwd_ms'] = with_spec(spec, lambda: timings(scan_triton, inp, leaves, dout))
                except Exception as exc:
                    row['error'] = f'{type(exc).__name__}: {str(exc)[:200]}'
                rows.append(row)
            ok = sorted((r for r in rows if 'error' not in r and r['max_rel_err_vs_shipped'] < tolerance(dtype)),
                        key=lambda r: r['fwdbwd_ms'])
            again = {r['spec']: with_spec(r['spec'], lambda: timings(scan_triton, inp, leaves, dout, rep=200)[1])
                     for r in ok[:3] + [rows[0]]}
            best_fwd = min(ok, key=lambda r: r['fwd_ms'])
            report['stages'].append(dict(dtype=str(dtype)[6:], dim=dim, length=length, rows=rows,
                                         fwdbwd_again_ms=again))
            log(f"{str(dtype)[6:]:9s} L={length:4d} shipped {base} {rows[0].get('fwd_ms', 0):.3f}/"
                f"{rows[0].get('fwdbwd_ms', 0):.3f} (again {again[base]:.3f}) | fastest fwd+bwd: " + '; '.join(
                    f"{r['spec']} {r['fwd_ms']:.3f}/{r['fwdbwd_ms']:.3f} (again {again[r['spec']]:.3f})"
                    for r in ok[:3]) + f" | fastest fwd {best_fwd['spec']} {best_fwd['fwd_ms']:.3f} | "
                f"{len(rows) - len(ok)} failed or off")
            dump(args.out, 'tune_plain.json', report)
    return report


def parse_against(items):
    """'L=spec' or 'L:dtype=spec' -> {(L, dtype name or None): spec}."""
    out = {}
    for item in items or ():
        key, spec = item.split('=')
        length, _, dtype = key.partition(':')
        out[(int(length), dtype or None)] = spec
    return out


def confirm(args, log):
    report = dict(software=bench_gpu.software() if not SMOKE else {}, rows=[])
    against = parse_against(args.against)
    old = load_module(args.old_module) if args.old_module else None
    dtypes = [getattr(torch, d) for d in args.dtypes]

    def variants(length, dtype):
        v = {'shipped': (scan_triton, None)}
        spec = against.get((length, str(dtype)[6:]), against.get((length, None)))
        if spec:
            v['against'] = (scan_triton, spec)
        if old is not None:
            v['old_module'] = (old, None)
        return v
    cases = [(dt, f'VMamba-T D={d} L={l}', l, lambda d=d, l=l, dt=dt: stage_case(d, l, dt))
             for dt in dtypes for d, l in STAGES if l in args.stages]
    cases += [(dt, 'Vim-T-like N=16 L=197', 'vim', lambda dt=dt: vim_case(dt)) for dt in dtypes]
    jobs = []
    for dtype, _, length, _ in cases:
        for name, (_, spec) in variants(length, dtype).items():
            jobs.append(f"{length}@{'old' if name == 'old_module' else spec or '-'}@{str(dtype)[6:]}")
    t0 = time.time()
    precompile(jobs, args.workers)
    log(f'compiled {len(jobs)} jobs in {time.time() - t0:.0f} s')
    for dtype, label, length, make in cases:
        inp, leaves, dout = make()
        var = variants(length, dtype)
        ref = results(_runner(scan_triton, inp), leaves, dout)
        row = dict(case=label, dtype=str(dtype)[6:])
        for name, (module, spec) in var.items():
            got = with_spec(spec, lambda: results(_runner(module, inp), leaves, dout))
            row[f'{name}_max_rel_err'] = max_rel_error(got, ref)
        times = {name: [] for name in var}
        for _ in range(args.rounds):
            for name, (module, spec) in var.items():
                times[name].append(with_spec(spec, lambda: timings(module, inp, leaves, dout, rep=150)))
        for name, ts in times.items():
            row[f'{name}_fwd_ms'] = statistics.median(t[0] for t in ts)
            row[f'{name}_fwdbwd_ms'] = statistics.median(t[1] for t in ts)
            row[f'{name}_fwdbwd_rounds_ms'] = [t[1] for t in ts]
        report['rows'].append(row)
        ref_name = 'old_module' if old is not None else ('against' if 'against' in var else 'shipped')
        log(f"{label:24s} {str(dtype)[6:]:9s} " + '  '.join(
            f"{name} {row[name + '_fwd_ms']:.3f}/{row[name + '_fwdbwd_ms']:.3f} "
            f"({row[ref_name + '_fwdbwd_ms'] / row[name + '_fwdbwd_ms']:.2f}x)" for name in var)
            + f"  (fwd/fwd+bwd ms, x = {ref_name} / row; rounds spread up to "
            f"{max(max(v) / min(v) for v in ([t[1] for t in ts] for ts in times.values())):.2f}x)")
        dump(args.out, 'confirm.json', report)
    return report


def dump(out_dir, name, report):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, name), 'w') as f:
        json.dump(report, f, indent=1)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == 'compile':
        return compile_worker(argv[1:], os.environ.get('TUNE_PLAIN_OLD_MODULE'))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('mode', choices=['sweep', 'confirm'])
    ap.add_argument('--out', required=True)
    ap.add_argument('--stages', nargs='+', type=int, default=[l for _, l in STAGES], help='stage lengths L')
    ap.add_argument('--dtypes', nargs='+', default=['float32', 'bfloat16'])
    ap.add_argument('--workers', type=int, default=14)
    ap.add_argument('--against', nargs='*', help="confirm: launches to compare with, 'L=spec' or 'L:dtype=spec'")
    ap.add_argument('--old-module', help='confirm: another version of vmamba_zoo/ops/selective_scan/triton.py')
    ap.add_argument('--rounds', type=int, default=3)
    args = ap.parse_args(argv)
    if args.old_module:
        os.environ['TUNE_PLAIN_OLD_MODULE'] = os.path.abspath(args.old_module)  # for the compile workers
    lines = []

    def log(msg):
        print(msg, flush=True)
        lines.append(msg)
    report = sweep(args, log) if args.mode == 'sweep' else confirm(args, log)
    report['log'] = lines
    dump(args.out, 'tune_plain.json' if args.mode == 'sweep' else 'confirm.json', report)


if __name__ == '__main__':
    main()
