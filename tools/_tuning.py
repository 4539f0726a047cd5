"""Helpers shared by the launch tuners (``tools/tune_fused_gpu.py``, ``tools/tune_plain_gpu.py``): pin a launch
through its environment variable for one call, compare a candidate's results with the baseline's, time a call,
and compile the candidates in parallel subprocesses first (Triton's on-disk cache is shared by them)."""
import os
import subprocess
import sys
import time

import torch


def with_env(name, value, fn):
    """fn() with os.environ[name] set to value (None: unset) for the call; the previous value comes back."""
    old = os.environ.pop(name, None)
    if value is not None:
        os.environ[name] = value
    try:
        return fn()
    finally:
        os.environ.pop(name, None)
        if old is not None:
            os.environ[name] = old


def results(run, leaves, dout):
    """run()'s output and the gradients of every leaf for the upstream gradient dout, as fp32."""
    out = run()
    return [out.detach().float()] + [g.float() for g in torch.autograd.grad(out, leaves, dout)]


def max_rel_error(got, ref):
    """The largest ||a - b|| / ||b|| over the pairs of tensors (fp64)."""
    return max(((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-12)).item()
               for a, b in zip(got, ref))


def bench_ms(fn, warmup, rep, smoke=False):
    """do_bench's median in ms; with smoke (the CPU dry runs) one timed call."""
    if smoke:
        t = time.perf_counter()
        fn()
        return (time.perf_counter() - t) * 1e3
    import triton.testing
    return triton.testing.do_bench(fn, warmup=warmup, rep=rep, return_mode='median')


def precompile(command, jobs, workers):
    """Run ``python *command *share`` for shares of the jobs in up to ``workers`` processes and wait for them."""
    procs = [subprocess.Popen([sys.executable, *command, *jobs[i::workers]])
             for i in range(min(workers, len(jobs)))]
    for p in procs:
        p.wait()
