#!/usr/bin/env python
"""Build variants of the d_state-1 CUDA kernels (``kernels/selective_scan/single_state.cu``) and time them against
each other at VMamba-T's stage shapes, in alternating processes, with every variant checked against Triton.

    python tools/tune_cuda_single.py --cuda-home /usr/local/cuda --out $OUT/tune_cuda \\
        --variant shipped= --variant b4=bwd_items=4,bwd_blocks=3 --variant old=src=/tmp/old_kernels

A variant is ``NAME=SPEC``: SPEC is empty (the sources as they are) or comma-separated ``key=value`` pairs:
``fwd_items`` / ``bwd_items`` (steps per lane: 2, 4 or 8), ``fwd_blocks`` / ``bwd_blocks`` (the minimum blocks per
SM of ``__launch_bounds__``, which caps the registers), ``row_warps`` (warps per block: 2, 4 or 8), ``fwd_staged`` /
``bwd_staged`` (1: the kernel copies the next iteration's streams to shared memory with cp.async while it computes
this one, the forward for 16-bit inputs only; 0: plain loads), ``bwd_sum_buffers`` (1 or 2 shared buffers for the
per-block dB/dC sums: two need one barrier per chunk instead of two) -- the ``VMZ_SINGLE_*`` macros of
``common.cuh`` -- and ``src=DIR``, another copy of the kernel sources (e.g. the committed ones, ``git show
HEAD:kernels/selective_scan/<file>``), so that a rewrite is timed against what it replaces in the same run. Every
variant is built in parallel (``build_extension``, ~35 s each; ``--build-only`` builds them while the GPU does
something else, ``--reuse-builds`` times what such a call left), then each round runs every variant once in its own
process (``VMAMBA_ZOO_CUDA_EXTENSION`` points at its build); the table gives the median over rounds of fwd and
fwd+bwd ms and the ratio first variant / this one (> 1: faster than the first), and each variant's largest relative
error against the Triton backend (output and the gradients of u, delta, A, B, C, D, delta_bias; ``max_rel_err``;
cells past ``ERROR_LIMITS`` are printed as ``OFF:`` lines). ``--out`` receives ``tune_cuda_single.json`` and the
builds.
Speed is reported here, never asserted in a test (the guide's rule); tests/tools/test_tune_cuda_single.py checks
the parsing, the macros reaching the compiler commands and the table arithmetic on CPU.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(TOOLS, '..'))
sys.path.insert(0, TOOLS)
import bench_gpu  # noqa: E402  (the stage shapes, their inputs and the op timing of the benchmark)

MACROS = {'fwd_items': 'VMZ_SINGLE_FWD_ITEMS', 'bwd_items': 'VMZ_SINGLE_BWD_ITEMS',
          'fwd_blocks': 'VMZ_SINGLE_FWD_MIN_BLOCKS', 'bwd_blocks': 'VMZ_SINGLE_BWD_MIN_BLOCKS',
          'row_warps': 'VMZ_SINGLE_ROW_WARPS', 'fwd_staged': 'VMZ_SINGLE_FWD_STAGED',
          'bwd_staged': 'VMZ_SINGLE_BWD_STAGED', 'bwd_sum_buffers': 'VMZ_SINGLE_BWD_SUM_BUFFERS'}
ALLOWED = {'fwd_items': (2, 4, 8), 'bwd_items': (2, 4, 8), 'row_warps': (2, 4, 8), 'fwd_staged': (0, 1),
           'bwd_staged': (0, 1), 'bwd_sum_buffers': (1, 2)}
STAGES = dict(enumerate(bench_gpu.STAGES, 1))  # stage number -> VMamba-T (d_inner, L) at 224x224


def parse_variant(text):
    """'NAME=k=v,k=v' -> (name, {macro: value}, source dir or None); ValueError naming what is wrong."""
    name, sep, spec = text.partition('=')
    if not sep or not name.isidentifier():
        raise ValueError(f'--variant {text!r}: expected NAME=SPEC with NAME an identifier (SPEC may be empty)')
    defines, src = {}, None
    for item in filter(None, spec.split(',')):
        key, sep, value = item.partition('=')
        if not sep or not value:
            raise ValueError(f'--variant {text!r}: {item!r} is not key=value')
        if key == 'src':
            src = value
            continue
        if key not in MACROS:
            raise ValueError(f'--variant {text!r}: unknown key {key!r} (known: src, {", ".join(MACROS)})')
        if not value.isdigit() or (int(value) < 1 and key not in ALLOWED):
            raise ValueError(f'--variant {text!r}: {key} must be a positive integer, got {value!r}')
        if key in ALLOWED and int(value) not in ALLOWED[key]:
            raise ValueError(f'--variant {text!r}: {key} must be one of {ALLOWED[key]}, got {value}')
        defines[MACROS[key]] = int(value)
    return name, defines, src


def ratio_table(variants, runs):
    """runs: {variant: [{(stage, dtype): (fwd_ms, fwdbwd_ms, err)} per round]} -> rows with medians and
    ratios first variant / this one, in the variants' order."""
    first = variants[0]
    keys = list(runs[first][0])
    rows = []
    for key in keys:
        medians = {v: (statistics.median(r[key][0] for r in runs[v]), statistics.median(r[key][1] for r in runs[v]),
                       max(r[key][2] for r in runs[v])) for v in variants}
        base_fwd, base_fb, _ = medians[first]
        rows.append(dict(stage=key[0], dtype=key[1], variants={
            v: dict(fwd_ms=f, fwdbwd_ms=fb, max_rel_err=e, fwd_ratio=base_fwd / f, fwdbwd_ratio=base_fb / fb)
            for v, (f, fb, e) in medians.items()}))
    return rows


