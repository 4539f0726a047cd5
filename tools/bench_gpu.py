#!/usr/bin/env python
"""GPU benchmark (run on a CUDA machine): selective-scan backends at VMamba-T stage shapes, and model throughput.

    python tools/bench_gpu.py --json bench_results/gpu.json            # everything
    python tools/bench_gpu.py --section ops --batch 128

Op level: forward and forward+backward time of each backend at VMamba-T's four stage shapes (batch 128, K=4, N=1),
with the bytes that must move (u, delta, B, C read and out written forward; plus dout read and du, ddelta, dB, dC
written backward) over the measured device-to-device copy bandwidth: the HBM bound and the % of it achieved.
Model level: vmamba_tiny (and convnext_tiny as the same-FLOPs reference) inference img/s in fp32 and bf16 and a
training step (fwd+bwd under bf16 autocast, no optimiser step) with peak memory, as the official repo measures.
"""
import argparse
import json
import os
import sys

import torch
import triton.testing

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import vmamba_zoo  # noqa: E402,F401  (registers the models)
from vmamba_zoo.ops import selective_scan  # noqa: E402

STAGES = [(96, 3136), (192, 784), (384, 196), (768, 49)]  # (d_inner, L) of VMamba-T at 224x224


def copy_bandwidth():
    x = torch.empty(1 << 28, dtype=torch.uint8, device='cuda')  # 256 MiB
    y = torch.empty_like(x)
    ms = triton.testing.do_bench(lambda: y.copy_(x), warmup=25, rep=200, return_mode='median')
    return 2 * x.numel() / (ms * 1e-3)  # bytes read + written per second


def stage_inputs(batch, dim, length, dtype, requires_grad=False):
    K, N = 4, 1
    g = torch.Generator(device='cuda').manual_seed(0)
    rnd = lambda *s: torch.randn(*s, device='cuda', generator=g).to(dtype)  # noqa: E731
    t = dict(u=rnd(batch, K * dim, length), delta=rnd(batch, K * dim, length) * 0.5 - 4,
             A=-torch.rand(K * dim, N, device='cuda', generator=g) - 0.5, B=rnd(batch, K, N, length),
             C=rnd(batch, K, N, length), D=torch.ones(K * dim, device='cuda'),
             delta_bias=torch.randn(K * dim, device='cuda', generator=g) * 0.1)
    if requires_grad:
        for v in t.values():
            v.requires_grad_()
    return t


def bench_ops(batch, dtypes, backends, bandwidth):
    rows = []
    for dtype in dtypes:
        size = torch.tensor([], dtype=dtype).element_size()
        for dim, length in STAGES:
            n_elem, n_bc = batch * 4 * dim * length, batch * 4 * 1 * length
            # forward: read u, delta, B, C, write out; backward: read u, delta, B, C, dout, write du, ddelta, dB, dC
            fwd_bytes = size * (3 * n_elem + 2 * n_bc)
            bwd_bytes = fwd_bytes + size * (5 * n_elem + 4 * n_bc)
            row = dict(dtype=str(dtype).split('.')[-1], dim=dim, length=length, batch=batch,
                       bound_fwd_ms=fwd_bytes / bandwidth * 1e3, bound_fwdbwd_ms=bwd_bytes / bandwidth * 1e3)
            for backend in backends:
                inp = stage_inputs(batch, dim, length, dtype, requires_grad=True)
                fwd = lambda: selective_scan(**{k: v.detach() for k, v in inp.items()},  # noqa: E731
                                             delta_softplus=True, backend=backend)
                out = selective_scan(**inp, delta_softplus=True, backend=backend)
                dout = torch.randn_like(out)
                leaves = list(inp.values())

                def fwd_bwd():
                    o = selective_scan(**inp, delta_softplus=True, backend=backend)
                    torch.autograd.grad(o, leaves, dout)

                try:
                    row[f'{backend}_fwd_ms'] = triton.testing.do_bench(fwd, warmup=10, rep=50, return_mode='median')
                    row[f'{backend}_fwdbwd_ms'] = triton.testing.do_bench(fwd_bwd, warmup=5, rep=30,
                                                                          return_mode='median')
                except torch.OutOfMemoryError:
                    row[f'{backend}_fwd_ms'] = row[f'{backend}_fwdbwd_ms'] = float('nan')
                torch.cuda.empty_cache()
            rows.append(row)
            cells = ' '.join(f"{b}: {row[f'{b}_fwd_ms']:.2f}/{row[f'{b}_fwdbwd_ms']:.2f}" for b in backends)
            pct = 100 * row['bound_fwdbwd_ms'] / row[f'{backends[-1]}_fwdbwd_ms']
            print(f"{row['dtype']:9s} D={dim:4d} L={length:5d}  bound {row['bound_fwd_ms']:.2f}/"
                  f"{row['bound_fwdbwd_ms']:.2f} ms  {cells}  ({backends[-1]} fwd+bwd at {pct:.0f}% of bound)",
                  flush=True)
    return rows


