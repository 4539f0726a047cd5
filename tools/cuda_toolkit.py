"""A CUDA 12 compiler for checking (and building) the zoo's CUDA kernels, without root and without NVIDIA's site.

Issue 6 asks that ``kernels/selective_scan`` build on CUDA 12 and 13 alike. Machines here carry CUDA 13.0 only, and
PyPI's ``nvidia-cuda-nvcc-cu12`` wheels hold ptxas, libnvvm and the crt headers but no ``nvcc`` driver, ``cicc`` or
``cudafe++``. Debian's non-free archive has the CUDA 12.4.1 compiler (package ``nvidia-cuda-toolkit``, trixie), so
``fetch`` lays out a relocatable CUDA_HOME from:

* ``nvidia-cuda-toolkit_12.4.131~12.4.1-2_amd64.deb`` (Debian trixie non-free): nvcc, cicc, cudafe++, ptxas,
  fatbinary, bin2c, the link stubs and libdevice;
* PyPI wheels of the same release: ``nvidia-cuda-nvcc-cu12==12.4.131`` (crt headers),
  ``nvidia-cuda-runtime-cu12==12.4.127`` (cuda_runtime.h & co., libcudart.so.12) and
  ``nvidia-cuda-cccl-cu12==12.4.127.post1`` (libcu++ ``nv/target``, which cuda_fp16.h includes; the plain
  12.4.127 upload is yanked as broken);

with an ``nvcc.profile`` of its own (Debian's points into /usr). Every download is checked against the SHA-256
recorded here (the .deb's is the one in Debian's Packages index). About 115 MB of downloads, 130 MB on disk,
cached in ``~/.cache/vmamba_zoo/cuda-12.4`` (``$VMAMBA_ZOO_CACHE``): only the first run pays.

Usage:
  python tools/cuda_toolkit.py fetch [--dest DIR]            # prints the CUDA_HOME it made (or found)
  python tools/cuda_toolkit.py build --cuda-home DIR --out DIR [--arch 9.0 ...]
      # compiles kernels/selective_scan with that toolkit against the installed torch and prints the .so;
      # use it with VMAMBA_ZOO_CUDA_EXTENSION=<that path> (vmamba_zoo/ops/selective_scan/cuda.py)

``make test`` runs ``fetch`` and ``tests/ops/test_selective_scan_cuda_build.py`` builds the extension with this
toolkit and with the machine's own (CUDA 13) on CPU; on a GPU the built file runs the kernel tests
(``VMAMBA_ZOO_CUDA_EXTENSION=... pytest -m gpu tests/ops/test_selective_scan_cuda_gpu.py``).
"""
import argparse
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

VERSION = '12.4'
DEB_URL = ('http://deb.debian.org/debian/pool/non-free/n/nvidia-cuda-toolkit/'
           'nvidia-cuda-toolkit_12.4.131~12.4.1-2_amd64.deb')
DEB_SHA256 = 'cd5fe85aee38d108b315f408a688641478f2402622a10c677478eb7a6c4e5319'
WHEELS = {  # requirement: sha256 of the manylinux2014_x86_64 wheel
    'nvidia-cuda-nvcc-cu12==12.4.131': 'e4c9a35435c3b0e36c6397c5696334c9ea6650e524736cbd1c5d345ea099bb04',
    'nvidia-cuda-runtime-cu12==12.4.127': '64403288fa2136ee8e467cdc9c9427e0434110899d07c779f25b5c068934faa5',
    'nvidia-cuda-cccl-cu12==12.4.127.post1': '2027fa5fc75fbee703bf24e8275a40a605cf94a3e8fef8a7187897d49b34facb',
}
# members of the .deb's data.tar.xz -> place in the CUDA_HOME
DEB_MEMBERS = {
    './usr/lib/nvidia-cuda-toolkit/bin/nvcc': 'bin/nvcc',
    './usr/bin/cudafe++': 'bin/cudafe++',
    './usr/bin/ptxas': 'bin/ptxas',
    './usr/bin/fatbinary': 'bin/fatbinary',
    './usr/bin/bin2c': 'bin/bin2c',
    './usr/lib/nvidia-cuda-toolkit/bin/crt/link.stub': 'bin/crt/link.stub',
    './usr/lib/nvidia-cuda-toolkit/bin/crt/prelink.stub': 'bin/crt/prelink.stub',
    './usr/lib/nvidia-cuda-toolkit/bin/cicc': 'nvvm/bin/cicc',
    './usr/lib/nvidia-cuda-toolkit/libdevice/libdevice.10.bc': 'nvvm/libdevice/libdevice.10.bc',
}
# nvcc reads this beside itself: _HERE_ is bin/, so the layout is the usual CUDA_HOME one
NVCC_PROFILE = """TOP = $(_HERE_)/..
NVVMIR_LIBRARY_DIR = $(TOP)/nvvm/libdevice
LD_LIBRARY_PATH += $(TOP)/lib64:
PATH += $(TOP)/nvvm/bin:$(_HERE_):
INCLUDES += "-I$(TOP)/include" $(_SPACE_)
LIBRARIES =+ $(_SPACE_) "-L$(TOP)/lib64"
CUDAFE_FLAGS +=
PTXAS_FLAGS +=
"""


def default_dest() -> Path:
    cache = Path(os.environ.get('VMAMBA_ZOO_CACHE', Path.home() / '.cache' / 'vmamba_zoo'))
    return cache / f'cuda-{VERSION}'


