#!/usr/bin/env python
"""GPU benchmark (run on a CUDA machine): selective-scan backends at VMamba-T stage shapes, and model throughput,
with the peers (mamba_ssm, the official VMamba) measured in the same run when they are installed.

    python tools/bench_gpu.py --json bench_results/gpu.json            # everything, one run, ratios side by side
    python tools/bench_gpu.py --section ops --batch 128
    python tools/bench_gpu.py --section models profile --measurements model_cards/measurements/gpu_h200.json

Op level: fwd+bwd (and fwd) time of each selective-scan backend at VMamba-T's four stage shapes (batch 128, K=4,
N=1): ``naive`` (the sequential reference, at the smallest stage only: it takes seconds), ``chunked``,
``triton``, ``cuda`` (kernels/, JIT-built; skipped without a toolchain) and the fused 2D scan (``fused``:
gather on load / scatter-add on store, against ``plain2d`` = scan() + triton + merge() on the same map).
Peers (optional; each one absent is skipped with the reason printed): ``mamba_ssm`` (its ``selective_scan_cuda``
extension, built from the PyPI sdist), ``oflex`` (the official VMamba ``selective_scan_cuda_oflex`` kernel, fp32
output as the official SS2D calls it) and ``oflex2d`` (the official SS2D core: its Triton ``cross_scan_fn`` +
oflex + ``cross_merge_fn`` on a channel-first map, the counterpart of ``fused`` / ``plain2d``). Every backend's
forward output is checked against ``triton``'s on the same inputs (max abs difference in the JSON).
The HBM bound is the bytes that must move -- u, delta, B, C read and out written forward; u, delta, B, C, dout
read and du, ddelta, dB, dC written backward -- over the device-to-device copy bandwidth measured in the same
run; each row prints the time and the % of that bound achieved (bound / time), then the speed ratios of ours
over the peers.
Norms (``--section norms``): the zoo's Triton LayerNorm against ATen's at vmamba_tiny's stage shapes.
Model level: inference img/s in fp32 and bf16 (autocast), batch 128, 50 warm-up + 30 timed passes (the official
repo's protocol), and a training step (fwd+bwd under bf16 autocast, no optimiser step) with peak memory, for
vmamba_tiny on the fused path, the same with ATen's LayerNorm instead of the zoo's Triton kernel
(``VMAMBA_ZOO_LAYER_NORM_BACKEND=torch``), the plain path with ``--with-plain``, the official VMamba-T
(``vmamba_tiny_s1l8`` from ``--official-vmamba``, i.e. MzeroMiko/VMamba ``classification/``, with its oflex
kernel and Triton cross-scan) and timm's convnext_tiny (same FLOPs class; ``--no-convnext`` skips it);
``--ln-min-elements`` adds vmamba_tiny rows at other LayerNorm dispatch thresholds; the ratios ours / official are
printed and stored. Host profile (``--section hostprof``): cProfile of vmamba_tiny's training step, its host time
against its wall time.
Peers are looked up as importable modules (install their wheels, e.g. into a folder on PYTHONPATH) and, for the
official model code, in ``--official-vmamba`` (default ``.peers/VMamba/classification``, an ignored folder).
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
from vmamba_zoo.ops.layer_norm import ENV_BACKEND as ENV_LAYER_NORM, ENV_TRITON_MIN as ENV_LN_MIN  # noqa: E402
from vmamba_zoo.ops.scan2d import ENV_BACKEND as ENV_SCAN2D  # noqa: E402
from vmamba_zoo.scans import get_scan, merge, scan  # noqa: E402

STAGES = [(96, 3136), (192, 784), (384, 196), (768, 49)]  # (d_inner, L) of VMamba-T at 224x224
K, N = 4, 1
REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
PEERS = {}  # name -> loaded module, filled by load_peers(); a missing name means skipped


# ----------------------------------------------------------------------------------------------------- peers
def _stub_fvcore():
    """The official vmamba.py imports fvcore at module level for its flops() helper only; stand in for it when
    fvcore is not installed (calling a stub raises)."""
    try:
        import fvcore.nn  # noqa: F401
        return
    except ImportError:
        pass
    import types

    def unavailable(*args, **kwargs):
        raise RuntimeError('fvcore is not installed (bench_gpu.py stub)')
    pkg, nn_mod = types.ModuleType('fvcore'), types.ModuleType('fvcore.nn')
    for name in ('FlopCountAnalysis', 'flop_count_str', 'flop_count', 'parameter_count'):
        setattr(nn_mod, name, unavailable)
    pkg.nn = nn_mod
    sys.modules['fvcore'], sys.modules['fvcore.nn'] = pkg, nn_mod


def load_peers(official_dir, log):
    """Import the peers that are installed; log why each missing one is skipped. Returns {name: version}."""
    import importlib
    import importlib.metadata
    versions = {}

    def version_of(dist):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return 'unknown'
    try:
        PEERS['mamba_ssm'] = importlib.import_module('selective_scan_cuda')
        versions['mamba_ssm'] = version_of('mamba_ssm')
    except ImportError as exc:
        log(f'peer mamba_ssm skipped: selective_scan_cuda not importable ({exc})')
    try:
        PEERS['oflex'] = importlib.import_module('selective_scan_cuda_oflex')
        versions['oflex'] = version_of('selective_scan')
    except ImportError as exc:
        log(f'peer oflex skipped: selective_scan_cuda_oflex not importable ({exc})')
    official_dir = os.path.abspath(official_dir)
    if not os.path.isfile(os.path.join(official_dir, 'models', 'vmamba.py')):
        log(f'peer official VMamba model skipped: no models/vmamba.py under {official_dir}')
        return versions
    known = sys.modules.get('models')
    if known is not None and not os.path.abspath(getattr(known, '__file__', '') or '').startswith(official_dir):
        log(f"peer official VMamba model skipped: another module named 'models' is loaded ({known})")
        return versions
    _stub_fvcore()
    sys.path.insert(0, official_dir)
    try:
        PEERS['official_csm'] = importlib.import_module('models.csm_triton')
        PEERS['official_vmamba'] = importlib.import_module('models.vmamba')
        commit = os.path.join(official_dir, '..', 'COMMIT')
        versions['official_vmamba'] = open(commit).read().strip() if os.path.isfile(commit) else 'unknown'
    except Exception as exc:  # the official code imports triton, timm, einops: any of them can fail
        log(f'peer official VMamba model skipped: import failed ({type(exc).__name__}: {str(exc)[:200]})')
    return versions


class _MambaSsmScan(torch.autograd.Function):
    """mamba_ssm's selective_scan_cuda.fwd / .bwd (z=None), the calls its selective_scan_fn makes."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, delta_bias):
        out, states, *_ = PEERS['mamba_ssm'].fwd(u, delta, A, B, C, D, None, delta_bias, True)
        ctx.save_for_backward(u, delta, A, B, C, D, delta_bias, states)
        return out

    @staticmethod
    def backward(ctx, dout):
        u, delta, A, B, C, D, delta_bias, states = ctx.saved_tensors
        grads = PEERS['mamba_ssm'].bwd(u, delta, A, B, C, D, None, delta_bias, dout.contiguous(), states, None,
                                       None, True, False)
        return tuple(grads[:7])