def bench_models(names, batch, warmup, reps):
    import timm
    rows = []
    for name in names:
        model = timm.create_model(name).cuda()
        x = torch.randn(batch, 3, 224, 224, device='cuda')
        row = dict(model=name, batch=batch)
        model.eval()
        with torch.no_grad():
            for label, ctx in (('infer_fp32', torch.autocast('cuda', enabled=False)),
                               ('infer_bf16', torch.autocast('cuda', dtype=torch.bfloat16))):
                with ctx:
                    ms = triton.testing.do_bench(lambda: model(x), warmup=warmup, rep=reps, return_mode='median')
                row[f'{label}_img_s'] = batch / (ms * 1e-3)
        model.train()
        torch.cuda.reset_peak_memory_stats()

        def step():
            with torch.autocast('cuda', dtype=torch.bfloat16):
                loss = model(x).float().mean()
            loss.backward()

        ms = triton.testing.do_bench(step, warmup=warmup, rep=reps, return_mode='median', grad_to_none=None)
        row['train_img_s'] = batch / (ms * 1e-3)
        row['train_peak_gib'] = torch.cuda.max_memory_allocated() / 2 ** 30
        rows.append(row)
        print(f"{name:16s} infer fp32 {row['infer_fp32_img_s']:7.0f} img/s  bf16 {row['infer_bf16_img_s']:7.0f}"
              f"  train {row['train_img_s']:6.0f} img/s  peak {row['train_peak_gib']:.1f} GiB", flush=True)
        model = None  # free its memory before the next model
        torch.cuda.empty_cache()
    return rows


def profile_model(name, batch, rows=25):
    """Top CUDA kernels of one fp32 inference pass and one AMP training step (torch.profiler)."""
    import timm
    model = timm.create_model(name).cuda()
    x = torch.randn(batch, 3, 224, 224, device='cuda')
    for label, train in (('inference fp32', False), ('train step bf16 autocast', True)):
        model.train(train)

        def run():
            if train:
                with torch.autocast('cuda', dtype=torch.bfloat16):
                    model(x).float().mean().backward()
            else:
                with torch.no_grad():
                    model(x)
        for _ in range(3):
            run()
        torch.cuda.synchronize()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            run()
            torch.cuda.synchronize()
        print(f'\n{name} {label}, batch {batch}')
        print(prof.key_averages().table(sort_by='self_cuda_time_total', row_limit=rows, max_name_column_width=70))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--section', choices=['ops', 'models', 'profile', 'all'], default='all')
    ap.add_argument('--batch', type=int, default=128)
    ap.add_argument('--backends', nargs='+', default=['chunked', 'triton'])
    ap.add_argument('--models', nargs='+', default=['vmamba_tiny', 'convnext_tiny'])
    ap.add_argument('--json')
    args = ap.parse_args(argv)
    report = dict(device=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__)
    report['copy_bandwidth_gb_s'] = copy_bandwidth() / 1e9
    print(f"{report['device']}  torch {report['torch']}  triton {report['triton']}  "
          f"copy bandwidth {report['copy_bandwidth_gb_s']:.0f} GB/s", flush=True)
    if args.section in ('ops', 'all'):
        print('\nselective scan fwd / fwd+bwd ms (VMamba-T stages, K=4, N=1)')
        report['ops'] = bench_ops(args.batch, [torch.float32, torch.bfloat16], args.backends,
                                  report['copy_bandwidth_gb_s'] * 1e9)
    if args.section in ('models', 'all'):
        print(f'\nmodels, batch {args.batch}, 224x224')
        report['models'] = bench_models(args.models, args.batch, warmup=100, reps=300)
    if args.section == 'profile':
        for name in args.models:
            profile_model(name, args.batch)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=2)


if __name__ == '__main__':
    main()