# the largest relative error against Triton a variant may show before it is called out (fp32: mamba_ssm's own
# kernel tolerances are ~1e-3; 16-bit inputs round every stream)
ERROR_LIMITS = {'float32': 1e-4, 'bfloat16': 3e-2, 'float16': 1e-2}


def off_variants(rows):
    """[(variant, stage, dtype, err)] for every cell whose error against Triton is past ERROR_LIMITS."""
    return [(v, row['stage'], row['dtype'], cell['max_rel_err']) for row in rows
            for v, cell in row['variants'].items() if not cell['max_rel_err'] <= ERROR_LIMITS[row['dtype']]]


def format_table(variants, rows):
    head = f'{"stage":>5} {"dtype":>8} ' + ' '.join(f'{v:>26}' for v in variants)
    lines = [head, '(each: fwd ms / fwd+bwd ms (first / this, fwd+bwd); max rel err vs triton below)']
    for row in rows:
        cells = [f'{c["fwd_ms"]:7.3f} / {c["fwdbwd_ms"]:6.3f} ({c["fwdbwd_ratio"]:4.2f}x)'
                 for c in (row['variants'][v] for v in variants)]
        errs = [f'{row["variants"][v]["max_rel_err"]:26.1e}' for v in variants]
        lines.append(f'{row["stage"]:>5} {row["dtype"]:>8} ' + ' '.join(f'{c:>26}' for c in cells))
        lines.append(f'{"":>14} ' + ' '.join(errs))
    return '\n'.join(lines)


# ------------------------------------------------------------------------------------------- the worker
def worker(stages, dtypes, batch, json_path):
    """Times the CUDA backend that VMAMBA_ZOO_CUDA_EXTENSION names; errors against the Triton backend."""
    import torch
    from _tuning import max_rel_error, results

    out = {}
    for dtype_name in dtypes:
        dtype = getattr(torch, dtype_name)
        for stage in stages:
            dim, length = STAGES[stage]
            inp = bench_gpu.stage_inputs(batch, dim, length, dtype)
            # the benchmark's own timing of a backend (do_bench medians of fwd and fwd+bwd)
            fwd, fwdbwd, _ = bench_gpu.bench_scan_backend('cuda', inp)
            leaves = list(inp.values())  # bench_scan_backend made them leaves that require grad
            dout = torch.randn(batch, bench_gpu.K * dim, length, device='cuda', dtype=dtype)
            err = max_rel_error(*(results(bench_gpu._scan_runner(backend, inp), leaves, dout)
                                  for backend in ('cuda', 'triton')))
            out[f'{stage},{dtype_name}'] = (fwd, fwdbwd, err)
            del inp, leaves, dout
            torch.cuda.empty_cache()
    with open(json_path, 'w') as f:
        json.dump(out, f)


