"""Selective scan through the zoo's C++ CPU kernels (``kernels/cpu/scan_cpu.cpp``), built on first use.

The fast inference path on CPU. ``chunked.py`` (plain PyTorch) is bounded by the ~15 element-wise passes its
closed form makes over every (batch, K*D, L) block; the C++ kernel makes one: the recurrence runs over 16
channels at a time in SIMD lanes with dt, exp and the output formed in registers (design notes in the source).

Built with ``torch.utils.cpp_extension.load`` (g++ and ninja; -O3 for this machine's instruction set) into
torch's extension cache the first time it is needed, ~30-60 s once per machine; the cache key includes the
host's CPU flags. Never needed to install the package: without a compiler, without the ``kernels/`` folder (a
wheel install) or with ``VMAMBA_ZOO_CPU_KERNEL=0`` the backend reports itself unavailable and the dispatch falls
back to ``chunked``. ``VMAMBA_ZOO_REQUIRE_CPU_KERNEL=1`` turns a failed build into an error (the test suite sets
it so that a broken kernel fails CI instead of silently skipping).

Forward only: with autograd recording (any input requiring grad under grad mode) ``selective_scan_cpu`` runs
``chunked`` instead, so gradients stay exact; the dispatch prefers this backend for inference on CPU.
"""
import functools
import hashlib
import os
import shutil
import warnings
from pathlib import Path

import torch

from .chunked import selective_scan_chunked
from .common import check_inputs

__all__ = ['selective_scan_cpu', 'cpu_backend_available', 'load_cpu_extension', 'CPU_KERNEL_DIR',
           'ENV_CPU_KERNEL', 'ENV_REQUIRE_CPU_KERNEL', 'needs_autograd']

CPU_KERNEL_DIR = Path(__file__).resolve().parents[3] / 'kernels' / 'cpu'
_SOURCE = 'scan_cpu.cpp'
ENV_CPU_KERNEL = 'VMAMBA_ZOO_CPU_KERNEL'
ENV_REQUIRE_CPU_KERNEL = 'VMAMBA_ZOO_REQUIRE_CPU_KERNEL'
_KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _host_tag() -> str:
    """Short hash of the CPU's feature flags: a build with -march=native must not be reused on another CPU."""
    try:
        with open('/proc/cpuinfo') as f:
            flags = next((line for line in f if line.startswith('flags')), '')
    except OSError:
        flags = ''
    import platform
    return hashlib.sha1((platform.machine() + flags).encode()).hexdigest()[:10]


def _ensure_ninja_on_path() -> None:
    """torch's extension builder calls ``ninja`` from PATH; the PyPI ``ninja`` wheel (``[dev]`` extra) puts it in
    the venv's bin directory, which is not on PATH when the venv's python is run without activating it."""
    if shutil.which('ninja') is None:
        try:
            import ninja
            os.environ['PATH'] = ninja.BIN_DIR + os.pathsep + os.environ.get('PATH', '')
        except ImportError:
            pass


def _toolchain_present() -> bool:
    _ensure_ninja_on_path()
    return ((CPU_KERNEL_DIR / _SOURCE).exists() and shutil.which(os.environ.get('CXX', 'c++')) is not None
            and shutil.which('ninja') is not None)


@functools.lru_cache(maxsize=None)
def load_cpu_extension():
    """Build (once per machine, cached by torch) and import the extension; raises RuntimeError when it cannot."""
    if not _toolchain_present():
        raise RuntimeError(f'vmamba_zoo CPU kernels: need a C++ compiler, ninja and {CPU_KERNEL_DIR / _SOURCE}')
    from torch.utils.cpp_extension import load
    build_dir = os.environ.get('VMAMBA_ZOO_KERNEL_BUILD_DIR')
    if build_dir:
        build_dir = os.path.join(build_dir, 'cpu')
        os.makedirs(build_dir, exist_ok=True)
    flags = ['-O3', '-fno-math-errno', '-fopenmp', '-std=c++20']
    import platform
    if platform.machine() in ('x86_64', 'AMD64', 'aarch64', 'arm64'):
        flags.append('-march=native')
    name = f'vmamba_zoo_cpu_scan_{_host_tag()}'
    _announce_first_build(name, build_dir)
    return load(name=name, sources=[str(CPU_KERNEL_DIR / _SOURCE)], extra_cflags=flags, build_directory=build_dir,
                verbose=bool(os.environ.get('VMAMBA_ZOO_KERNEL_VERBOSE')))


