"""Selective scan through the zoo's own CUDA C++ kernels (``kernels/selective_scan``), built on first use.

The sources are compiled with ``torch.utils.cpp_extension.load`` (ninja) the first time this backend runs, for
the GPU in use, into torch's extension cache (or ``VMAMBA_ZOO_KERNEL_BUILD_DIR``). Nothing here is needed to
install the package: without a CUDA toolchain (``nvcc`` under ``CUDA_HOME``) or without the ``kernels/`` folder
(a wheel install) the backend reports itself unavailable and the dispatch never picks it. With one, the dispatch
picks it for fp32 inputs with d_state 1 (measured faster than Triton there, ``model_cards/gpu_kernels.md`` run 23).

``build_extension(cuda_home, build_dir)`` builds the same extension ahead of time with any CUDA toolkit (it calls
that toolkit's nvcc and the host C++ compiler directly, so the toolkit's major version may differ from the one
torch was built with, which ``torch.utils.cpp_extension`` refuses); ``VMAMBA_ZOO_CUDA_EXTENSION=<path of the .so>``
makes the backend import that build instead of compiling one. ``tools/cuda_toolkit.py`` fetches a CUDA 12.4
compiler and drives both (``tests/ops/test_selective_scan_cuda_build.py`` builds with CUDA 12 and 13 on CPU).

Kernel design (see ``kernels/selective_scan/common.cuh``): for d_state > 1 one thread per (batch, channel) row
walking the sequence, warp-sized blocks, coalesced loads and stores through a shared-memory tile, state
checkpoints every 32 steps, the backward recomputing one chunk at a time; d_state <= 64. d_state 1
(``single_state.cu``): a warp (8 lanes for L <= 128) per row, 8 steps per lane forward and 4 backward, the lanes
combined by a segmented shuffle scan, checkpoints every 128 (32) steps, the next iteration's inputs staged in
shared memory with ``cp.async`` when the rows are whole 16-byte vectors (backward; forward for 16-bit inputs).
Same contract and results as ``naive.py``; the returned last state is not differentiable, as in the Triton backend.
"""
import functools
import importlib.util
import os
import subprocess
import sysconfig
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from .common import check_inputs

__all__ = ['selective_scan_cuda', 'cuda_backend_available', 'load_extension', 'build_extension', 'KERNEL_DIR',
           'ENV_EXTENSION', 'EXTENSION_NAME']

KERNEL_DIR = Path(__file__).resolve().parents[3] / 'kernels' / 'selective_scan'
EXTENSION_NAME = 'vmamba_zoo_selective_scan'
ENV_EXTENSION = 'VMAMBA_ZOO_CUDA_EXTENSION'  # path of a prebuilt extension (build_extension) to import
_SOURCES = ('binding.cpp', 'forward.cu', 'backward.cu', 'single_state.cu')
_MAX_D_STATE = 64


def _toolchain_present() -> bool:
    if os.environ.get(ENV_EXTENSION):
        return torch.version.cuda is not None
    from torch.utils.cpp_extension import CUDA_HOME
    return (torch.version.cuda is not None and CUDA_HOME is not None
            and os.path.exists(os.path.join(CUDA_HOME, 'bin', 'nvcc'))
            and all((KERNEL_DIR / name).exists() for name in _SOURCES))


@functools.lru_cache(maxsize=None)
def load_extension():
    """Build (once per machine, cached by torch) and import the extension; raises RuntimeError when it cannot.

    With ``VMAMBA_ZOO_CUDA_EXTENSION`` set, imports that prebuilt file instead (see ``build_extension``)."""
    prebuilt = os.environ.get(ENV_EXTENSION)
    if prebuilt:
        return _import_prebuilt(Path(prebuilt))
    if not _toolchain_present():
        raise RuntimeError('vmamba_zoo CUDA selective scan: needs a CUDA build of torch, nvcc under CUDA_HOME and '
                           f'the sources in {KERNEL_DIR}')
    from torch.utils.cpp_extension import load
    build_dir = os.environ.get('VMAMBA_ZOO_KERNEL_BUILD_DIR')
    if build_dir:
        os.makedirs(build_dir, exist_ok=True)
    return load(name='vmamba_zoo_selective_scan', sources=[str(KERNEL_DIR / name) for name in _SOURCES],
                extra_cflags=['-O3'], extra_cuda_cflags=['-O3', '-lineinfo'], build_directory=build_dir,
                verbose=bool(os.environ.get('VMAMBA_ZOO_KERNEL_VERBOSE')))


