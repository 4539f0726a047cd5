#!/usr/bin/env python
"""GPU benchmark of the state-fusion op (Spatial-Mamba) at Spatial-Mamba-T's stage shapes: backends side by side.

    python tools/bench_gpu_state_fusion.py --json bench_results/gpu_state_fusion.json
    python tools/bench_gpu_state_fusion.py --sweep --dtypes bfloat16 --json bench_results/gpu_state_fusion_sweep.json

Shapes (``vmamba_zoo/models/spatialmamba.py``, ``spatialmamba_tiny``: dims 64 doubled per stage, expand 2, d_state
1, one row-major direction, 3x3 fusion kernels at dilations 1, 3, 5; 224x224 input): d_inner 128 / 256 / 512 /
1024 at 56x56 / 28x28 / 14x14 / 7x7, depths 2 / 4 / 8 / 4; batch 128 (``--batch``). Sequences (u, delta, B, C) in
the timed dtype, parameters (A, weight, D, delta_bias) fp32, as the model passes them under autocast.

Per stage and dtype:

* verification first: ``triton``'s output and every input's gradient against ``chunked`` on the same inputs
  (relative L2 error; a mismatch is printed, recorded, and makes the exit status 1 after everything ran);
* the whole op, fwd (no autograd) and fwd+bwd ms, via ``triton.testing.do_bench`` (median), for ``chunked`` and
  ``triton``, and ``naive`` only where L <= ``--naive-max-len`` (default 49 = stage 4: it is a Python loop over
  the steps); ratios chunked / triton and naive / triton;
* the state scan alone (the part the Triton kernels replace): ``triton``'s kernels vs the chunked PyTorch scan
  (``selective_scan_chunked(return_states=True)``), fwd and fwd+bwd, and the HBM bytes the kernels must move over
  their time: forward reads u, delta, B and writes the fp32 states (batch, D, N, L); backward reads u, delta, B
  and the fp32 state gradient and writes du, ddelta and dB. The % is of the device-to-device copy bandwidth
  measured in the same run (read + write bytes per second of a 1 GiB copy).

``--sweep`` also times the Triton scan's launch configurations (``VMAMBA_ZOO_STATE_FUSION_BLOCKS``, see
``vmamba_zoo/ops/state_fusion/triton.py`` ``_blocks``) at every stage and prints the fastest forward and backward
ones, for tuning the defaults. Without a CUDA device (or without Triton) it prints one line and exits 0.
"""
import argparse
import datetime
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from vmamba_zoo.ops.selective_scan import selective_scan_chunked  # noqa: E402
from vmamba_zoo.ops.state_fusion import state_fusion_scan_chunked, state_fusion_scan_naive  # noqa: E402

# Spatial-Mamba-T at 224x224 (models/spatialmamba.py: spatialmamba_tiny dims=64, depths=(2, 4, 8, 4), expand 2)
STAGES = [dict(d_inner=128, side=56, depth=2), dict(d_inner=256, side=28, depth=4),
          dict(d_inner=512, side=14, depth=8), dict(d_inner=1024, side=7, depth=4)]
N_STATE, DILATIONS = 1, (1, 3, 5)
ENV_BLOCKS = 'VMAMBA_ZOO_STATE_FUSION_BLOCKS'
# (BL, BD, warps) tried by --sweep; BD is in channels at N = 1 (tiles of BD * BL elements)
SWEEP = [(bl, bd, w) for bl in (32, 64, 128) for bd, w in ((2, 1), (4, 2), (4, 4), (8, 4), (16, 4), (32, 4),
                                                            (16, 8), (32, 8))]


def _random(shape, dtype, g, scale=1.0, shift=0.0):
    return (torch.randn(*shape, device='cuda', generator=g) * scale + shift).to(dtype)


def stage_inputs(batch, stage, dtype):
    g = torch.Generator(device='cuda').manual_seed(0)
    dim, length = stage['d_inner'], stage['side'] ** 2
    # delta around -4 before softplus (dt ~ 0.02, Mamba's dt_init range) and A ~ -1 (S4D-real with N = 1)
    return dict(u=_random((batch, dim, length), dtype, g), delta=_random((batch, dim, length), dtype, g, 0.5, -4),
                A=-torch.rand(dim, N_STATE, device='cuda', generator=g) - 0.5,
                B=_random((batch, 1, N_STATE, length), dtype, g), C=_random((batch, 1, N_STATE, length), dtype, g),
                weight=torch.randn(len(DILATIONS), dim, 3, 3, device='cuda', generator=g) * 0.3,
                D=torch.ones(dim, device='cuda'), delta_bias=torch.randn(dim, device='cuda', generator=g) * 0.1)


