#!/usr/bin/env python
"""GPU benchmark of VSSD's non-causal SSD op: the ``matmul`` (cuBLAS bmm + elementwise passes) and ``triton``
backends at VSSD-T's stage shapes, side by side (and ``naive`` at the smallest stage).

    python tools/bench_gpu_nc_ssd.py --json bench_results/gpu_nc_ssd.json
    python tools/bench_gpu_nc_ssd.py --dtypes bfloat16 --sweep          # also try other Triton launch configs

Shapes: read from ``vssd_tiny`` itself (built on the meta device): for each NC-SSD stage its nheads, headdim,
d_state, ngroups and L = (224 / reduction)^2, batch 128 by default. Inputs as the model makes them: x, B, C are
the channel-first views the mixer passes (conv output permuted to NHWC, split, reshaped: unit stride along L),
dt = softplus(.) and, for 16-bit runs, x/B/C in that dtype with dt, A, D in fp32 (VSSD under autocast: softplus
is an fp32 autocast op, the parameters stay fp32).

Before timing, every backend's forward output and (for triton) its gradients are compared with ``matmul``'s on
the same inputs (max |diff| / max |matmul|, in the JSON); a backend outside the tolerance is reported and not
timed. Times are ``triton.testing.do_bench`` medians: fwd under no_grad, fwd+bwd = forward + autograd.grad of all
inputs. The HBM bound is the bytes that must move -- x, dt, B, C read and y written forward; additionally dy, x,
dt, B, C read and dx, ddt, dB, dC written backward -- over the device-to-device copy bandwidth measured in the
same run; each row prints ms and the achieved GB/s (bytes / time), then the matmul/triton speed ratios.
fp32 rows also time ``triton_ieee`` (tl.dot in plain fp32 FMA instead of the default 3xTF32, see
``vmamba_zoo/ops/nc_ssd/triton.py``). ``--sweep`` re-times triton under several ``VMAMBA_ZOO_NC_SSD_BLOCKS``
launch configs and reports the best (to retune the defaults in ``triton.py:_config``).
Without a CUDA device it prints one line and exits 0.
"""
import argparse
import datetime
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

# "state_L,out_L,bwd_L,warps" (VMAMBA_ZOO_NC_SSD_BLOCKS)
SWEEP = ['64,64,32,4', '128,64,32,4', '64,128,32,4', '64,64,16,4', '64,64,64,4', '64,64,32,8', '128,128,32,8',
         '32,64,32,4']
TOLERANCE = {'float32': 1e-4, 'bfloat16': 2e-2, 'float16': 5e-3}  # max |diff| / max |matmul|


def vssd_stages(model_name='vssd_tiny', image=224):
    """[(stage, nheads, headdim, d_state, ngroups, L)] of the model's NC-SSD stages, read from its mixers."""
    import timm
    import vmamba_zoo  # noqa: F401  (registers the models)
    from vmamba_zoo.models.vssd import NonCausalSSDMixer
    with torch.device('meta'):
        model = timm.create_model(model_name)
    stages = {}
    for name, module in model.named_modules():
        if isinstance(module, NonCausalSSDMixer):
            stage = int(name.split('.')[1])  # 'stages.{i}.blocks.{j}.mixer'
            side = image // model.feature_info[stage]['reduction']
            stages[stage] = (stage, module.nheads, module.headdim, module.d_state, module.ngroups, side * side)
    return [stages[k] for k in sorted(stages)]


def make_inputs(batch, nheads, headdim, d_state, ngroups, length, dtype, seed=0):
    """The model's layout: x, B, C channel-first views with unit stride along L."""
    g = torch.Generator(device='cuda').manual_seed(seed)
    d_inner, n = nheads * headdim, ngroups * d_state
    xBC = torch.randn(batch, d_inner + 2 * n, length, device='cuda', generator=g)
    xBC[:, d_inner:] *= 0.5  # B, C
    x, B, C = xBC.to(dtype).transpose(1, 2).split([d_inner, n, n], dim=-1)
    small = dtype in (torch.bfloat16, torch.float16)
    dt = torch.nn.functional.softplus(torch.randn(batch, length, nheads, device='cuda', generator=g) - 4)
    return dict(x=x.reshape(batch, length, nheads, headdim), dt=dt if small else dt.to(dtype),
                A=torch.empty(nheads, device='cuda').uniform_(1, 16, generator=g),
                B=B.reshape(batch, length, ngroups, d_state),
                C=C.reshape(batch, length, ngroups, d_state), D=torch.ones(nheads, device='cuda'))