class _OflexScan(torch.autograd.Function):
    """The official VMamba oflex kernel (nrows=1, fp32 output), as its SS2D calls it (csms6s.SelectiveScanCuda)."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, delta_bias):
        out, states, *_ = PEERS['oflex'].fwd(u, delta, A, B, C, D, delta_bias, True, 1, True)
        ctx.save_for_backward(u, delta, A, B, C, D, delta_bias, states)
        return out

    @staticmethod
    def backward(ctx, dout):
        u, delta, A, B, C, D, delta_bias, states = ctx.saved_tensors
        grads = PEERS['oflex'].bwd(u, delta, A, B, C, D, delta_bias, dout.contiguous(), states, True, 1)
        return tuple(grads[:7])


def peer_reason(backend):
    """None when the backend can run, else why it is skipped."""
    need = dict(mamba_ssm=['mamba_ssm'], oflex=['oflex'], oflex2d=['oflex', 'official_csm'])
    missing = [name for name in need.get(backend, []) if name not in PEERS]
    return f"peer not installed ({', '.join(missing)})" if missing else None


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


def _scan_runner(backend, inp):
    if backend == 'mamba_ssm':
        return lambda: _MambaSsmScan.apply(*(inp[k] for k in ('u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias')))
    if backend == 'oflex':
        return lambda: _OflexScan.apply(*(inp[k] for k in ('u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias')))
    return lambda: selective_scan(**inp, delta_softplus=True, backend=backend)


def bench_scan_backend(backend, inp, reference=None):
    """(fwd ms, fwd+bwd ms, max |out - reference|) of one backend on one stage's inputs."""
    leaves = [v.requires_grad_() for v in inp.values()]
    run = _scan_runner(backend, inp)
    with torch.no_grad():
        out = run()
    diff = None if reference is None else (out.float() - reference.float()).abs().max().item()
    dout = torch.randn_like(out)
    fast = backend not in ('naive', 'chunked')
    with torch.no_grad():
        fwd = _time(run, fast)
    return fwd, _time(_fwd_bwd_timer(run, leaves, dout), fast), diff


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