def _import_prebuilt(path: Path):
    if not path.is_file():
        raise RuntimeError(f'{ENV_EXTENSION}={path}: no such file (build one with tools/cuda_toolkit.py build)')
    spec = importlib.util.spec_from_file_location(EXTENSION_NAME, path)
    try:
        module = importlib.util.module_from_spec(spec)  # dlopen happens here
        spec.loader.exec_module(module)
    except ImportError as exc:
        raise RuntimeError(f'{ENV_EXTENSION}={path}: not an importable {EXTENSION_NAME} extension ({exc})') from exc
    missing = [name for name in ('forward', 'backward') if not hasattr(module, name)]
    if missing:
        raise RuntimeError(f'{ENV_EXTENSION}={path}: the extension lacks {missing}')
    return module


def _default_archs():
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability()
        return [f'{major}.{minor}']
    return ['9.0']


def _run_compiler(command):
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f'vmamba_zoo CUDA kernel build failed (exit {result.returncode}):\n  {" ".join(command)}\n'
                           f'{(result.stdout + result.stderr)[-4000:]}')


def build_extension(cuda_home, build_dir, archs=None, jobs=3, kernel_dir=None, defines=None) -> Path:
    """Compile ``kernels/selective_scan`` with the toolkit at ``cuda_home`` against the installed torch.

    ``archs``: compute capabilities such as ``['8.0', '9.0']`` (default: the visible GPU's, or 9.0 without one).
    ``kernel_dir`` (default ``kernels/selective_scan``) builds another copy of the sources and ``defines``
    (``{'VMZ_SINGLE_BWD_ITEMS': 4}``) adds ``-D`` macros to the nvcc commands: how ``tools/tune_cuda_single.py``
    builds the variants it times against each other.
    Uses ``cuda_home/bin/nvcc`` for the ``.cu`` files, ``$CXX`` (default ``c++``) for the binding and the link,
    the same defines and nvcc flags as ``torch.utils.cpp_extension`` and links ``cuda_home``'s libcudart (rpath set).
    Returns the path of ``vmamba_zoo_selective_scan.so`` in ``build_dir``; import it with
    ``VMAMBA_ZOO_CUDA_EXTENSION``. Raises RuntimeError with the compiler's output when a step fails.
    """
    from torch.utils import cpp_extension
    cuda_home, build_dir = Path(cuda_home), Path(build_dir)
    kernel_dir = Path(kernel_dir) if kernel_dir is not None else KERNEL_DIR
    nvcc = cuda_home / 'bin' / 'nvcc'
    if not nvcc.is_file():
        raise RuntimeError(f'build_extension: no nvcc at {nvcc}')
    missing = [name for name in _SOURCES if not (kernel_dir / name).exists()]
    if missing:
        raise RuntimeError(f'build_extension: sources {missing} not found in {kernel_dir}')
    bad = [name for name in (defines or {}) if not str(name).isidentifier()]
    if bad:
        raise ValueError(f'build_extension: macro names {bad} are not identifiers')
    macros = [f'-D{name}={value}' for name, value in (defines or {}).items()]
    build_dir.mkdir(parents=True, exist_ok=True)
    cxx = os.environ.get('CXX', 'c++')
    includes = [f'-I{path}' for path in cpp_extension.include_paths()]
    includes += [f'-I{sysconfig.get_paths()["include"]}', f'-I{cuda_home / "include"}']
    torch_defines = [f'-DTORCH_EXTENSION_NAME={EXTENSION_NAME}', '-DTORCH_API_INCLUDE_EXTENSION_H',
                     f'-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}']
    for name in ('COMPILER_TYPE', 'STDLIB', 'BUILD_ABI'):  # pybind11 ABI tags, as cpp_extension passes them
        value = getattr(torch._C, f'_PYBIND11_{name}', None)
        if value is not None:
            torch_defines.append(f'-DPYBIND11_{name}="{value}"')
    std = '-std=c++20'  # torch >= 2.14 headers need C++20; CUDA 12 and 13 nvcc accept it
    gencode = []
    for arch in archs or _default_archs():
        number = str(arch).replace('.', '')
        gencode += ['-gencode', f'arch=compute_{number},code=sm_{number}']
    commands, objects = [], []
    for name in _SOURCES:
        obj = build_dir / (name.rsplit('.', 1)[0] + '.o')
        objects.append(str(obj))
        source = str(kernel_dir / name)
        if name.endswith('.cu'):
            commands.append([str(nvcc), std, '-O3', '-lineinfo', '--compiler-options', '-fPIC', '-ccbin', cxx,
                             *cpp_extension.COMMON_NVCC_FLAGS, *gencode, *torch_defines, *macros, *includes, '-c',
                             source, '-o', str(obj)])
        else:  # the binding reads the launch constants of common.cuh too
            commands.append([cxx, std, '-O3', '-fPIC', *torch_defines, *macros, *includes, '-c', source, '-o',
                             str(obj)])
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(_run_compiler, commands))
    torch_lib = Path(torch.__file__).parent / 'lib'
    lib_dirs = [d for d in (cuda_home / 'lib64', cuda_home / 'lib') if (d / 'libcudart.so').exists()]
    if not lib_dirs:
        raise RuntimeError(f'build_extension: no libcudart.so in {cuda_home}/lib64 or {cuda_home}/lib')
    output = build_dir / f'{EXTENSION_NAME}.so'
    _run_compiler([cxx, '-shared', *objects, '-o', str(output), f'-L{torch_lib}', '-lc10', '-lc10_cuda', '-ltorch',
                   '-ltorch_cpu', '-ltorch_cuda', '-ltorch_python', f'-L{lib_dirs[0]}', '-lcudart',
                   f'-Wl,-rpath,{lib_dirs[0]}', f'-Wl,-rpath,{torch_lib}'])
    return output


