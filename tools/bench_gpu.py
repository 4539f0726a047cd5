#!/usr/bin/env python
"""GPU benchmark (run on a CUDA machine): selective-scan backends at VMamba-T stage shapes, and model throughput.

    python tools/bench_gpu.py --json bench_results/gpu.json            # everything, one run, ratios side by side
    python tools/bench_gpu.py --section ops --batch 128
    python tools/bench_gpu.py --section models profile --measurements model_cards/measurements/gpu_h200.json

Op level: fwd+bwd (and fwd) time of each selective-scan backend at VMamba-T's four stage shapes (batch 128, K=4,
N=1): ``naive`` (the sequential reference, at the smallest stage only: it takes seconds), ``chunked``,
``triton``, ``cuda`` (kernels/, JIT-built; skipped without a toolchain) and the fused 2D scan (``fused``:
gather on load / scatter-add on store, against ``plain2d`` = scan() + triton + merge() on the same map).
The HBM bound is the bytes that must move -- u, delta, B, C read and out written forward; u, delta, B, C, dout
read and du, ddelta, dB, dC written backward -- over the device-to-device copy bandwidth measured in the same
run; each row prints the time and the % of that bound achieved (bound / time).
Model level: inference img/s in fp32 and bf16 (autocast), batch 128, 50 warm-up + 30 timed passes (the official
repo's protocol), and a training step (fwd+bwd under bf16 autocast, no optimiser step) with peak memory, for
vmamba_tiny on the fused path, vmamba_tiny on the plain path, and timm's convnext_tiny (same FLOPs class).
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import time

import torch
import triton
import triton.testing

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import vmamba_zoo  # noqa: E402,F401  (registers the models)
from vmamba_zoo.ops import selective_scan  # noqa: E402
from vmamba_zoo.ops.scan2d import ENV_BACKEND as ENV_SCAN2D  # noqa: E402
from vmamba_zoo.scans import get_scan, merge, scan  # noqa: E402

STAGES = [(96, 3136), (192, 784), (384, 196), (768, 49)]  # (d_inner, L) of VMamba-T at 224x224
K, N = 4, 1


def copy_bandwidth():
    x = torch.empty(1 << 30, dtype=torch.uint8, device='cuda')  # 1 GiB: far past the 60 MB L2
    y = torch.empty_like(x)
    ms = triton.testing.do_bench(lambda: y.copy_(x), warmup=25, rep=200, return_mode='median')
    return 2 * x.numel() / (ms * 1e-3)  # bytes read + written per second


def _random(shape, dtype, g, scale=1.0, shift=0.0):
    return (torch.randn(*shape, device='cuda', generator=g) * scale + shift).to(dtype)


def stage_inputs(batch, dim, length, dtype):
    g = torch.Generator(device='cuda').manual_seed(0)
    return dict(u=_random((batch, K * dim, length), dtype, g),
                delta=_random((batch, K * dim, length), dtype, g, 0.5, -4),
                A=-torch.rand(K * dim, N, device='cuda', generator=g) - 0.5, B=_random((batch, K, N, length), dtype, g),
                C=_random((batch, K, N, length), dtype, g), D=torch.ones(K * dim, device='cuda'),
                delta_bias=torch.randn(K * dim, device='cuda', generator=g) * 0.1)


def _time(fn, fast):
    # do_bench's warm-up/rep are milliseconds; shorter for the slow PyTorch paths
    return triton.testing.do_bench(fn, warmup=5 if not fast else 25, rep=40 if not fast else 200,
                                   return_mode='median')


def _fwd_bwd_timer(run, leaves, dout):
    def fwd_bwd():
        torch.autograd.grad(run(), leaves, dout)
    return fwd_bwd


def bench_scan_backend(backend, inp):
    leaves = [v.requires_grad_() for v in inp.values()]
    run = lambda: selective_scan(**inp, delta_softplus=True, backend=backend)  # noqa: E731
    dout = torch.randn_like(run())
    fast = backend not in ('naive', 'chunked')
    with torch.no_grad():
        fwd = _time(run, fast)
    return fwd, _time(_fwd_bwd_timer(run, leaves, dout), fast)


def bench_fused_2d(batch, dim, length, dtype):
    """The fused 2D scan vs scan() + triton + merge() on the same (B, D, H, W) channels-last map."""
    from vmamba_zoo.ops.selective_scan.triton import selective_scan_fused_triton
    side = int(round(length ** 0.5))
    strategy = get_scan('cross')
    index = strategy.index(side, side, 'cuda')
    g = torch.Generator(device='cuda').manual_seed(0)
    x = _random((batch, side, side, dim), dtype, g).permute(0, 3, 1, 2)  # channels-last, as SS2D makes it
    # per-direction delta / B / C as the two paths get them from their projections: pixel order (fused),
    # scan order (plain)
    delta_pix = _random((K, batch, length, dim), dtype, g, 0.5, -4).permute(1, 0, 3, 2)
    bc_pix = _random((batch, length, K, 2 * N), dtype, g)
    B_pix, C_pix = bc_pix[..., :N].permute(0, 2, 3, 1), bc_pix[..., N:].permute(0, 2, 3, 1)
    A = -torch.rand(K * dim, N, device='cuda', generator=g) - 0.5
    D = torch.ones(K * dim, device='cuda')
    bias = torch.randn(K * dim, device='cuda', generator=g) * 0.1
    delta_seq = _random((batch, K * dim, length), dtype, g, 0.5, -4)
    B_seq, C_seq = _random((batch, K, N, length), dtype, g), _random((batch, K, N, length), dtype, g)
    fused_leaves = [t.requires_grad_() for t in (x, delta_pix, B_pix, C_pix, A, D, bias)]
    plain_leaves = [delta_seq.requires_grad_(), B_seq.requires_grad_(), C_seq.requires_grad_()]

    def fused():
        return selective_scan_fused_triton(x, delta_pix, A, B_pix, C_pix, index, D=D, delta_bias=bias,
                                           delta_softplus=True)

    def plain():
        xs = scan(x, strategy).reshape(batch, K * dim, length)
        ys = selective_scan(xs, delta_seq, A, B_seq, C_seq, D=D, delta_bias=bias, delta_softplus=True,
                            backend='triton')
        return merge(ys.view(batch, K, dim, length), strategy, (side, side))

    dout = torch.randn_like(fused())
    rows = {}
    for name, run, leaves in (('fused', fused, fused_leaves), ('plain2d', plain, [x, A, D, bias] + plain_leaves)):
        with torch.no_grad():
            fwd = _time(run, True)
        rows[name] = (fwd, _time(_fwd_bwd_timer(run, leaves, dout), True))
    return rows


def bench_ops(batch, dtypes, backends, bandwidth, log):
    rows = []
    for dtype in dtypes:
        size = torch.tensor([], dtype=dtype).element_size()
        for dim, length in STAGES:
            n_elem, n_bc = batch * K * dim * length, batch * K * N * length
            fwd_bytes = size * (3 * n_elem + 2 * n_bc)
            bwd_bytes = fwd_bytes + size * (5 * n_elem + 4 * n_bc)
            row = dict(dtype=str(dtype).split('.')[-1], dim=dim, length=length, batch=batch,
                       bound_fwd_ms=fwd_bytes / bandwidth * 1e3, bound_fwdbwd_ms=bwd_bytes / bandwidth * 1e3)
            for backend in backends:
                if backend == 'naive' and dim != STAGES[-1][0]:
                    continue  # seconds per call at the larger stages
                if backend in ('fused', 'plain2d'):
                    continue
                try:
                    row[f'{backend}_fwd_ms'], row[f'{backend}_fwdbwd_ms'] = bench_scan_backend(
                        backend, stage_inputs(batch, dim, length, dtype))
                except Exception as exc:  # an unavailable backend (no toolchain) or OOM: record, go on
                    row[f'{backend}_error'] = f'{type(exc).__name__}: {str(exc)[:200]}'
                torch.cuda.empty_cache()
            if 'fused' in backends:
                try:
                    for name, (fwd, fb) in bench_fused_2d(batch, dim, length, dtype).items():
                        row[f'{name}_fwd_ms'], row[f'{name}_fwdbwd_ms'] = fwd, fb
                except Exception as exc:
                    row['fused_error'] = f'{type(exc).__name__}: {str(exc)[:200]}'
                torch.cuda.empty_cache()
            rows.append(row)
            cells = []
            for b in backends:
                if f'{b}_fwdbwd_ms' in row:
                    ms = row[f'{b}_fwdbwd_ms']
                    cells.append(f"{b} {row[f'{b}_fwd_ms']:.2f}/{ms:.2f} ({100 * row['bound_fwdbwd_ms'] / ms:.0f}%)")
            log(f"{row['dtype']:8s} D={dim:3d} L={length:4d} bound {row['bound_fwd_ms']:.2f}/"
                f"{row['bound_fwdbwd_ms']:.2f} | " + ' | '.join(cells))
    return rows


def _timed_passes(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps  # ms per pass


def bench_models(specs, batch, warmup, reps, log):
    import timm
    rows = []
    for label, name, env in specs:
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            torch.manual_seed(0)
            model = timm.create_model(name).cuda()
            x = torch.randn(batch, 3, 224, 224, device='cuda')
            row = dict(model=label, timm_name=name, batch=batch, env=env)
            model.eval()
            with torch.no_grad():
                row['infer_fp32_img_s'] = batch / (_timed_passes(lambda: model(x), warmup, reps) * 1e-3)
                with torch.autocast('cuda', dtype=torch.bfloat16):
                    row['infer_bf16_img_s'] = batch / (_timed_passes(lambda: model(x), warmup, reps) * 1e-3)
            model.train()

            def step():
                with torch.autocast('cuda', dtype=torch.bfloat16):
                    loss = model(x).float().mean()
                loss.backward()
                for p in model.parameters():
                    p.grad = None

            step()
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            row['train_amp_img_s'] = batch / (_timed_passes(step, warmup, reps) * 1e-3)
            row['train_peak_gib'] = torch.cuda.max_memory_allocated() / 2 ** 30
            rows.append(row)
            log(f"{label:22s} infer fp32 {row['infer_fp32_img_s']:7.0f} img/s  bf16 {row['infer_bf16_img_s']:7.0f}"
                f"  train AMP {row['train_amp_img_s']:6.0f} img/s  peak {row['train_peak_gib']:.1f} GiB")
        except Exception as exc:
            log(f'{label}: failed: {type(exc).__name__}: {str(exc)[:300]}')
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            model = None
            torch.cuda.empty_cache()
    return rows


def profile_model(name, batch, log, rows=20):
    """Top CUDA kernels of one AMP training step (torch.profiler)."""
    import timm
    model = timm.create_model(name).cuda()
    x = torch.randn(batch, 3, 224, 224, device='cuda')

    def run():
        with torch.autocast('cuda', dtype=torch.bfloat16):
            model(x).float().mean().backward()
    for _ in range(3):
        run()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        run()
        torch.cuda.synchronize()
    table = prof.key_averages().table(sort_by='self_cuda_time_total', row_limit=rows, max_name_column_width=60)
    log(f'\n{name} train step bf16 autocast, batch {batch}\n{table}')


def software():
    info = dict(device=torch.cuda.get_device_name(), torch=torch.__version__, cuda=torch.version.cuda,
                triton=triton.__version__,
                date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'))
    try:
        nvcc = subprocess.run(['nvcc', '--version'], capture_output=True, text=True).stdout.strip().splitlines()
        info['nvcc'] = nvcc[-1] if nvcc else None
        info['driver'] = subprocess.run(['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader'],
                                        capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--section', nargs='+', choices=['ops', 'models', 'profile', 'all'], default=['all'])
    ap.add_argument('--batch', type=int, default=128)
    ap.add_argument('--backends', nargs='+', default=['naive', 'chunked', 'triton', 'cuda', 'fused'])
    ap.add_argument('--dtypes', nargs='+', default=['float32', 'bfloat16'])
    ap.add_argument('--warmup', type=int, default=50)
    ap.add_argument('--reps', type=int, default=30)
    ap.add_argument('--json', help='raw results')
    ap.add_argument('--measurements', help='per-model summary for the model cards')
    args = ap.parse_args(argv)
    report = software()
    lines = []

    def log(msg):
        print(msg, flush=True)
        lines.append(msg)

    report['copy_bandwidth_gb_s'] = copy_bandwidth() / 1e9
    log(f"{report['device']}  torch {report['torch']} (CUDA {report['cuda']})  triton {report['triton']}  "
        f"{report.get('nvcc', '')}  copy bandwidth {report['copy_bandwidth_gb_s']:.0f} GB/s")

    def dump():
        if args.json:
            os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
            with open(args.json, 'w') as f:
                json.dump(dict(report, log=lines), f, indent=2)

    if {'ops', 'all'} & set(args.section):
        if 'cuda' in args.backends:
            t0 = time.time()
            try:
                from vmamba_zoo.ops.selective_scan.cuda import load_extension
                load_extension()
                log(f'cuda backend built/loaded in {time.time() - t0:.0f} s')
            except Exception as exc:
                log(f'cuda backend unavailable: {exc}')
        log(f'\nselective scan fwd/fwd+bwd ms (VMamba-T stages, batch {args.batch}, K=4, N=1); (% of HBM bound)')
        report['ops'] = bench_ops(args.batch, [getattr(torch, d) for d in args.dtypes], args.backends,
                                  report['copy_bandwidth_gb_s'] * 1e9, log)
        dump()
    if {'models', 'all'} & set(args.section):
        log(f'\nmodels, batch {args.batch}, 224x224, {args.warmup} warm-up + {args.reps} timed passes')
        specs = [('vmamba_tiny (fused)', 'vmamba_tiny', {}),
                 ('vmamba_tiny (plain)', 'vmamba_tiny', {ENV_SCAN2D: 'plain'}),
                 ('convnext_tiny', 'convnext_tiny', {})]
        report['models'] = bench_models(specs, args.batch, args.warmup, args.reps, log)
        dump()
        if args.measurements:
            summary = {}  # the models as users get them (default dispatch); the plain-path row stays in --json
            for row in report['models']:
                if row['env']:
                    continue
                summary[row['timm_name']] = {k: round(row[k], 2) for k in (
                    'infer_fp32_img_s', 'infer_bf16_img_s', 'train_amp_img_s', 'train_peak_gib')}
                summary[row['timm_name']].update(device=report['device'], batch=args.batch)
            os.makedirs(os.path.dirname(os.path.abspath(args.measurements)), exist_ok=True)
            with open(args.measurements, 'w') as f:
                json.dump(summary, f, indent=2)
    if {'profile', 'all'} & set(args.section):
        profile_model('vmamba_tiny', args.batch, log)
    dump()


if __name__ == '__main__':
    main()