def bench_official_2d(batch, dim, length, dtype):
    """The official SS2D scan core on a channel-first (B, D, H, W) map, as its channel_first model calls it:
    Triton cross_scan_fn -> oflex selective scan (fp32 out) -> Triton cross_merge_fn."""
    csm = PEERS['official_csm']
    side = int(round(length ** 0.5))
    g = torch.Generator(device='cuda').manual_seed(0)
    x = _random((batch, dim, side, side), dtype, g)
    delta = _random((batch, K * dim, length), dtype, g, 0.5, -4)
    B_seq, C_seq = _random((batch, K, N, length), dtype, g), _random((batch, K, N, length), dtype, g)
    A = -torch.rand(K * dim, N, device='cuda', generator=g) - 0.5
    D = torch.ones(K * dim, device='cuda')
    bias = torch.randn(K * dim, device='cuda', generator=g) * 0.1
    leaves = [t.requires_grad_() for t in (x, delta, A, B_seq, C_seq, D, bias)]

    def run():
        xs = csm.cross_scan_fn(x, in_channel_first=True, out_channel_first=True, scans=0)
        ys = _OflexScan.apply(xs.view(batch, K * dim, length), delta, A, B_seq, C_seq, D, bias)
        return csm.cross_merge_fn(ys.view(batch, K, dim, side, side), in_channel_first=True, out_channel_first=True,
                                  scans=0)

    with torch.no_grad():
        dout = torch.randn_like(run())
        fwd = _time(run, True)
    return fwd, _time(_fwd_bwd_timer(run, leaves, dout), True)


# ours first, then the peers; each ratio is printed as how many times faster ours is (peer ms / our ms)
OP_RATIOS = [('triton', 'mamba_ssm'), ('triton', 'oflex'), ('cuda', 'mamba_ssm'), ('cuda', 'oflex'), ('cuda', 'triton'),
             ('fused', 'oflex2d'), ('plain2d', 'oflex2d')]
MAP_BACKENDS = ('fused', 'plain2d', 'oflex2d')  # 2D cores on a (B, D, H, W) map rather than (B, K*D, L) sequences


def bench_ops(batch, dtypes, backends, bandwidth, log):
    rows = []
    skipped = {b: peer_reason(b) for b in backends if peer_reason(b)}
    for b, why in skipped.items():
        log(f'{b}: skipped, {why}')
    for dtype in dtypes:
        size = torch.tensor([], dtype=dtype).element_size()
        for dim, length in STAGES:
            n_elem, n_bc = batch * K * dim * length, batch * K * N * length
            fwd_bytes = size * (3 * n_elem + 2 * n_bc)
            bwd_bytes = fwd_bytes + size * (5 * n_elem + 4 * n_bc)
            row = dict(dtype=str(dtype).split('.')[-1], dim=dim, length=length, batch=batch,
                       bound_fwd_ms=fwd_bytes / bandwidth * 1e3, bound_fwdbwd_ms=bwd_bytes / bandwidth * 1e3)
            reference = None
            if any(b not in MAP_BACKENDS and b not in skipped for b in backends):
                try:  # triton's forward on the same inputs: every sequence backend's output is compared to it
                    with torch.no_grad():
                        reference = selective_scan(**stage_inputs(batch, dim, length, dtype), delta_softplus=True,
                                                   backend='triton')
                except Exception as exc:
                    row['reference_error'] = f'{type(exc).__name__}: {str(exc)[:200]}'
            for backend in backends:
                if backend == 'naive' and dim != STAGES[-1][0]:
                    continue  # seconds per call at the larger stages
                if backend in MAP_BACKENDS or backend in skipped:
                    continue
                try:
                    (row[f'{backend}_fwd_ms'], row[f'{backend}_fwdbwd_ms'],
                     row[f'{backend}_max_abs_diff_vs_triton']) = bench_scan_backend(
                        backend, stage_inputs(batch, dim, length, dtype), reference)
                except Exception as exc:  # an unavailable backend (no toolchain) or OOM: record, go on
                    row[f'{backend}_error'] = f'{type(exc).__name__}: {str(exc)[:200]}'
                torch.cuda.empty_cache()
            reference = None
            if 'fused' in backends:
                try:
                    for name, (fwd, fb) in bench_fused_2d(batch, dim, length, dtype).items():
                        row[f'{name}_fwd_ms'], row[f'{name}_fwdbwd_ms'] = fwd, fb
                except Exception as exc:
                    row['fused_error'] = f'{type(exc).__name__}: {str(exc)[:200]}'
                torch.cuda.empty_cache()
            if 'oflex2d' in backends and 'oflex2d' not in skipped:
                try:
                    row['oflex2d_fwd_ms'], row['oflex2d_fwdbwd_ms'] = bench_official_2d(batch, dim, length, dtype)
                except Exception as exc:
                    row['oflex2d_error'] = f'{type(exc).__name__}: {str(exc)[:200]}'
                torch.cuda.empty_cache()
            for ours, peer in OP_RATIOS:
                for kind in ('fwd', 'fwdbwd'):
                    if f'{ours}_{kind}_ms' in row and f'{peer}_{kind}_ms' in row:
                        row[f'speedup_{kind}_{ours}_vs_{peer}'] = row[f'{peer}_{kind}_ms'] / row[f'{ours}_{kind}_ms']
            rows.append(row)
            cells = []
            shown = list(backends) + (['plain2d'] if 'fused' in backends and 'plain2d' not in backends else [])
            for b in shown:
                if f'{b}_fwdbwd_ms' in row:
                    ms = row[f'{b}_fwdbwd_ms']
                    cells.append(f"{b} {row[f'{b}_fwd_ms']:.2f}/{ms:.2f} ({100 * row['bound_fwdbwd_ms'] / ms:.0f}%)")
                elif f'{b}_error' in row:
                    cells.append(f'{b} error')
            log(f"{row['dtype']:8s} D={dim:3d} L={length:4d} bound {row['bound_fwd_ms']:.2f}/"
                f"{row['bound_fwdbwd_ms']:.2f} | " + ' | '.join(cells))
            ratios = [f"{ours}/{peer} {row[f'speedup_fwd_{ours}_vs_{peer}']:.2f}x/"
                      f"{row[f'speedup_fwdbwd_{ours}_vs_{peer}']:.2f}x" for ours, peer in OP_RATIOS
                      if f'speedup_fwdbwd_{ours}_vs_{peer}' in row]
            if ratios:
                log('    speed-up fwd/fwd+bwd: ' + ', '.join(ratios))
            errors = [f"{k[:-6]}: {v}" for k, v in row.items() if k.endswith('_error')]
            for err in errors:
                log(f'    error {err}')
    return rows


