#!/usr/bin/env python
"""Compare models: params, GFLOPs, inference / training throughput, peak memory and batch-1 latency.

    python tools/benchmark.py vmamba_tiny convnext_tiny                     # CPU or GPU, whatever is there
    python tools/benchmark.py 'vmamba_*' 'vim_*' --compare convnext_tiny --csv out.csv --json out.json
    python tools/benchmark.py vim_tiny_patch16_224 deit_tiny_patch16_224 --resolutions 224 512 1024 \\
        --plot curves.png                                                    # Vim-style resolution curve

Names are zoo or timm names; shell-style globs expand over the zoo's models (``vmamba_zoo.list_models``), or
over timm's when no zoo model matches (``'convnext_*'``). Throughput = images / second of ``--batch`` images
(median of ``--reps`` timed runs after warm-up; CUDA timed with events, bf16 autocast by default there); training =
forward + backward (no optimiser step) as the official repos measure it; latency = one image. Peak memory is
CUDA's ``max_memory_allocated`` (not measured on CPU). ViT-like models are rebuilt for each resolution
(``img_size``). FLOPs are fvcore MACs with the zoo's handles (``vmamba_zoo.flops.count_flops``), the papers'
convention, at the first resolution. ``--compare REF`` adds each number as a ratio to model REF (measured side by
side, same process). ``--json`` stores the rows with the environment (date, device, CPU/GPU name, versions);
``tools/make_model_cards.py`` reads such files.
"""
import argparse
import csv
import datetime
import fnmatch
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import timm  # noqa: E402
import vmamba_zoo  # noqa: E402
from vmamba_zoo.benchmark import time_call  # noqa: E402
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
    """Median seconds of ``fn()``: CUDA events on GPU, ``vmamba_zoo.benchmark.time_call`` on CPU."""
    if device.type != 'cuda':
        return time_call(fn, warmup=warmup, reps=reps)['median']
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def create(name, resolution):
    """The model for ``resolution``: ViT-like models (fixed position embeddings) are built for it (``img_size``),
    as the Vim paper's high-resolution curves do; models without an ``img_size`` argument run at any size."""
    if resolution != 224:
        try:
            return timm.create_model(name, img_size=resolution)
        except TypeError:  # the entrypoint / class takes no img_size: resolution-agnostic
            pass
    return timm.create_model(name)