def nvcc_release(cuda_home) -> str:
    """'12.4' from ``nvcc --version`` of that toolkit, or '' when it does not run."""
    nvcc = Path(cuda_home) / 'bin' / 'nvcc'
    if not nvcc.is_file():
        return ''
    try:
        text = subprocess.run([str(nvcc), '--version'], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ''
    for word in text.replace(',', ' ').split():
        if word.startswith('V') and word[1:2].isdigit():
            return '.'.join(word[1:].split('.')[:2])
    return ''


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download_deb() -> bytes:
    with urllib.request.urlopen(DEB_URL, timeout=600) as response:
        data = response.read()
    if _sha256(data) != DEB_SHA256:
        raise RuntimeError(f'{DEB_URL}: SHA-256 {_sha256(data)} is not the recorded {DEB_SHA256}')
    return data


def _deb_data_tar(deb: bytes) -> tarfile.TarFile:
    """The data.tar.* member of a Debian package (an ar archive)."""
    if not deb.startswith(b'!<arch>\n'):
        raise RuntimeError('not a Debian package (no ar header)')
    offset = 8
    while offset + 60 <= len(deb):
        header = deb[offset:offset + 60]
        name = header[:16].decode().strip().rstrip('/')
        size = int(header[48:58].decode().strip())
        body = deb[offset + 60:offset + 60 + size]
        if name.startswith('data.tar'):
            return tarfile.open(fileobj=io.BytesIO(body), mode='r:*')
        offset += 60 + size + (size & 1)
    raise RuntimeError('Debian package without data.tar')


def _download_wheels(directory: Path):
    requirements = directory / 'requirements.txt'
    requirements.write_text(''.join(f'{req} --hash=sha256:{sha}\n' for req, sha in WHEELS.items()))
    subprocess.run([sys.executable, '-m', 'pip', 'download', '-q', '--no-deps', '--require-hashes',
                    '--only-binary', ':all:', '--platform', 'manylinux2014_x86_64', '-r', str(requirements),
                    '-d', str(directory)], check=True)
    return sorted(directory.glob('*.whl'))


def fetch(dest: Path) -> Path:
    """Make (or find) the CUDA 12.4 CUDA_HOME at ``dest``; returns it."""
    if nvcc_release(dest) == VERSION:
        return dest
    if os.uname().machine != 'x86_64':
        raise RuntimeError('tools/cuda_toolkit.py fetch: the Debian package and wheels are x86_64 only')
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        staging = Path(tmp) / 'home'
        data = _deb_data_tar(_download_deb())
        found = set()
        for member in data.getmembers():
            target = DEB_MEMBERS.get(member.name)
            if target is None or not member.isfile():
                continue
            out = staging / target
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data.extractfile(member).read())
            out.chmod(0o755)
            found.add(member.name)
        if found != set(DEB_MEMBERS):
            raise RuntimeError(f'{DEB_URL}: members {sorted(set(DEB_MEMBERS) - found)} missing')
        wheel_dir = Path(tmp) / 'wheels'
        wheel_dir.mkdir()
        for wheel in _download_wheels(wheel_dir):
            with zipfile.ZipFile(wheel) as archive:
                for name in archive.namelist():
                    parts = name.split('/')  # nvidia/<package>/include/... or nvidia/cuda_runtime/lib/...
                    if len(parts) < 4 or parts[0] != 'nvidia' or parts[-1] == '__init__.py':
                        continue
                    if parts[2] == 'include':
                        out = staging / 'include' / '/'.join(parts[3:])
                    elif parts[1] == 'cuda_runtime' and parts[2] == 'lib' and parts[3].startswith('libcudart.so'):
                        out = staging / 'lib64' / parts[3]
                    else:
                        continue
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(archive.read(name))
        if not (staging / 'lib64' / 'libcudart.so.12').exists() or not (staging / 'include' / 'nv' / 'target').exists():
            raise RuntimeError('the CUDA 12.4 wheels lack libcudart.so.12 or nv/target')
        (staging / 'lib64' / 'libcudart.so').symlink_to('libcudart.so.12')
        (staging / 'bin' / 'nvcc.profile').write_text(NVCC_PROFILE)
        if nvcc_release(staging) != VERSION:
            raise RuntimeError(f'the assembled toolkit in {staging} does not report nvcc {VERSION}')
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    return dest


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    commands = parser.add_subparsers(dest='command', required=True)
    fetch_cmd = commands.add_parser('fetch', help='make (or find) the CUDA 12.4 compiler; prints its CUDA_HOME')
    fetch_cmd.add_argument('--dest', type=Path, default=None, help='default: ~/.cache/vmamba_zoo/cuda-12.4')
    build_cmd = commands.add_parser('build', help='build kernels/selective_scan with a toolkit; prints the .so')
    build_cmd.add_argument('--cuda-home', type=Path, required=True)
    build_cmd.add_argument('--out', type=Path, required=True, help='build directory')
    build_cmd.add_argument('--arch', nargs='+', default=None, help='compute capabilities, e.g. 8.0 9.0')
    args = parser.parse_args(argv)
    if args.command == 'fetch':
        print(fetch(args.dest or default_dest()))
    else:
        from vmamba_zoo.ops.selective_scan.cuda import build_extension
        print(build_extension(args.cuda_home, args.out, archs=args.arch))


if __name__ == '__main__':
    main()