# LayerNorm shapes of vmamba_tiny at batch 128, 224x224: (rows, features) of its channels-last norms
NORM_SHAPES = [(56 * 56, 96), (28 * 28, 192), (14 * 14, 384), (7 * 7, 768)]


def bench_norms(batch, bandwidth, log, sweep=False):
    """LayerNorm fwd and fwd+bwd, the zoo's Triton kernel against ATen's (``nn.LayerNorm``'s), at vmamba_tiny's
    stage shapes, in the two cases a model meets: an fp32 residual stream under bf16 autocast (ATen: autocast's
    fp32 LayerNorm, then the consumer's cast to bf16, counted here; ours: bf16 out) and a bf16 model (bf16 in, out
    and weights). HBM bound: x read + y written forward; x, dy read + dx written backward (weights ignored).
    ``sweep``: also every (BLOCK_M, num_warps) launch candidate for the autocast case (VMAMBA_ZOO_LAYER_NORM_BLOCKS).
    """
    from vmamba_zoo.ops.layer_norm import layer_norm
    from vmamba_zoo.ops.layer_norm.triton import ENV_BLOCKS
    rows = []
    for tokens, features in NORM_SHAPES:
        for case, dtype in (('fp32 under bf16 autocast', torch.float32), ('bf16 model', torch.bfloat16)):
            g = torch.Generator(device='cuda').manual_seed(0)
            x = _random((batch, tokens, features), dtype, g, 2.0, 0.5).requires_grad_()
            w = (torch.randn(features, device='cuda', generator=g) * 0.5 + 1).to(dtype).requires_grad_()
            b = (torch.randn(features, device='cuda', generator=g) * 0.1).to(dtype).requires_grad_()
            dy = _random((batch, tokens, features), torch.bfloat16, g)
            row = dict(tokens=tokens, features=features, batch=batch, case=case)
            elems, nbytes_in = x.numel(), x.element_size()
            row['bound_fwd_ms'] = elems * (nbytes_in + 2) / bandwidth * 1e3
            row['bound_fwdbwd_ms'] = row['bound_fwd_ms'] + elems * (2 * nbytes_in + 2) / bandwidth * 1e3

            def aten():
                with torch.autocast('cuda', dtype=torch.bfloat16, enabled=dtype == torch.float32):
                    return torch.nn.functional.layer_norm(x, (features,), w, b, 1e-5).to(torch.bfloat16)

            runs = dict(triton=lambda: layer_norm(x, w, b, 1e-5, out_dtype=torch.bfloat16, backend='triton'),
                        aten=aten)
            with torch.no_grad():
                row['max_abs_diff_triton_vs_aten'] = (runs['triton']().float() - aten().float()).abs().max().item()
            for name, run in runs.items():
                with torch.no_grad():
                    row[f'{name}_fwd_ms'] = _time(run, True)
                row[f'{name}_fwdbwd_ms'] = _time(_fwd_bwd_timer(run, [x, w, b], dy), True)
            if sweep and dtype == torch.float32:
                row['sweep'] = []
                for block_m in (1, 2, 4, 8, 16, 32, 64):
                    for warps in (1, 2, 4, 8):
                        if block_m * triton.next_power_of_2(features) > 16384 or block_m * features < 32 * warps:
                            continue
                        os.environ[ENV_BLOCKS] = f'{block_m},{warps}'
                        try:
                            with torch.no_grad():
                                fwd = _time(runs['triton'], True)
                            fwdbwd = _time(_fwd_bwd_timer(runs['triton'], [x, w, b], dy), True)
                            row['sweep'].append(dict(block_m=block_m, num_warps=warps, fwd_ms=fwd, fwdbwd_ms=fwdbwd))
                        finally:
                            os.environ.pop(ENV_BLOCKS)
                best_fwd = min(row['sweep'], key=lambda r: r['fwd_ms'])
                best_bwd = min(row['sweep'], key=lambda r: r['fwdbwd_ms'] - r['fwd_ms'])
                row['sweep_best'] = dict(fwd=best_fwd, bwd=best_bwd)
            rows.append(row)
            log(f"LN {case:24s} rows {batch * tokens:6d} x {features:3d} | "
                f"bound {row['bound_fwd_ms']:.3f}/{row['bound_fwdbwd_ms']:.3f} | "
                + ' | '.join(f"{n} {row[f'{n}_fwd_ms']:.3f}/{row[f'{n}_fwdbwd_ms']:.3f} "
                             f"({100 * row['bound_fwdbwd_ms'] / row[f'{n}_fwdbwd_ms']:.0f}%)" for n in runs)
                + f" | aten/triton {row['aten_fwd_ms'] / row['triton_fwd_ms']:.2f}x/"
                  f"{row['aten_fwdbwd_ms'] / row['triton_fwdbwd_ms']:.2f}x"
                  f" | max diff {row['max_abs_diff_triton_vs_aten']:.1e}")
            if 'sweep_best' in row:
                bf, bb = row['sweep_best']['fwd'], row['sweep_best']['bwd']
                log(f"    sweep ({len(row['sweep'])} launches): best fwd BLOCK_M {bf['block_m']} warps "
                    f"{bf['num_warps']} {bf['fwd_ms']:.3f} ms; best bwd BLOCK_M {bb['block_m']} warps "
                    f"{bb['num_warps']} {bb['fwdbwd_ms'] - bb['fwd_ms']:.3f} ms")
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


