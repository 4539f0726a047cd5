"""The CUDA kernels (``kernels/selective_scan``) build with CUDA 12 and CUDA 13 (issue 6), checked on CPU.

``build_extension`` compiles the sources with a given toolkit against the installed torch; the result is imported
through ``VMAMBA_ZOO_CUDA_EXTENSION`` the way a user would, and called once (its input checks run without a GPU).
Toolkits: the machine's own (``torch.utils.cpp_extension.CUDA_HOME``, CUDA 13.0 here) and the CUDA 12.4 compiler
that ``tools/cuda_toolkit.py fetch`` lays out, named by ``VMAMBA_ZOO_CUDA12_HOME``. A missing toolkit skips, unless
``VMAMBA_ZOO_REQUIRE_CUDA12=1`` (``make test`` and CI set it with the fetched CUDA 12.4): then its absence fails.
Running what was built is the GPU tests' part (``tests/ops/test_selective_scan_cuda_gpu.py`` with the variable set).
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vmamba_zoo.ops.selective_scan import cuda as cuda_backend

ENV_CUDA12_HOME = 'VMAMBA_ZOO_CUDA12_HOME'
ENV_REQUIRE_CUDA12 = 'VMAMBA_ZOO_REQUIRE_CUDA12'


def _release(cuda_home) -> str:
    nvcc = Path(cuda_home) / 'bin' / 'nvcc'
    if not nvcc.is_file():
        return ''
    text = subprocess.run([str(nvcc), '--version'], capture_output=True, text=True).stdout
    return text.rsplit('release ', 1)[-1].split(',')[0] if 'release ' in text else ''


def _system_home():
    """torch's CUDA_HOME, or /usr/local/cuda when that is only a wrapper (/usr/local/bin/nvcc here, no libs)."""
    from torch.utils.cpp_extension import CUDA_HOME
    for home in (CUDA_HOME, '/usr/local/cuda'):
        if home and (Path(home) / 'bin' / 'nvcc').exists() and (Path(home) / 'lib64' / 'libcudart.so').exists():
            return home
    return None


@pytest.fixture(params=['system', 'cuda12'])
def toolkit(request):
    if request.param == 'system':
        home = _system_home()
        if torch.version.cuda is None or not home or not _release(home):
            pytest.skip('no CUDA toolkit (nvcc under CUDA_HOME) on this machine')
        return Path(home)
    home = os.environ.get(ENV_CUDA12_HOME)
    if not home or not _release(home).startswith('12.'):
        message = f'{ENV_CUDA12_HOME}={home!r} is not a CUDA 12 toolkit (tools/cuda_toolkit.py fetch makes one)'
        if os.environ.get(ENV_REQUIRE_CUDA12) == '1':
            pytest.fail(message)
        pytest.skip(message)
    return Path(home)


@pytest.fixture
def fresh_loader(monkeypatch):
    cuda_backend.load_extension.cache_clear()
    yield monkeypatch
    cuda_backend.load_extension.cache_clear()


# Run in a fresh interpreter: CPython keeps one single-phase extension module per name and process, so a second
# build imported beside the first would silently be the first.
_IMPORT_AND_CALL = """
import torch
from vmamba_zoo.ops.selective_scan import cuda
module = cuda.load_extension()
stream, empty = torch.zeros(1, 2, 5), torch.zeros(0)
try:
    module.forward(stream, stream, torch.zeros(2, 1), torch.zeros(1, 1, 1, 5), torch.zeros(1, 1, 1, 5),
                   empty, empty, empty, True)
except RuntimeError as exc:
    print('refused:', str(exc).splitlines()[0])
print('file:', module.__spec__.origin)
"""


@pytest.mark.skipif(torch.version.cuda is None, reason='needs a CUDA build of torch (its CUDA libraries to link)')
def test_extension_builds_and_imports(toolkit, tmp_path):
    built = cuda_backend.build_extension(toolkit, tmp_path, archs=['9.0'])
    assert built.is_file() and built.name == 'vmamba_zoo_selective_scan.so'
    env = dict(os.environ, **{cuda_backend.ENV_EXTENSION: str(built)})
    result = subprocess.run([sys.executable, '-c', _IMPORT_AND_CALL], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    # imported the file just built, and its own checks ran: CPU tensors are refused with a clear message
    assert f'file: {built}' in result.stdout, result.stdout
    assert 'refused: u must be a CUDA tensor' in result.stdout, result.stdout
    # the CUDA runtime linked is the toolkit's own (libcudart.so.12 for CUDA 12)
    linked = subprocess.run(['ldd', str(built)], capture_output=True, text=True).stdout
    major = _release(toolkit).split('.')[0]
    assert f'libcudart.so.{major}' in linked, linked


def test_prebuilt_extension_errors_name_the_variable(tmp_path, fresh_loader):
    fresh_loader.setenv(cuda_backend.ENV_EXTENSION, str(tmp_path / 'missing.so'))
    with pytest.raises(RuntimeError, match='VMAMBA_ZOO_CUDA_EXTENSION=.*no such file'):
        cuda_backend.load_extension()
    cuda_backend.load_extension.cache_clear()
    not_an_extension = tmp_path / 'garbage.so'
    not_an_extension.write_bytes(b'not a shared object')
    fresh_loader.setenv(cuda_backend.ENV_EXTENSION, str(not_an_extension))
    with pytest.raises(RuntimeError, match='not an importable vmamba_zoo_selective_scan extension'):
        cuda_backend.load_extension()


def test_build_without_nvcc_is_one_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match='no nvcc at'):
        cuda_backend.build_extension(tmp_path / 'no-toolkit', tmp_path / 'build')


@pytest.mark.skipif(torch.version.cuda is None, reason='needs a CUDA build of torch (its CUDA libraries to link)')
def test_single_state_launch_variants_compile(tmp_path):
    """The VMZ_SINGLE_* macros that tools/tune_cuda_single.py sets build (2-, 4- and 8-byte vectors, 2-warp
    blocks, two dB/dC sum buffers), and an unsupported value stops the build with common.cuh's message rather
    than a wrong kernel."""
    home = _system_home()
    if not home or not _release(home):
        pytest.skip('no CUDA toolkit (nvcc under CUDA_HOME) on this machine')
    built = cuda_backend.build_extension(home, tmp_path / 'variant', archs=['9.0'], jobs=2, defines={
        'VMZ_SINGLE_FWD_ITEMS': 2, 'VMZ_SINGLE_BWD_ITEMS': 4, 'VMZ_SINGLE_ROW_WARPS': 2,
        'VMZ_SINGLE_FWD_MIN_BLOCKS': 4, 'VMZ_SINGLE_BWD_MIN_BLOCKS': 3, 'VMZ_SINGLE_BWD_SUM_BUFFERS': 2})
    assert built.is_file()
    with pytest.raises(RuntimeError, match='backward steps per lane: 2, 4 or 8'):
        cuda_backend.build_extension(home, tmp_path / 'bad', archs=['9.0'], jobs=2,
                                     defines={'VMZ_SINGLE_BWD_ITEMS': 3})