def _announce_first_build(name: str, build_dir) -> None:
    """One line on stderr before the first (slow) compile on this machine, so a first forward that takes ~40 s
    is explained; silent when torch's cache already holds the library."""
    try:
        from torch.utils.cpp_extension import _get_build_directory
        folder = build_dir or _get_build_directory(name, verbose=False)
        if os.path.exists(os.path.join(folder, f'{name}.so')):
            return
    except Exception:  # private torch helper: if it moves, just announce
        pass
    import sys
    print(f'vmamba_zoo: compiling the C++ CPU scan kernels ({CPU_KERNEL_DIR / _SOURCE}), once per machine, '
          '~40 s ...', file=sys.stderr, flush=True)


@functools.lru_cache(maxsize=None)
def cpu_backend_available() -> bool:
    """True once the extension is built and imported. A failed build warns once and returns False (or raises
    with VMAMBA_ZOO_REQUIRE_CPU_KERNEL=1); VMAMBA_ZOO_CPU_KERNEL=0 switches the backend off."""
    if os.environ.get(ENV_CPU_KERNEL, '1') == '0':
        return False
    try:
        load_cpu_extension()
        return True
    except Exception as exc:  # a missing toolchain must not break models: the dispatch moves on
        if os.environ.get(ENV_REQUIRE_CPU_KERNEL) == '1':
            raise RuntimeError(f'vmamba_zoo CPU kernels required ({ENV_REQUIRE_CPU_KERNEL}=1) but unavailable: '
                               f'{exc}') from exc
        warnings.warn(f'vmamba_zoo CPU kernels unavailable, using the PyTorch paths: {exc}')
        return False


def needs_autograd(*tensors) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def cpu_accepts(u, delta, A, B, C) -> bool:
    """Dispatch predicate: CPU tensors of a kernel dtype and a kernel that builds. Independent of the grad mode
    (a traced graph must not depend on it): ``selective_scan_cpu`` itself hands recorded calls to ``chunked``."""
    return u.device.type == 'cpu' and u.dtype in _KERNEL_DTYPES and cpu_backend_available()


def _f32(t):
    """fp32 with unit stride along the last (time / pixel) dimension, without a copy when it already is."""
    if t is None:
        return None
    t = t.float()
    return t if t.stride(-1) == 1 else t.contiguous()


def selective_scan_cpu(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False, return_states=False):
    """Same contract and results as ``selective_scan_naive`` (fp32 state; ``return_states`` included)."""
    tensors = (u, delta, A, B, C, D, z, delta_bias)
    if needs_autograd(*tensors) or any(t is not None and t.dtype == torch.float64 for t in tensors):
        return selective_scan_chunked(u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias,
                                      delta_softplus=delta_softplus, return_last_state=return_last_state,
                                      return_states=return_states)
    batch, channels, length, d_state, groups, grouped = check_inputs(u, delta, A, B, C, D, z, delta_bias,
                                                                     return_states=return_states)
    if u.device.type != 'cpu':
        raise ValueError(f"selective_scan (cpu): CPU tensors expected, got {u.device}")
    ext = load_cpu_extension()
    Bg = B if grouped else B.unsqueeze(1)
    Cg = None if C is None else (C if grouped else C.unsqueeze(1))
    result, last = ext.selective_scan_fwd(
        _f32(u), _f32(delta), A.float().contiguous(), _f32(Bg), _f32(Cg),
        None if D is None else D.float().contiguous(), _f32(z),
        None if delta_bias is None else delta_bias.float().contiguous(), bool(delta_softplus), bool(return_states))
    if not return_states:
        result = result.to(u.dtype)
    return (result, last) if return_last_state else result