def official_vmamba_tiny():
    """The official VMamba-T (s1l8: dims 96, depths [2, 2, 8, 2], d_state 1, ssm_ratio 1, v05_noz, ln2d, ...) as
    MzeroMiko/VMamba's ``vmamba_tiny_s1l8()`` builds it; it runs its own oflex kernel and Triton cross-scan."""
    module = PEERS['official_vmamba']
    if 'oflex' not in PEERS:
        raise RuntimeError('selective_scan_cuda_oflex is not installed: the official model would fall back to its '
                           'sequential PyTorch scan')
    return module.vmamba_tiny_s1l8()


def _graphed_infer_rate(model, x, bf16, warmup, reps):
    """Inference throughput with the whole forward captured once in a CUDA graph and replayed (no host work per
    pass: how fast the GPU alone runs the model)."""
    def fwd():
        with torch.autocast('cuda', dtype=torch.bfloat16, enabled=bf16, cache_enabled=False):
            model(x)
    with torch.no_grad():
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up (compiles, allocator) off the capture stream, as torch asks
            for _ in range(3):
                fwd()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fwd()
    return x.shape[0] / (_timed_passes(graph.replay, warmup, reps) * 1e-3)


def _graphed_train_rate(model, x, warmup, reps):
    """Training throughput (fwd+bwd under bf16 autocast, no optimiser step) with the model's forward and backward
    captured by ``torch.cuda.make_graphed_callables`` (autocast's cast cache must be off for capture)."""
    with torch.autocast('cuda', dtype=torch.bfloat16, cache_enabled=False):
        graphed = torch.cuda.make_graphed_callables(model, (x,), num_warmup_iters=3)
    step = _amp_train_step(graphed, model, x, cache_enabled=False)
    step()
    return x.shape[0] / (_timed_passes(step, warmup, reps) * 1e-3)