@functools.lru_cache(maxsize=None)
def cuda_backend_available() -> bool:
    """True once the extension has been built and imported; a failed build warns once and returns False."""
    if not torch.cuda.is_available() or not _toolchain_present():
        return False
    try:
        load_extension()
        return True
    except Exception as exc:  # a broken toolchain must not break models: the dispatch moves on
        warnings.warn(f'vmamba_zoo CUDA selective scan unavailable, build failed: {exc}')
        return False


def cuda_accepts(u, delta, A, B, C) -> bool:
    return (u.is_cuda and A.shape[1] <= _MAX_D_STATE and u.dtype in (torch.float32, torch.float16, torch.bfloat16)
            and cuda_backend_available())


def _empty(like):
    return like.new_empty((0,))


class _SelectiveScanCuda(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        batch, channels, length, d_state, groups, grouped = check_inputs(u, delta, A, B, C, D, z, delta_bias)
        if d_state > _MAX_D_STATE:
            raise ValueError(f'selective_scan (cuda): d_state <= {_MAX_D_STATE} supported, got {d_state}')
        ext = load_extension()
        Bg, Cg = (B, C) if grouped else (B.unsqueeze(1), C.unsqueeze(1))
        streams = [t.contiguous() for t in (u, delta, Bg.to(u.dtype), Cg.to(u.dtype))]
        z_c = z.to(u.dtype).contiguous() if z is not None else _empty(u)
        A32 = A.float().contiguous()
        D32 = D.float().contiguous() if D is not None else _empty(A32)
        bias32 = delta_bias.float().contiguous() if delta_bias is not None else _empty(A32)
        out, chunk_states, last_state = ext.forward(streams[0], streams[1], A32, streams[2], streams[3], D32, z_c,
                                                    bias32, bool(delta_softplus))
        ctx.save_for_backward(*streams, A32, D32, z_c, bias32, chunk_states)
        ctx.meta = (grouped, bool(delta_softplus), A.dtype, B.dtype, C.dtype,
                    None if D is None else D.dtype, None if z is None else z.dtype,
                    None if delta_bias is None else delta_bias.dtype)
        ctx.mark_non_differentiable(last_state)
        return out, last_state

    @staticmethod
    def backward(ctx, dout, _dlast_state):
        u, delta, Bg, Cg, A32, D32, z_c, bias32, chunk_states = ctx.saved_tensors
        grouped, softplus, A_dtype, B_dtype, C_dtype, D_dtype, z_dtype, bias_dtype = ctx.meta
        du, ddelta, dA, dB, dC, dD, dz, dbias = load_extension().backward(
            u, delta, A32, Bg, Cg, D32, z_c, bias32, softplus, chunk_states, dout.to(u.dtype).contiguous())
        if not grouped:
            dB, dC = dB.squeeze(1), dC.squeeze(1)
        return (du, ddelta, dA.sum(0).to(A_dtype), dB.to(B_dtype), dC.to(C_dtype),
                dD.sum(0).to(D_dtype) if D_dtype is not None else None,
                dz.to(z_dtype) if z_dtype is not None else None,
                dbias.sum(0).to(bias_dtype) if bias_dtype is not None else None, None)


def selective_scan_cuda(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                        return_last_state=False):
    """Same contract and results as ``selective_scan_naive``, for CUDA tensors (d_state <= 64)."""
    tensors = (u, delta, A, B, C, D, z, delta_bias)
    if return_last_state and torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        from .chunked import selective_scan_chunked  # a differentiable last state, as the Triton backend does
        return selective_scan_chunked(*tensors, delta_softplus=delta_softplus, return_last_state=True)
    out, last_state = _SelectiveScanCuda.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    return (out, last_state) if return_last_state else out
