#!/usr/bin/env python
"""Compare models: params, GFLOPs, inference / training throughput, peak memory and batch-1 latency.

    python tools/benchmark.py vmamba_tiny convnext_tiny                     # CPU or GPU, whatever is there
    python tools/benchmark.py 'vmamba_*' 'vim_*' --compare convnext_tiny --csv out.csv --json out.json
    python tools/benchmark.py vim_tiny_patch16_224 deit_tiny_patch16_224 --resolutions 224 512 1024 \\
        --plot curves.png                                                    # Vim-style resolution curve

Names are zoo or timm names; shell-style globs expand over the zoo's models (``vmamba_zoo.list_models``).
Throughput = images / second of ``--batch`` images (median of ``--reps`` timed runs after warm-up; CUDA timed
with events and AMP bf16 when ``--amp``); training = forward + backward (no optimiser step) as the official
repos measure it. FLOPs are fvcore MACs with the zoo's handles (``vmamba_zoo.flops.count_flops``), the papers'
convention. ``--compare REF`` adds each number as a ratio to model REF (run side by side, same process).
"""
import argparse
import csv
import fnmatch
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import timm  # noqa: E402
import vmamba_zoo  # noqa: E402
from vmamba_zoo.flops import count_flops, count_params  # noqa: E402


def expand_names(patterns):
    names = []
    for pattern in patterns:
        if any(ch in pattern for ch in '*?['):
            matched = vmamba_zoo.list_models(pattern) or fnmatch.filter(timm.list_models(), pattern)
            if not matched:
                raise SystemExit(f'no model matches {pattern!r}')
            names.extend(matched)
        elif timm.is_model(pattern):
            names.append(pattern)
        else:
            raise SystemExit(f'unknown model {pattern!r}; zoo models: {", ".join(vmamba_zoo.list_models())}')
    return list(dict.fromkeys(names))


def _timed(fn, device, warmup, reps):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        if device.type == 'cuda':
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(name, device, batch, resolution, warmup, reps, amp, train, flops):
    model = timm.create_model(name).to(device)
    row = {'model': name, 'device': device.type, 'batch': batch, 'resolution': resolution,
           'params_m': count_params(model) / 1e6}
    if flops:
        row['gflops'] = count_flops(model.cpu(), (3, resolution, resolution)) / 1e9
        model.to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)
    x = torch.randn(batch, 3, resolution, resolution, device=device)
    x1 = x[:1]
    model.eval()
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    with torch.no_grad(), autocast:
        row['infer_img_s'] = batch / _timed(lambda: model(x), device, warmup, reps)
        row['latency_bs1_ms'] = _timed(lambda: model(x1), device, warmup, reps) * 1e3
    if device.type == 'cuda':
        row['infer_peak_mib'] = torch.cuda.max_memory_allocated() / 2 ** 20
    if train:
        model.train()
        if device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats()

        def step():
            with autocast:
                loss = model(x).float().mean()
            loss.backward()
            model.zero_grad(set_to_none=True)

        row['train_img_s'] = batch / _timed(step, device, max(1, warmup // 2), max(1, reps // 2))
        if device.type == 'cuda':
            row['train_peak_mib'] = torch.cuda.max_memory_allocated() / 2 ** 20
    return row


RATIO_KEYS = ('params_m', 'gflops', 'infer_img_s', 'latency_bs1_ms', 'train_img_s', 'infer_peak_mib',
              'train_peak_mib')


def add_ratios(rows, reference):
    for resolution in {r['resolution'] for r in rows}:
        ref = next((r for r in rows if r['model'] == reference and r['resolution'] == resolution), None)
        if ref is None:
            continue
        for row in rows:
            if row['resolution'] != resolution:
                continue
            for key in RATIO_KEYS:
                if key in row and key in ref and ref[key]:
                    row[f'{key}_x_ref'] = row[key] / ref[key]


def print_table(rows):
    keys = [k for k in ['model', 'resolution', 'params_m', 'gflops', 'infer_img_s', 'latency_bs1_ms',
                        'train_img_s', 'infer_peak_mib', 'train_peak_mib'] if any(k in r for r in rows)]
    ratio_keys = [f'{k}_x_ref' for k in RATIO_KEYS if any(f'{k}_x_ref' in r for r in rows)]
    cols = keys + ratio_keys
    fmt = lambda v: f'{v:.2f}' if isinstance(v, float) else str(v)  # noqa: E731
    widths = [max(len(c), *(len(fmt(r.get(c, ''))) for r in rows)) for c in cols]
    print('  '.join(c.rjust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print('  '.join(fmt(r.get(c, '')).rjust(w) for c, w in zip(cols, widths)))


def plot(rows, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name in dict.fromkeys(r['model'] for r in rows):
        mine = sorted((r for r in rows if r['model'] == name), key=lambda r: r['resolution'])
        if 'gflops' in mine[0]:
            axes[0].scatter([mine[0]['gflops']], [mine[0]['infer_img_s']], label=name)
        axes[1].plot([r['resolution'] for r in mine], [r['infer_img_s'] for r in mine], marker='o', label=name)
    axes[0].set(xlabel='GFLOPs', ylabel='inference img/s', title='throughput vs FLOPs')
    axes[1].set(xlabel='resolution', ylabel='inference img/s', title='throughput vs resolution', yscale='log')
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('models', nargs='+', help='zoo/timm names or globs')
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--batch', type=int, default=None, help='default: 128 on GPU, 8 on CPU')
    ap.add_argument('--resolutions', type=int, nargs='+', default=[224])
    ap.add_argument('--warmup', type=int, default=None)
    ap.add_argument('--reps', type=int, default=None)
    ap.add_argument('--amp', action='store_true', help='bf16 autocast')
    ap.add_argument('--no-train', action='store_true', help='skip the training-step throughput')
    ap.add_argument('--no-flops', action='store_true')
    ap.add_argument('--compare', metavar='REF', help='add ratios to this model (included if not listed)')
    ap.add_argument('--csv')
    ap.add_argument('--json')
    ap.add_argument('--plot', help='PNG with throughput vs FLOPs and vs resolution (needs matplotlib)')
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    gpu = device.type == 'cuda'
    batch = args.batch or (128 if gpu else 8)
    warmup = args.warmup if args.warmup is not None else (10 if gpu else 2)
    reps = args.reps if args.reps is not None else (30 if gpu else 5)
    names = expand_names(args.models + ([args.compare] if args.compare else []))
    rows = []
    for resolution in args.resolutions:
        for name in names:
            try:
                rows.append(measure(name, device, batch, resolution, warmup, reps, args.amp, not args.no_train,
                                    not args.no_flops and resolution == args.resolutions[0]))
            except torch.OutOfMemoryError:
                rows.append({'model': name, 'resolution': resolution, 'batch': batch, 'oom': True})
                torch.cuda.empty_cache()
            print(f'measured {name} @ {resolution}', file=sys.stderr, flush=True)
    if args.compare:
        add_ratios(rows, args.compare)
    print(f'device {device} ({torch.cuda.get_device_name() if gpu else f"{torch.get_num_threads()} threads"}), '
          f'batch {batch}, amp {args.amp}')
    print_table(rows)
    if args.csv:
        fields = list(dict.fromkeys(k for r in rows for k in r))
        with open(args.csv, 'w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    if args.json:
        Path(args.json).write_text(json.dumps({'torch': torch.__version__, 'rows': rows}, indent=2))
    if args.plot:
        plot(rows, args.plot)
    return rows


if __name__ == '__main__':
    main()