def _amp_train_step(forward, model, x, cache_enabled=True):
    """One timed training step: forward(x) under bf16 autocast, backward of the mean logit, gradients dropped (no
    optimiser step, as the official repo measures)."""
    def step():
        with torch.autocast('cuda', dtype=torch.bfloat16, cache_enabled=cache_enabled):
            loss = forward(x).float().mean()
        loss.backward()
        for p in model.parameters():
            p.grad = None
    return step


def bench_models(specs, batch, warmup, reps, log, cuda_graph=False):
    """specs: (label, timm name, env, builder or None); builder() makes a model that is not in timm (a peer).
    cuda_graph: also the throughputs with the model captured in CUDA graphs (after the eager ones, same model)."""
    import timm
    rows = []
    for label, name, env, build in specs:
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        model = None
        try:
            torch.manual_seed(0)
            model = (build() if build is not None else timm.create_model(name)).cuda()
            x = torch.randn(batch, 3, 224, 224, device='cuda')
            row = dict(model=label, timm_name=name, batch=batch, env=env, peer=build is not None,
                       params_m=sum(p.numel() for p in model.parameters()) / 1e6)
            model.eval()
            with torch.no_grad():
                row['infer_fp32_img_s'] = batch / (_timed_passes(lambda: model(x), warmup, reps) * 1e-3)
                with torch.autocast('cuda', dtype=torch.bfloat16):
                    row['infer_bf16_img_s'] = batch / (_timed_passes(lambda: model(x), warmup, reps) * 1e-3)
            model.train()
            step = _amp_train_step(model, model, x)
            step()
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            row['train_amp_img_s'] = batch / (_timed_passes(step, warmup, reps) * 1e-3)
            row['train_peak_gib'] = torch.cuda.max_memory_allocated() / 2 ** 30
            rows.append(row)
            log(f"{label:34s} infer fp32 {row['infer_fp32_img_s']:7.0f} img/s  bf16 {row['infer_bf16_img_s']:7.0f}"
                f"  train AMP {row['train_amp_img_s']:6.0f} img/s  peak {row['train_peak_gib']:.1f} GiB"
                f"  ({row['params_m']:.2f}M params)")
            if cuda_graph:
                try:
                    model.eval()
                    row['infer_fp32_graph_img_s'] = _graphed_infer_rate(model, x, False, warmup, reps)
                    row['infer_bf16_graph_img_s'] = _graphed_infer_rate(model, x, True, warmup, reps)
                    model.train()
                    row['train_amp_graph_img_s'] = _graphed_train_rate(model, x, warmup, reps)
                    log(f"{label:34s} CUDA graphs: infer fp32 {row['infer_fp32_graph_img_s']:7.0f} img/s  bf16 "
                        f"{row['infer_bf16_graph_img_s']:7.0f}  train AMP {row['train_amp_graph_img_s']:6.0f} img/s")
                except Exception as exc:
                    log(f'{label}: CUDA graph capture failed: {type(exc).__name__}: {str(exc)[:300]}')
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


MODEL_KEYS = ('infer_fp32_img_s', 'infer_bf16_img_s', 'train_amp_img_s')
GRAPH_KEYS = ('infer_fp32_graph_img_s', 'infer_bf16_graph_img_s', 'train_amp_graph_img_s')


def model_ratios(rows, log):
    """Ours / reference for each throughput (and the peak-memory difference), side by side."""
    by_label = {row['model']: row for row in rows}
    ratios = {}
    for ours, ref in (('vmamba_tiny (fused)', 'official vmamba_tiny (oflex + triton)'),
                      ('vmamba_tiny (fused, ATen LayerNorm)', 'official vmamba_tiny (oflex + triton)'),
                      ('vmamba_tiny (plain)', 'official vmamba_tiny (oflex + triton)'),
                      ('vmamba_tiny (fused)', 'convnext_tiny')):
        if ours not in by_label or ref not in by_label:
            continue
        a, b = by_label[ours], by_label[ref]
        entry = {k: a[k] / b[k] for k in MODEL_KEYS + GRAPH_KEYS if k in a and k in b}
        entry['train_peak_gib_diff'] = a['train_peak_gib'] - b['train_peak_gib']
        ratios[f'{ours} / {ref}'] = entry
        log(f"{ours} / {ref}: infer fp32 {entry['infer_fp32_img_s']:.2f}x  bf16 {entry['infer_bf16_img_s']:.2f}x  "
            f"train AMP {entry['train_amp_img_s']:.2f}x  peak {entry['train_peak_gib_diff']:+.1f} GiB")
        if all(k in entry for k in GRAPH_KEYS):
            log(f"  (both in CUDA graphs: infer fp32 {entry['infer_fp32_graph_img_s']:.2f}x  bf16 "
                f"{entry['infer_bf16_graph_img_s']:.2f}x  train AMP {entry['train_amp_graph_img_s']:.2f}x)")
    return ratios