def measure(name, device, batch, resolution, warmup, reps, amp, train, flops, timing=True):
    model = create(name, resolution)
    row = {'model': name, 'device': device.type, 'batch': batch, 'resolution': resolution,
           'params_m': count_params(model) / 1e6}
    if flops:
        row['gflops'] = count_flops(model, (3, resolution, resolution)) / 1e9
    if not timing:
        return row
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
                        'train_img_s', 'infer_peak_mib', 'train_peak_mib', 'oom', 'error'] if any(k in r for r in rows)]
    ratio_keys = [f'{k}_x_ref' for k in RATIO_KEYS if any(f'{k}_x_ref' in r for r in rows)]
    cols = keys + ratio_keys
    fmt = lambda v: f'{v:.2f}' if isinstance(v, float) else str(v)  # noqa: E731
    widths = [max(len(c), *(len(fmt(r.get(c, ''))) for r in rows)) for c in cols]
    print('  '.join(c.rjust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print('  '.join(fmt(r.get(c, '')).rjust(w) for c, w in zip(cols, widths)))


def plot(rows, path):
    """Throughput vs FLOPs (first resolution), throughput vs resolution and, where measured (CUDA), peak memory vs
    resolution: the Vim paper's high-resolution speed / memory curves."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = [r for r in rows if 'infer_img_s' in r]
    memory = any('infer_peak_mib' in r for r in rows)
    fig, axes = plt.subplots(1, 3 if memory else 2, figsize=(16 if memory else 11, 4))
    for name in dict.fromkeys(r['model'] for r in rows):
        mine = sorted((r for r in rows if r['model'] == name), key=lambda r: r['resolution'])
        if 'gflops' in mine[0]:
            axes[0].scatter([mine[0]['gflops']], [mine[0]['infer_img_s']], label=name)
        axes[1].plot([r['resolution'] for r in mine], [r['infer_img_s'] for r in mine], marker='o', label=name)
        if memory:
            axes[2].plot([r['resolution'] for r in mine], [r.get('infer_peak_mib') for r in mine], marker='o',
                         label=name)
    axes[0].set(xlabel='GFLOPs', ylabel='inference img/s', title='throughput vs FLOPs')
    axes[1].set(xlabel='resolution', ylabel='inference img/s', title='throughput vs resolution', yscale='log')
    if memory:
        axes[2].set(xlabel='resolution', ylabel='peak memory (MiB)', title='inference memory vs resolution',
                    yscale='log')
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def environment(device, batch, amp, warmup, reps, note=None):
    """Where and when the numbers were measured (stored with them; model cards quote it)."""
    env = {'date_utc': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
           'load_avg_1m': round(os.getloadavg()[0], 1) if hasattr(os, 'getloadavg') else None,
           'device': device.type, 'torch': torch.__version__, 'timm': timm.__version__,
           'vmamba_zoo': vmamba_zoo.__version__, 'python': platform.python_version(), 'batch': batch, 'amp': amp,
           'warmup': warmup, 'reps': reps, 'threads': torch.get_num_threads(), 'cpu': _cpu_name()}
    if device.type == 'cuda':
        env['gpu'] = torch.cuda.get_device_name(device)
    if note:
        env['note'] = note
    return env


def _cpu_name():
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_json(path, env, rows):
    tmp = Path(f'{path}.tmp')
    tmp.write_text(json.dumps({'environment': env, 'rows': rows}, indent=1) + '\n')
    tmp.replace(path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('models', nargs='+', help='zoo/timm names or globs')
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--batch', type=int, default=None, help='default: 128 on GPU, 8 on CPU')
    ap.add_argument('--resolutions', type=int, nargs='+', default=[224])
    ap.add_argument('--warmup', type=int, default=None)
    ap.add_argument('--reps', type=int, default=None)
    ap.add_argument('--amp', action=argparse.BooleanOptionalAction, default=None,
                    help='bf16 autocast (default: on for CUDA, off on CPU)')
    ap.add_argument('--no-train', action='store_true', help='skip the training-step throughput')
    ap.add_argument('--no-flops', action='store_true')
    ap.add_argument('--no-timing', action='store_true', help='params and FLOPs only')
    ap.add_argument('--keep-going', action='store_true', help='record a failing model as an error row, go on')
    ap.add_argument('--compare', metavar='REF', help='add ratios to this model (included if not listed)')
    ap.add_argument('--csv')
    ap.add_argument('--json', help='rows plus the environment (date, device, versions); tools/make_model_cards.py '
                                   'reads it')
    ap.add_argument('--note', help='free text stored with the results (e.g. what else ran on the machine)')
    ap.add_argument('--plot', help='PNG with throughput vs FLOPs and vs resolution (needs matplotlib)')
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    gpu = device.type == 'cuda'
    amp = gpu if args.amp is None else args.amp
    batch = args.batch or (128 if gpu else 8)
    warmup = args.warmup if args.warmup is not None else (10 if gpu else 2)
    reps = args.reps if args.reps is not None else (30 if gpu else 5)
    names = expand_names(args.models + ([args.compare] if args.compare else []))
    rows = []
    for resolution in args.resolutions:
        for name in names:
            try:
                rows.append(measure(name, device, batch, resolution, warmup, reps, amp, not args.no_train,
                                    not args.no_flops and resolution == args.resolutions[0], not args.no_timing))
            except torch.OutOfMemoryError:
                rows.append({'model': name, 'device': device.type, 'resolution': resolution, 'batch': batch,
                             'oom': True})
                torch.cuda.empty_cache()
            except Exception as err:  # one broken model must not lose the others' numbers
                if not args.keep_going:
                    raise
                rows.append({'model': name, 'device': device.type, 'resolution': resolution, 'batch': batch,
                             'error': f'{type(err).__name__}: {err}'.splitlines()[0][:300]})
            print(f'measured {name} @ {resolution}', file=sys.stderr, flush=True)
            if args.json:  # after every model: a long run that is stopped keeps what it measured
                write_json(args.json, environment(device, batch, amp, warmup, reps, args.note), rows)
    if args.compare:
        add_ratios(rows, args.compare)
    env = environment(device, batch, amp, warmup, reps, args.note)
    print(f"device {device} ({env.get('gpu') or env['cpu']}, {env['threads']} threads), batch {batch}, amp {amp}")
    print_table(rows)
    if args.csv:
        fields = list(dict.fromkeys(k for r in rows for k in r))
        with open(args.csv, 'w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    if args.json:
        write_json(args.json, env, rows)
    if args.plot:
        plot(rows, args.plot)
    return rows


if __name__ == '__main__':
    main()