def _time(fn, fast=True, rep=None):
    import triton.testing
    # do_bench's warm-up / rep are milliseconds; the slow PyTorch paths get fewer repetitions
    return triton.testing.do_bench(fn, warmup=25 if fast else 5, rep=rep or (200 if fast else 40),
                                   return_mode='median')


def copy_bandwidth():
    import triton.testing
    x = torch.empty(1 << 30, dtype=torch.uint8, device='cuda')  # 1 GiB: far past the H200's 60 MB L2
    y = torch.empty_like(x)
    ms = triton.testing.do_bench(lambda: y.copy_(x), warmup=25, rep=200, return_mode='median')
    return 2 * x.numel() / (ms * 1e-3)


def _relative(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def op_runner(fn, inp, size):
    return lambda: fn(**inp, size=size, delta_softplus=True, dilations=DILATIONS)


def scan_runner(name, inp):
    from vmamba_zoo.ops.state_fusion.triton import states_scan_triton
    args = (inp['u'], inp['delta'], inp['A'], inp['B'])
    if name == 'triton':
        return lambda: states_scan_triton(*args, delta_bias=inp['delta_bias'], delta_softplus=True)
    return lambda: selective_scan_chunked(*args, None, delta_bias=inp['delta_bias'], delta_softplus=True,
                                          return_states=True)


def fwd_and_fwd_bwd(run, leaves, fast=True, rep=None):
    """(fwd ms without autograd, fwd+bwd ms) of ``run``."""
    with torch.no_grad():
        out = run()
        fwd = _time(run, fast, rep)
    dout = torch.randn_like(out)
    del out

    def fwd_bwd():
        torch.autograd.grad(run(), leaves, dout)
    return fwd, _time(fwd_bwd, fast, rep)


def verify(inp, size, dtype):
    """Relative L2 error of triton vs chunked: the output and the gradient of every input."""
    from vmamba_zoo.ops.state_fusion.triton import state_fusion_scan_triton
    leaves = {k: v.detach().requires_grad_() for k, v in inp.items()}
    results = {}
    outs = {}
    for name, fn in (('chunked', state_fusion_scan_chunked), ('triton', state_fusion_scan_triton)):
        out = op_runner(fn, leaves, size)()
        dout = torch.randn(out.shape, device='cuda', generator=torch.Generator(device='cuda').manual_seed(1))
        outs[name] = (out.detach(), torch.autograd.grad(out.float(), list(leaves.values()), dout))
    results['out'] = _relative(outs['triton'][0], outs['chunked'][0])
    for key, g, r in zip(leaves, outs['triton'][1], outs['chunked'][1]):
        results[key] = _relative(g, r)
    limit = 1e-4 if dtype == torch.float32 else 3e-2
    return results, all(v < limit for v in results.values()), limit


def scan_bytes(batch, dim, length, dtype):
    """(forward, backward) HBM bytes the state-scan kernels must move (see the module docstring)."""
    e, f32 = torch.empty((), dtype=dtype).element_size(), 4
    seq = batch * dim * length
    b_row = batch * N_STATE * length
    fwd = seq * 2 * e + b_row * e + seq * N_STATE * f32
    bwd = seq * 2 * e + b_row * e + seq * N_STATE * f32 + seq * 2 * e + b_row * e
    return fwd, bwd


def sweep(batch, stage, dtype, log):
    """Fwd and fwd+bwd ms of the Triton scan per launch config; the fastest forward and backward ones."""
    inp = stage_inputs(batch, stage, dtype)
    leaves = [inp[k].requires_grad_() for k in ('u', 'delta', 'A', 'B', 'delta_bias')]
    rows = []
    saved = os.environ.get(ENV_BLOCKS)
    try:
        for bl, bd, w in SWEEP:
            os.environ[ENV_BLOCKS] = f'{bl},{bd},{w},{bd},{w}'
            try:
                # 60 ms of repetitions per config (~100 configs per dtype must fit one 10-minute run)
                fwd, fwd_bwd = fwd_and_fwd_bwd(scan_runner('triton', inp), leaves, rep=60)
            except Exception as exc:  # e.g. out of resources for a large tile: skip that config
                log(f'    BL={bl} BD={bd} W={w}: {type(exc).__name__}: {str(exc)[:100]}')
                continue
            rows.append(dict(block_l=bl, block_d=bd, warps=w, fwd_ms=fwd, fwd_bwd_ms=fwd_bwd, bwd_ms=fwd_bwd - fwd))
    finally:
        if saved is None:
            os.environ.pop(ENV_BLOCKS, None)
        else:
            os.environ[ENV_BLOCKS] = saved
    best_f = min(rows, key=lambda r: r['fwd_ms'])
    best_b = min(rows, key=lambda r: r['bwd_ms'])
    log(f"  sweep L={stage['side'] ** 2} D={stage['d_inner']} {str(dtype)[6:]}: fastest fwd BL={best_f['block_l']} "
        f"BD={best_f['block_d']} W={best_f['warps']} {best_f['fwd_ms']:.3f} ms; fastest bwd BL={best_b['block_l']} "
        f"BD={best_b['block_d']} W={best_b['warps']} {best_b['bwd_ms']:.3f} ms")
    return dict(stage=stage, dtype=str(dtype)[6:], rows=rows, best_fwd=best_f, best_bwd=best_b)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--batch', type=int, default=128)
    ap.add_argument('--dtypes', nargs='+', default=['float32', 'bfloat16'])
    ap.add_argument('--stages', nargs='+', type=int, default=[1, 2, 3, 4], help='1-based stage numbers')
    ap.add_argument('--naive-max-len', type=int, default=49, help='run naive only up to this L (sequential)')
    ap.add_argument('--sweep', action='store_true', help='also time the Triton launch configs')
    ap.add_argument('--json', help='write the results here')
    args = ap.parse_args(argv)

    def write(report):
        if args.json:
            os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
            with open(args.json, 'w') as f:
                json.dump(report, f, indent=2)

    if not torch.cuda.is_available():
        print('bench_gpu_state_fusion: no CUDA device, nothing measured (run it on a GPU machine)')
        write(dict(skipped='no CUDA device'))
        return 0
    try:
        import triton
    except ImportError:
        print('bench_gpu_state_fusion: triton is not installed, nothing measured')
        write(dict(skipped='triton not installed'))
        return 0

    log = lambda msg: print(msg, flush=True)  # noqa: E731
    report = dict(date=datetime.datetime.now().isoformat(timespec='seconds'), device=torch.cuda.get_device_name(),
                  torch=torch.__version__, triton=triton.__version__, batch=args.batch, shapes='Spatial-Mamba-T',
                  rows=[], sweep=[])
    report['copy_bandwidth_gb_s'] = bandwidth = copy_bandwidth() / 1e9
    log(f"{report['device']}  torch {torch.__version__}  triton {triton.__version__}  batch {args.batch}  "
        f"copy bandwidth {bandwidth:.0f} GB/s")
    from vmamba_zoo.ops.state_fusion.triton import state_fusion_scan_triton
    failed = False
    for dtype_name in args.dtypes:
        dtype = getattr(torch, dtype_name)
        for number in args.stages:
            stage = STAGES[number - 1]
            size, length, dim = (stage['side'],) * 2, stage['side'] ** 2, stage['d_inner']
            inp = stage_inputs(args.batch, stage, dtype)
            errors, ok, limit = verify(inp, size, dtype)
            failed |= not ok
            worst = max(errors, key=errors.get)
            log(f"stage {number} L={length} D={dim} {dtype_name}: triton vs chunked worst relative error "
                f"{errors[worst]:.1e} ({worst}) {'ok' if ok else f'MISMATCH (limit {limit:g})'}")
            row = dict(stage=number, length=length, d_inner=dim, depth=stage['depth'], dtype=dtype_name,
                       verify=errors, verify_ok=ok)
            leaves = [v.requires_grad_() for v in inp.values()]
            backends = [('chunked', state_fusion_scan_chunked, False), ('triton', state_fusion_scan_triton, True)]
            if length <= args.naive_max_len:
                backends.insert(0, ('naive', state_fusion_scan_naive, False))
            for name, fn, fast in backends:
                fwd, fwd_bwd = fwd_and_fwd_bwd(op_runner(fn, inp, size), leaves, fast)
                row[f'{name}_fwd_ms'], row[f'{name}_fwd_bwd_ms'] = fwd, fwd_bwd
            for name in ('chunked', 'triton'):
                fwd, fwd_bwd = fwd_and_fwd_bwd(scan_runner(name, inp), [inp[k] for k in ('u', 'delta', 'A', 'B',
                                                                                          'delta_bias')],
                                               name == 'triton')
                row[f'scan_{name}_fwd_ms'], row[f'scan_{name}_fwd_bwd_ms'] = fwd, fwd_bwd
            fwd_bytes, bwd_bytes = scan_bytes(args.batch, dim, length, dtype)
            bwd_ms = row['scan_triton_fwd_bwd_ms'] - row['scan_triton_fwd_ms']  # the backward kernel + host sums
            row['scan_fwd_bytes'], row['scan_bwd_bytes'] = fwd_bytes, bwd_bytes
            row['scan_fwd_gb_s'] = fwd_bytes / (row['scan_triton_fwd_ms'] * 1e-3) / 1e9
            row['scan_bwd_gb_s'] = bwd_bytes / (bwd_ms * 1e-3) / 1e9 if bwd_ms > 0 else None
            for mode in ('fwd', 'fwd_bwd'):
                row[f'speedup_{mode}'] = row[f'chunked_{mode}_ms'] / row[f'triton_{mode}_ms']
                row[f'scan_speedup_{mode}'] = row[f'scan_chunked_{mode}_ms'] / row[f'scan_triton_{mode}_ms']
                if 'naive_fwd_ms' in row:
                    row[f'naive_speedup_{mode}'] = row[f'naive_{mode}_ms'] / row[f'triton_{mode}_ms']
            naive = (f"  naive {row['naive_fwd_ms']:.2f} / {row['naive_fwd_bwd_ms']:.2f} ms "
                     f"(x{row['naive_speedup_fwd']:.1f} / x{row['naive_speedup_fwd_bwd']:.1f})"
                     if 'naive_fwd_ms' in row else '')
            log(f"  op   fwd / fwd+bwd ms: chunked {row['chunked_fwd_ms']:.3f} / {row['chunked_fwd_bwd_ms']:.3f}  "
                f"triton {row['triton_fwd_ms']:.3f} / {row['triton_fwd_bwd_ms']:.3f}  chunked/triton "
                f"x{row['speedup_fwd']:.2f} / x{row['speedup_fwd_bwd']:.2f}{naive}")
            bwd_bw = (f"{row['scan_bwd_gb_s']:.0f} GB/s ({100 * row['scan_bwd_gb_s'] / bandwidth:.0f}%)"
                      if row['scan_bwd_gb_s'] else 'n/a')
            log(f"  scan fwd / fwd+bwd ms: chunked {row['scan_chunked_fwd_ms']:.3f} / "
                f"{row['scan_chunked_fwd_bwd_ms']:.3f}  triton {row['scan_triton_fwd_ms']:.3f} / "
                f"{row['scan_triton_fwd_bwd_ms']:.3f}  x{row['scan_speedup_fwd']:.2f} / "
                f"x{row['scan_speedup_fwd_bwd']:.2f}  HBM fwd {fwd_bytes / 1e6:.0f} MB "
                f"{row['scan_fwd_gb_s']:.0f} GB/s ({100 * row['scan_fwd_gb_s'] / bandwidth:.0f}%), bwd "
                f"{bwd_bytes / 1e6:.0f} MB {bwd_bw}")
            report['rows'].append(row)
            del inp, leaves
            torch.cuda.empty_cache()
            if args.sweep:
                report['sweep'].append(sweep(args.batch, stage, dtype, log))
        # per model step: the op's share of a Spatial-Mamba-T forward+backward (sum of depth x stage time)
        rows = [r for r in report['rows'] if r['dtype'] == dtype_name]
        if len(rows) == len(STAGES):
            totals = {b: sum(r['depth'] * r[f'{b}_fwd_bwd_ms'] for r in rows) for b in ('chunked', 'triton')}
            report[f'model_step_ms_{dtype_name}'] = totals
            log(f"Spatial-Mamba-T {dtype_name}, all {sum(s['depth'] for s in STAGES)} state-fusion calls fwd+bwd at "
                f"batch {args.batch}: chunked {totals['chunked']:.1f} ms, triton {totals['triton']:.1f} ms "
                f"(x{totals['chunked'] / totals['triton']:.2f})")
    write(report)
    if failed:
        log('bench_gpu_state_fusion: triton and chunked DISAGREE somewhere (see "MISMATCH" above)')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