# kernel-name fragments -> cost category, first match wins (for the profile's summary)
PROFILE_CATEGORIES = [
    ('layernorm', ('layer_norm', 'layernorm', 'gammabeta')),  # first: ours is _layer_norm_{fwd,bwd}_kernel
    ('selective scan (oflex / mamba cuda)', ('selective_scan',)),  # before ours: their names end in _fwd_kernel
    ('selective scan (ours, triton)', ('_fwd_kernel', '_bwd_kernel')),
    ('cross scan / merge (official triton)', ('triton_cross_scan',)),
    ('gemm', ('gemm', 'cutlass', 'xmma', 'nvjet', 'cublas', 'wgmma')),
    ('convolution', ('conv', 'depthwise', 'cudnn', 'implicit_')),
    ('copies / layout', ('copy', 'transpose', 'cat', 'index')),
    ('reductions', ('reduce',)),
    ('elementwise', ('elementwise', 'vectorized', 'unrolled', 'triton_')),
]


def _device_ms(event):
    us = getattr(event, 'self_device_time_total', None)
    return (us if us is not None else event.self_cuda_time_total) / 1e3


def profile_model(label, make, batch, log, rows=20):
    """Top CUDA kernels of one AMP training step (torch.profiler) and their sum per category."""
    model = make().cuda()
    x = torch.randn(batch, 3, 224, 224, device='cuda')
    run = _amp_train_step(model, model, x)
    for _ in range(3):
        run()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        run()
        torch.cuda.synchronize()
    averages = prof.key_averages()
    table = averages.table(sort_by='self_cuda_time_total', row_limit=rows, max_name_column_width=60)
    kernels = sorted(((e.key, _device_ms(e), e.count) for e in averages if _device_ms(e) > 0),
                     key=lambda t: -t[1])
    total = sum(ms for _, ms, _ in kernels)
    categories = {}
    for key, ms, _ in kernels:
        low = key.lower()
        cat = next((c for c, frags in PROFILE_CATEGORIES if any(f in low for f in frags)), 'other')
        categories[cat] = categories.get(cat, 0.0) + ms
    summary = ', '.join(f'{c} {ms:.1f} ms ({100 * ms / total:.0f}%)'
                        for c, ms in sorted(categories.items(), key=lambda t: -t[1]))
    log(f'\n{label} train step bf16 autocast, batch {batch}: {total:.1f} ms of CUDA kernels\n  {summary}\n{table}')
    model = None
    torch.cuda.empty_cache()
    return dict(model=label, batch=batch, cuda_ms=total, categories_ms=categories,
                top=[dict(kernel=k, ms=ms, calls=n) for k, ms, n in kernels[:rows]])