# --------------------------------------------------------------------------------------------- the driver
def build_all(variants, cuda_home, out_dir, log, reuse=False):
    from vmamba_zoo.ops.selective_scan.cuda import EXTENSION_NAME, build_extension

    def build(item):
        name, defines, src = item
        done = os.path.join(out_dir, 'build', name, f'{EXTENSION_NAME}.so')
        if reuse and os.path.isfile(done):
            return name, done, 'reused the earlier build'
        t = time.time()
        try:
            so = build_extension(cuda_home, os.path.join(out_dir, 'build', name), jobs=2, kernel_dir=src,
                                 defines=defines)
        except RuntimeError as exc:
            return name, None, f'{exc}'
        return name, str(so), f'built in {time.time() - t:.0f} s'

    with ThreadPoolExecutor(max_workers=max(1, min(len(variants), (os.cpu_count() or 2) // 2))) as pool:
        built = list(pool.map(build, variants))
    for name, so, message in built:
        log(f'{name}: {message}')
    return {name: so for name, so, _ in built}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--variant', action='append', default=[], help='NAME=SPEC (see the module docstring)')
    ap.add_argument('--cuda-home', default=os.environ.get('CUDA_HOME', '/usr/local/cuda'))
    ap.add_argument('--stages', nargs='+', type=int, default=[1, 2, 3, 4], choices=sorted(STAGES))
    ap.add_argument('--dtypes', nargs='+', default=['float32', 'bfloat16'], choices=['float32', 'bfloat16', 'float16'])
    ap.add_argument('--batch', type=int, default=128)
    ap.add_argument('--rounds', type=int, default=2)
    ap.add_argument('--out', required=False, help='folder for tune_cuda_single.json and the builds')
    ap.add_argument('--build-only', action='store_true', help='build the variants and stop (no GPU use)')
    ap.add_argument('--reuse-builds', action='store_true',
                    help="time the builds an earlier --build-only left in --out instead of building again")
    ap.add_argument('--worker', help=argparse.SUPPRESS)  # internal: json path of one timing process
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.stages, args.dtypes, args.batch, args.worker)
        return 0
    if not args.variant or not args.out:
        ap.error('--variant (at least one) and --out are required')
    variants = [parse_variant(v) for v in args.variant]
    names = [name for name, _, _ in variants]
    if len(set(names)) != len(names):
        ap.error(f'variant names repeat: {names}')
    os.makedirs(args.out, exist_ok=True)
    log_lines = []

    def log(msg):
        print(msg, flush=True)
        log_lines.append(msg)

    sos = build_all(variants, args.cuda_home, args.out, log, reuse=args.reuse_builds)
    names = [n for n in names if sos[n]]
    if not names:
        log('no variant built')
        return 1
    if args.build_only:
        return 0
    runs = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names:
            path = os.path.join(args.out, f'{name}_round{r}.json')
            env = dict(os.environ, VMAMBA_ZOO_CUDA_EXTENSION=sos[name])
            cmd = [sys.executable, os.path.abspath(__file__), '--worker', path, '--batch', str(args.batch),
                   '--stages', *map(str, args.stages), '--dtypes', *args.dtypes]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                log(f'{name} round {r}: failed\n{(proc.stdout + proc.stderr)[-3000:]}')
                return 1
            with open(path) as f:
                raw = json.load(f)
            runs[name].append({(int(k.split(',')[0]), k.split(',')[1]): tuple(v) for k, v in raw.items()})
            log(f'{name} round {r}: done')
        # after every round, so that a run cut short keeps its finished rounds
        rows = ratio_table(names, runs)
        log(format_table(names, rows))
        for v, stage, dtype, err in off_variants(rows):
            log(f'OFF: {v} at stage {stage} {dtype}: max rel err {err:.1e} vs triton (limit {ERROR_LIMITS[dtype]:.0e})')
        with open(os.path.join(args.out, 'tune_cuda_single.json'), 'w') as f:
            json.dump(dict(variants=[dict(name=n, defines=d, src=s) for n, d, s in variants if n in names],
                           batch=args.batch, rounds=r + 1, rows=rows, log=log_lines), f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
