#!/usr/bin/env python
"""Static statistics of the selective-scan Triton kernels, compiled for a GPU on a machine without one.

    python tools/kernel_stats.py [--paths plain fused] [--stages 1 3] [--dtypes float32 bfloat16] [--arch 90]

For each (path, VMamba-T stage, dtype) the host code of ``vmamba_zoo.ops.selective_scan.triton`` runs on CPU
tensors (batch 2) with its two kernels replaced by recorders, so the launch arguments, constexprs and warps are
exactly those the code would launch with; each recorded launch is then compiled for ``sm_<arch>`` the way
Triton's launcher specialises it (integer arguments equal to 1 become constants, multiples of 16 and tensors
carry a divisibility-16 hint) and assembled with Triton's own ptxas. Printed per kernel: registers per thread,
spill bytes, layout conversions left in the TTGIR, and SASS counts (all instructions of the kernel, shuffles,
shared-memory loads/stores, barriers, global loads/stores/atomics, MUFU transcendental ops).

What it is for: comparing kernel variants (register pressure sets how many programs fit on an SM; conversions
and shuffles are the scan's overhead) before spending device time. It measures no time. The numbers come from
the local Triton, which may be newer than the device's (model_cards/gpu_kernels.md compares the two).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import torch

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
sys.path.insert(0, REPO)

STAGES = [(96, 3136), (192, 784), (384, 196), (768, 49)]  # (d_inner, L) of VMamba-T at 224x224
K, N, BATCH = 4, 1, 2
_POINTER_TYPES = {torch.float32: 'fp32', torch.bfloat16: 'bf16', torch.float16: 'fp16', torch.int32: 'i32',
                  torch.int64: 'i64'}


class _Recorder:
    """Stands in for a ``@triton.jit`` kernel: ``kernel[grid](*args, **meta)`` records the call."""

    def __init__(self, kernel):
        self.kernel, self.calls = kernel, []

    def __getitem__(self, grid):
        return lambda *args, **meta: self.calls.append((args, meta))


def record_launches(path: str, dim: int, length: int, dtype: torch.dtype):
    """(forward launch, backward launch) of one fwd+bwd call, each (jit function, args, meta)."""
    from vmamba_zoo.ops.selective_scan import triton as kernels
    from vmamba_zoo.scans import get_scan
    fwd, bwd = _Recorder(kernels._fwd_kernel), _Recorder(kernels._bwd_kernel)
    kernels._fwd_kernel, kernels._bwd_kernel = fwd, bwd
    try:
        A = -torch.rand(K * dim, N) - 0.5
        D, bias = torch.ones(K * dim), torch.zeros(K * dim)
        if path == 'fused':
            side = int(round(length ** 0.5))
            x = torch.randn(BATCH, side, side, dim, dtype=dtype).permute(0, 3, 1, 2).requires_grad_()
            delta = torch.randn(K, BATCH, length, dim, dtype=dtype).permute(1, 0, 3, 2).requires_grad_()
            bc = torch.randn(BATCH, length, K, 2 * N, dtype=dtype)
            B = bc[..., :N].permute(0, 2, 3, 1).requires_grad_()
            C = bc[..., N:].permute(0, 2, 3, 1).requires_grad_()
            index = get_scan('cross').index(side, side, 'cpu')
            out = kernels.selective_scan_fused_triton(x, delta, A, B, C, index, D=D, delta_bias=bias,
                                                      delta_softplus=True)
        else:
            u = torch.randn(BATCH, K * dim, length, dtype=dtype).requires_grad_()
            delta = torch.randn(BATCH, K * dim, length, dtype=dtype).requires_grad_()
            B, C = torch.randn(BATCH, K, N, length, dtype=dtype), torch.randn(BATCH, K, N, length, dtype=dtype)
            out = kernels.selective_scan_triton(u, delta, A, B, C, D, None, bias, True)
        out.float().sum().backward()
    finally:
        kernels._fwd_kernel, kernels._bwd_kernel = fwd.kernel, bwd.kernel
    return (fwd.kernel, *fwd.calls[0]), (bwd.kernel, *bwd.calls[0])


def _triton_tool(name: str) -> str:
    import triton
    return os.path.join(os.path.dirname(triton.__file__), 'backends', 'nvidia', 'bin', name)


def tools_available() -> bool:
    return all(os.path.exists(_triton_tool(t)) for t in ('ptxas', 'cuobjdump'))


def compile_stats(kernel, args, meta, arch: int = 90) -> dict:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    meta = dict(meta)
    warps = meta.pop('num_warps', 4)
    signature, constants, attrs = {}, {}, {}
    for i, name in enumerate(kernel.arg_names):
        if name in meta:
            signature[name], constants[name] = 'constexpr', meta[name]
            continue
        value = args[i]
        if isinstance(value, torch.Tensor):
            signature[name] = '*' + _POINTER_TYPES[value.dtype]
            attrs[(i,)] = [['tt.divisibility', 16]]
        elif value == 1:  # Triton's launcher turns integers equal to 1 into constants
            signature[name], constants[name] = 'constexpr', 1
        else:
            signature[name] = 'i32' if abs(int(value)) < 2 ** 31 else 'i64'
            if int(value) % 16 == 0:
                attrs[(i,)] = [['tt.divisibility', 16]]
    compiled = triton.compile(ASTSource(fn=kernel, signature=signature, constexprs=constants, attrs=attrs),
                              target=GPUTarget('cuda', arch, 32), options=dict(num_warps=warps))
    with tempfile.TemporaryDirectory() as tmp:
        ptx, obj = os.path.join(tmp, 'k.ptx'), os.path.join(tmp, 'k.o')
        with open(ptx, 'w') as f:
            f.write(compiled.asm['ptx'])
        suffix = 'a' if arch >= 90 else ''
        assembled = subprocess.run([_triton_tool('ptxas'), f'-arch=sm_{arch}{suffix}', '-v', ptx, '-o', obj],
                                   capture_output=True, text=True, check=True)
        sass = subprocess.run([_triton_tool('cuobjdump'), '-sass', obj], capture_output=True, text=True,
                              check=True).stdout
    opcodes = re.findall(r'/\*[0-9a-f]{4}\*/\s+(?:@!?U?P\w+\s+)?([A-Z0-9_]+)', sass)

    def count(*prefixes):
        return sum(op.startswith(prefixes) for op in opcodes)
    return dict(registers=int(re.search(r'Used (\d+) registers', assembled.stderr).group(1)),
                spill_bytes=int(re.search(r'(\d+) bytes spill stores', assembled.stderr).group(1)),
                layout_conversions=compiled.asm['ttgir'].count('ttg.convert_layout'), warps=warps,
                sass=len(opcodes), shuffles=count('SHFL'), shared_loads=count('LDS'), shared_stores=count('STS'),
                barriers=count('BAR'), global_loads=count('LDG'), global_stores=count('STG'),
                atomics=count('RED', 'ATOM'), mufu=count('MUFU'))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--paths', nargs='+', default=['plain', 'fused'], choices=['plain', 'fused'])
    ap.add_argument('--stages', nargs='+', type=int, default=[1, 2, 3, 4], choices=[1, 2, 3, 4])
    ap.add_argument('--dtypes', nargs='+', default=['float32', 'bfloat16'])
    ap.add_argument('--arch', type=int, default=90, help='compute capability, e.g. 90 for H100 / H200')
    ap.add_argument('--json', help='write the rows here')
    args = ap.parse_args(argv)
    if not tools_available():
        raise SystemExit('kernel_stats: Triton without its bundled ptxas / cuobjdump (triton/backends/nvidia/bin)')
    rows = []
    for path in args.paths:
        for stage in args.stages:
            dim, length = STAGES[stage - 1]
            for name in args.dtypes:
                launches = record_launches(path, dim, length, getattr(torch, name))
                for which, (kernel, kargs, meta) in zip(('fwd', 'bwd'), launches):
                    row = dict(path=path, stage=stage, dim=dim, length=length, dtype=name, kernel=which,
                               **{k: v for k, v in meta.items() if k.isupper()}, **compile_stats(kernel, kargs, meta,
                                                                                                args.arch))
                    rows.append(row)
                    print(f"{path:5s} stage {stage} (L={length:4d}) {name:8s} {which}: {row['registers']} regs, "
                          f"{row['spill_bytes']} B spilled, {row['layout_conversions']} conversions, "
                          f"{row['sass']} SASS ({row['shuffles']} SHFL, {row['shared_loads']} LDS, "
                          f"{row['barriers']} BAR, {row['mufu']} MUFU)", flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1, default=str)
    return rows


if __name__ == '__main__':
    main()