def host_profile(make, batch, log, steps=10, rows=35):
    """Where the host (Python / launch) time of an AMP training step goes: cProfile over ``steps`` steps after
    warm-up, next to the step's wall time and its GPU kernel time; a step whose host time exceeds its kernel time
    leaves the GPU idle (launch-bound)."""
    import cProfile
    import io
    import pstats
    model = make().cuda().train()
    x = torch.randn(batch, 3, 224, 224, device='cuda')
    step = _amp_train_step(model, model, x)
    for _ in range(5):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()  # host time: the loop returns when the last launch is queued
    host_ms = (time.perf_counter() - t0) / steps * 1e3
    torch.cuda.synchronize()
    wall_ms = (time.perf_counter() - t0) / steps * 1e3
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats('tottime').print_stats(rows)
    log(f'\nhost profile, AMP training step, batch {batch}: host {host_ms:.1f} ms/step to queue, wall '
        f'{wall_ms:.1f} ms/step; cProfile over {steps} steps (tottime order):\n' + out.getvalue()[-12000:])
    model = None
    torch.cuda.empty_cache()
    return dict(batch=batch, host_ms=host_ms, wall_ms=wall_ms)


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
    ap.add_argument('--section', nargs='+', choices=['ops', 'norms', 'models', 'profile', 'hostprof', 'all'],
                    default=['all'])
    ap.add_argument('--batch', type=int, default=128)
    ap.add_argument('--backends', nargs='+', default=['naive', 'chunked', 'triton', 'cuda', 'fused', 'mamba_ssm',
                                                      'oflex', 'oflex2d'])
    ap.add_argument('--dtypes', nargs='+', default=['float32', 'bfloat16'])
    ap.add_argument('--warmup', type=int, default=50)
    ap.add_argument('--reps', type=int, default=30)
    ap.add_argument('--official-vmamba', default=os.path.join(REPO, '.peers', 'VMamba', 'classification'),
                    help="MzeroMiko/VMamba's classification/ folder (holds models/vmamba.py); skipped when absent")
    ap.add_argument('--no-peers', action='store_true', help='measure the zoo only')
    ap.add_argument('--with-plain', action='store_true', help='also the plain (scan + merge) vmamba_tiny path')
    ap.add_argument('--no-convnext', action='store_true', help='skip the convnext_tiny reference row')
    ap.add_argument('--cuda-graph', action='store_true',
                    help='models: also measure every model captured in CUDA graphs (inference and training step)')
    ap.add_argument('--ln-min-elements', nargs='*', type=int, default=[],
                    help='also vmamba_tiny with these LayerNorm Triton thresholds (VMAMBA_ZOO_LAYER_NORM_TRITON_MIN)')
    ap.add_argument('--norm-sweep', action='store_true', help='also sweep the LayerNorm launch shapes')
    ap.add_argument('--profile-models', nargs='+', choices=['vmamba_tiny', 'official'], default=['vmamba_tiny'])
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
    if args.no_peers:
        log('peers: not loaded (--no-peers)')
    else:
        report['peers'] = load_peers(args.official_vmamba, log)
        log('peers: ' + (', '.join(f'{k} {v}' for k, v in report['peers'].items()) or 'none installed'))

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
    if {'norms', 'all'} & set(args.section):
        log(f'\nLayerNorm fwd/fwd+bwd ms, vmamba_tiny stage shapes, batch {args.batch}; (% of HBM bound)')
        report['norms'] = bench_norms(args.batch, report['copy_bandwidth_gb_s'] * 1e9, log, sweep=args.norm_sweep)
        dump()
    if {'models', 'all'} & set(args.section):
        log(f'\nmodels, batch {args.batch}, 224x224, {args.warmup} warm-up + {args.reps} timed passes')
        specs = [('vmamba_tiny (fused)', 'vmamba_tiny', {}, None),
                 ('vmamba_tiny (fused, ATen LayerNorm)', 'vmamba_tiny', {ENV_LAYER_NORM: 'torch'}, None)]
        for threshold in args.ln_min_elements:  # the LayerNorm dispatch threshold, A/B
            specs.append((f'vmamba_tiny (fused, Triton LayerNorm >= {threshold} elements)', 'vmamba_tiny',
                          {ENV_LN_MIN: str(threshold)}, None))
        if args.with_plain:
            specs.append(('vmamba_tiny (plain)', 'vmamba_tiny', {ENV_SCAN2D: 'plain'}, None))
        if 'official_vmamba' in PEERS:
            specs.append(('official vmamba_tiny (oflex + triton)', 'vmamba_tiny_s1l8', {}, official_vmamba_tiny))
        else:
            log('official vmamba_tiny: skipped, peer not installed')
        if not args.no_convnext:
            specs.append(('convnext_tiny', 'convnext_tiny', {}, None))
        report['models'] = bench_models(specs, args.batch, args.warmup, args.reps, log, cuda_graph=args.cuda_graph)
        report['model_ratios'] = model_ratios(report['models'], log)
        dump()
        if args.measurements:
            summary = {}  # the models as users get them (default dispatch); the plain-path row stays in --json
            for row in report['models']:
                if row['env'] or row['peer']:
                    continue
                summary[row['timm_name']] = {k: round(row[k], 2) for k in (
                    'infer_fp32_img_s', 'infer_bf16_img_s', 'train_amp_img_s', 'train_peak_gib')}
                summary[row['timm_name']].update(device=report['device'], batch=args.batch)
            os.makedirs(os.path.dirname(os.path.abspath(args.measurements)), exist_ok=True)
            with open(args.measurements, 'w') as f:
                json.dump(summary, f, indent=2)
    if {'profile', 'all'} & set(args.section):
        import timm
        report['profile'] = []
        for which in args.profile_models:
            if which == 'official' and 'official_vmamba' not in PEERS:
                log('profile of the official vmamba_tiny: skipped, peer not installed')
                continue
            make = official_vmamba_tiny if which == 'official' else (lambda: timm.create_model('vmamba_tiny'))
            label = 'official vmamba_tiny (oflex + triton)' if which == 'official' else 'vmamba_tiny (fused)'
            try:
                report['profile'].append(profile_model(label, make, args.batch, log))
            except Exception as exc:
                log(f'profile of {label}: failed: {type(exc).__name__}: {str(exc)[:300]}')
    if 'hostprof' in args.section:
        import timm
        report['host_profile'] = host_profile(lambda: timm.create_model('vmamba_tiny'), args.batch, log)
    dump()


if __name__ == '__main__':
    main()