def hbm_bytes(inp):
    size = lambda k: inp[k].numel() * inp[k].element_size()  # noqa: E731
    fwd = size('x') + size('dt') + size('B') + size('C') + size('x')  # + y (x's dtype and shape)
    bwd = fwd + 2 * (size('x') + size('dt') + size('B') + size('C')) + size('x')  # dy, x, dt, B, C; dx, ddt, dB, dC
    return fwd, bwd


def copy_bandwidth():
    import triton.testing
    x = torch.empty(1 << 30, dtype=torch.uint8, device='cuda')  # 1 GiB: far past the H200's L2
    y = torch.empty_like(x)
    ms = triton.testing.do_bench(lambda: y.copy_(x), warmup=25, rep=200, return_mode='median')
    return 2 * x.numel() / (ms * 1e-3)


def _time(fn, fast=True):
    import triton.testing
    return triton.testing.do_bench(fn, warmup=25 if fast else 5, rep=200 if fast else 40, return_mode='median')


def _rel(a, b):
    return ((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-12)).item()


def bench_backend(name, inp, reference, ref_grads, dout, tol):
    """{fwd_ms, fwdbwd_ms, rel_diff[, grad_rel_diff]} of one backend; a mismatch is recorded and not timed."""
    from vmamba_zoo.ops import nc_ssd
    backend = 'triton' if name.startswith('triton') else name
    leaves = {k: v.detach().requires_grad_() for k, v in inp.items()}
    run = lambda: nc_ssd(**leaves, backend=backend)  # noqa: E731
    row = {}
    with torch.no_grad():
        row['rel_diff'] = _rel(run(), reference)
    if ref_grads is not None:
        grads = torch.autograd.grad(run(), list(leaves.values()), dout)
        row['grad_rel_diff'] = {k: _rel(g, r) for k, g, r in zip(leaves, grads, ref_grads)}
    worst = max([row['rel_diff']] + list(row.get('grad_rel_diff', {}).values()))
    if worst > tol:
        row['error'] = f'mismatch vs matmul: {worst:.2e} > {tol:.0e}'
        return row
    fast = name != 'naive'
    with torch.no_grad():
        row['fwd_ms'] = _time(run, fast)
    row['fwdbwd_ms'] = _time(lambda: torch.autograd.grad(run(), list(leaves.values()), dout), fast)
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--batch', type=int, default=128)
    ap.add_argument('--image', type=int, default=224)
    ap.add_argument('--model', default='vssd_tiny')
    ap.add_argument('--dtypes', nargs='+', default=['float32', 'bfloat16'], choices=list(TOLERANCE))
    ap.add_argument('--sweep', action='store_true', help='also time triton under the launch configs in SWEEP')
    ap.add_argument('--json', help='raw results')
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print('bench_gpu_nc_ssd: no CUDA device, nothing measured (run it on a GPU machine)')
        if args.json:
            with open(args.json, 'w') as f:
                json.dump(dict(skipped='no CUDA device'), f)
        return 0
    import triton
    from vmamba_zoo.ops.nc_ssd import nc_ssd
    from vmamba_zoo.ops.nc_ssd.triton import ENV_BLOCKS, ENV_FP32_PRECISION

    lines = []

    def log(msg):
        print(msg, flush=True)
        lines.append(msg)

    report = dict(device=torch.cuda.get_device_name(), torch=torch.__version__, cuda=torch.version.cuda,
                  triton=triton.__version__, batch=args.batch, image=args.image, model=args.model,
                  date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'))
    bandwidth = copy_bandwidth()
    report['copy_bandwidth_gb_s'] = bandwidth / 1e9
    log(f"{report['device']}  torch {report['torch']} (CUDA {report['cuda']})  triton {report['triton']}  "
        f"copy bandwidth {bandwidth / 1e9:.0f} GB/s")
    stages = vssd_stages(args.model, args.image)
    smallest = min(s[-1] for s in stages)
    log(f'\nnc_ssd fwd / fwd+bwd ms ({args.model} NC-SSD stages, batch {args.batch}, {args.image}x{args.image}); '
        '(achieved GB/s = HBM bytes / time)')
    rows = []
    for dtype_name in args.dtypes:
        dtype = getattr(torch, dtype_name)
        for stage, nheads, headdim, d_state, ngroups, length in stages:
            inp = make_inputs(args.batch, nheads, headdim, d_state, ngroups, length, dtype)
            fwd_bytes, bwd_bytes = hbm_bytes(inp)
            row = dict(dtype=dtype_name, stage=stage, nheads=nheads, headdim=headdim, d_state=d_state,
                       ngroups=ngroups, length=length, fwd_bytes=fwd_bytes, fwdbwd_bytes=bwd_bytes,
                       bound_fwd_ms=fwd_bytes / bandwidth * 1e3, bound_fwdbwd_ms=bwd_bytes / bandwidth * 1e3)
            leaves = {k: v.detach().requires_grad_() for k, v in inp.items()}
            reference = nc_ssd(**leaves, backend='matmul')
            dout = torch.randn_like(reference)
            ref_grads = torch.autograd.grad(reference, list(leaves.values()), dout)
            reference = reference.detach()
            names = ['matmul', 'triton'] + (['triton_ieee'] if dtype == torch.float32 else [])
            names += ['naive'] if length == smallest else []
            for name in names:
                saved = os.environ.get(ENV_FP32_PRECISION)
                if name == 'triton_ieee':
                    os.environ[ENV_FP32_PRECISION] = 'ieee'
                try:
                    row[name] = bench_backend(name, inp, reference, ref_grads if name.startswith('triton') else None,
                                              dout, TOLERANCE[dtype_name])
                except Exception as exc:  # OOM (naive) or a kernel failure: record, go on
                    row[name] = dict(error=f'{type(exc).__name__}: {str(exc)[:300]}')
                finally:
                    if name == 'triton_ieee':
                        os.environ.pop(ENV_FP32_PRECISION) if saved is None else os.environ.update(
                            {ENV_FP32_PRECISION: saved})
                torch.cuda.empty_cache()
            if args.sweep:
                row['sweep'] = {}
                for cfg in SWEEP:
                    os.environ[ENV_BLOCKS] = cfg
                    try:
                        row['sweep'][cfg] = bench_backend('triton', inp, reference, None, dout, TOLERANCE[dtype_name])
                    except Exception as exc:
                        row['sweep'][cfg] = dict(error=f'{type(exc).__name__}: {str(exc)[:200]}')
                    finally:
                        del os.environ[ENV_BLOCKS]
            for kind in ('fwd', 'fwdbwd'):
                for other in ('matmul', 'naive'):
                    if f'{kind}_ms' in row.get(other, {}) and f'{kind}_ms' in row['triton']:
                        row[f'speedup_{kind}_triton_vs_{other}'] = (row[other][f'{kind}_ms']
                                                                    / row['triton'][f'{kind}_ms'])
            rows.append(row)
            cells = []
            for name in names:
                r = row[name]
                if 'fwdbwd_ms' in r:
                    cells.append(f"{name} {r['fwd_ms']:.3f}/{r['fwdbwd_ms']:.3f} ms "
                                 f"({fwd_bytes / r['fwd_ms'] / 1e6:.0f}/{bwd_bytes / r['fwdbwd_ms'] / 1e6:.0f} GB/s)")
                else:
                    cells.append(f"{name} error")
            log(f"{dtype_name:8s} stage {stage} H={nheads} P={headdim} N={d_state} G={ngroups} L={length:4d} "
                f"bound {row['bound_fwd_ms']:.3f}/{row['bound_fwdbwd_ms']:.3f} | " + ' | '.join(cells))
            ratios = [f"{k.split('_vs_')[1]}/triton {'fwd' if '_fwd_' in k else 'fwd+bwd'} {v:.2f}x"
                      for k, v in row.items() if k.startswith('speedup_')]
            if ratios:
                log('    speed-up of triton: ' + ', '.join(ratios))
            diffs = ', '.join(f"{n} {row[n]['rel_diff']:.1e}" for n in names if 'rel_diff' in row[n])
            log(f'    max |y - y_matmul| / max |y_matmul|: {diffs}')
            for name in names:
                if 'error' in row[name]:
                    log(f"    error {name}: {row[name]['error']}")
            if args.sweep:
                timed = {c: r for c, r in row['sweep'].items() if 'fwdbwd_ms' in r}
                if timed:
                    best = min(timed, key=lambda c: timed[c]['fwdbwd_ms'])
                    log('    sweep (state_L,out_L,bwd_L,warps: fwd/fwd+bwd ms): ' + ', '.join(
                        f"{c}: {r['fwd_ms']:.3f}/{r['fwdbwd_ms']:.3f}" for c, r in timed.items()) + f'; best {best}')
                for c, r in row['sweep'].items():
                    if 'error' in r:
                        log(f"    sweep {c} error: {r['error']}")
            del inp, leaves, ref_grads, reference, dout
            torch.cuda.empty_cache()
    report['rows'] = rows
    report['log'] = lines
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
