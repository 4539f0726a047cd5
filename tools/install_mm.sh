#!/usr/bin/env bash
# Installs the OpenMMLab stack the detection / segmentation wrappers need (vmamba_zoo.mm):
#   mmengine 0.10.x + mmcv 2.1.0 (with ops) + mmdet 3.3.0 + mmsegmentation 1.2.2 (+ ftfy, regex),
# into the environment of PYTHON (default: ./.venv/bin/python), without touching its torch / torchvision /
# numpy / timm (they are pinned through a pip constraints file written from what is installed).
#
# Why a build: PyPI has mmcv 2.1.0 only as an sdist, and mmdet 3.3.0 refuses mmcv >= 2.2.0
# (mmdet/__init__.py: mmcv_maximum_version = '2.2.0'). mmcv 2.1.0's setup.py hard-codes -std=c++17, while the
# headers of torch >= 2.10 need C++20; its setup.py also needs setuptools < 70 (pkg_resources / distutils
# paths), and torch 2.14 itself declares setuptools >= 77. So the wheel is built in a separate build venv that
# sees the target's torch through a .pth file (the wheel must match that torch exactly) but has its own
# setuptools < 70, then cached under $VMAMBA_ZOO_CACHE/wheels/torch-<torch version>-<python tag>/ (default
# ~/.cache/vmamba_zoo): only the first run on a machine pays the ~10 min (2 cores) build.
#
# Usage: tools/install_mm.sh [PYTHON]      (env: VMAMBA_ZOO_CACHE, MAX_JOBS, MMCV_BUILD_ONLY=1 to only build)
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PY="${1:-${PYTHON_MM:-$REPO/.venv/bin/python}}"
MMCV_VERSION=2.1.0
CACHE="${VMAMBA_ZOO_CACHE:-$HOME/.cache/vmamba_zoo}"

die() { echo "install_mm.sh: ERROR: $*" >&2; exit 1; }
log() { echo "install_mm.sh: $*"; }

[ -x "$PY" ] || die "python '$PY' not found (run 'make venv' first, or pass the venv's python as argument)"
"$PY" -c 'import torch' 2>/dev/null || die "torch is not importable with $PY; install the project's torch first (make venv)"

TORCH_VER="$("$PY" -c 'import torch; print(torch.__version__)')"
PY_TAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
WHEEL_DIR="$CACHE/wheels/torch-${TORCH_VER}-${PY_TAG}"
LOG_DIR="$CACHE/logs"
mkdir -p "$WHEEL_DIR" "$LOG_DIR"

# Fast path: everything already importable at the right versions (what every run after the first sees).
if [ -z "${MMCV_BUILD_ONLY:-}" ] && "$PY" - <<'EOF' 2>/dev/null
import importlib.metadata as md
import mmcv, mmcv.ops, mmdet, mmseg, mmengine, ftfy, regex, pkg_resources  # noqa: F401
assert md.version('mmcv') == '2.1.0' and md.version('mmdet') == '3.3.0' and md.version('mmsegmentation') == '1.2.2'
EOF
then
    log "mmcv 2.1.0 (ops), mmdet 3.3.0, mmsegmentation 1.2.2 already installed for torch $TORCH_VER"
    exit 0
fi

build_mmcv() {
    local bvenv="$CACHE/build-venv-${PY_TAG}"
    local base_py src blog
    base_py="$("$PY" -c 'import sys; print(sys._base_executable)')"
    blog="$LOG_DIR/mmcv-${MMCV_VERSION}-torch-${TORCH_VER}-build.log"
    log "building mmcv $MMCV_VERSION with ops for torch $TORCH_VER (one-off, ~10 min on 2 cores; log: $blog)"
    command -v g++ >/dev/null || die "g++ is needed to build mmcv's ops (apt-get install g++)"
    {
        [ -x "$bvenv/bin/python" ] || "$base_py" -m venv "$bvenv"
        "$bvenv/bin/python" -m pip install -q 'setuptools<70' wheel ninja packaging
        # the target's torch / numpy, visible *after* the build venv's own setuptools (a .pth is appended to sys.path)
        "$bvenv/bin/python" - "$SITE" <<'EOF'
import sys, sysconfig, pathlib
pathlib.Path(sysconfig.get_paths()['purelib'], 'zz_target_site.pth').write_text(sys.argv[1] + '\n')
EOF
        "$bvenv/bin/python" -c 'import torch, setuptools; print("build venv: torch", torch.__version__, "setuptools", setuptools.__version__)'
        src="$(mktemp -d)"
        "$bvenv/bin/python" -m pip download -q --no-deps --no-binary :all: --no-build-isolation "mmcv==$MMCV_VERSION" -d "$src"
        tar -xzf "$src/mmcv-$MMCV_VERSION.tar.gz" -C "$src"
        # mmcv 2.1.0 setup.py: extra_compile_args = {'cxx': ['-std=c++14'|'-std=c++17']}; torch >= 2.10 needs C++20
        sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$src/mmcv-$MMCV_VERSION/setup.py"
        grep -q -- '-std=c++20' "$src/mmcv-$MMCV_VERSION/setup.py"
        (cd "$src/mmcv-$MMCV_VERSION" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
            "$bvenv/bin/python" -m pip wheel -v --no-deps --no-build-isolation -w "$WHEEL_DIR.tmp" .)
        mv "$WHEEL_DIR.tmp"/mmcv-*.whl "$WHEEL_DIR"/
        rm -rf "$src" "$WHEEL_DIR.tmp"
    } >"$blog" 2>&1 || { tail -n 40 "$blog" >&2; die "mmcv $MMCV_VERSION build failed for torch $TORCH_VER (full log: $blog)"; }
    log "built $(ls "$WHEEL_DIR"/mmcv-*.whl)"
}

WHEEL="$(ls "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n 1 || true)"
if [ -z "$WHEEL" ]; then
    build_mmcv
    WHEEL="$(ls "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl | head -n 1)"
else
    log "using cached $WHEEL"
fi
[ -n "${MMCV_BUILD_ONLY:-}" ] && exit 0

# Keep what the project pinned: pip may not up/downgrade these while resolving mmcv / mmdet / mmseg.
CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
"$PY" - >"$CONSTRAINTS" <<'EOF'
import importlib.metadata as md
for name in ('torch', 'torchvision', 'numpy', 'timm'):
    try:
        print(f'{name}=={md.version(name)}')
    except md.PackageNotFoundError:
        pass
EOF
log "installing mmcv wheel + .[mm] (constraints: $(tr '\n' ' ' <"$CONSTRAINTS"))"
# mmengine 0.10.7 (the last release) resolves package-scoped configs (`mmdet::...`, used by configs/*/_base_)
# with pkg_resources, which setuptools 82 removed; torch 2.14 needs setuptools >= 77: 77..81 satisfies both.
"$PY" -m pip install -q -c "$CONSTRAINTS" "$WHEEL" -e "$REPO[mm]" 'setuptools>=77,<82' \
    || die "pip install of mmcv/mmdet/mmsegmentation failed"

"$PY" - <<'EOF' || die "the mm stack installed but does not import (see the traceback above)"
import importlib.metadata as md
import torch, mmcv, mmcv.ops, mmengine, mmdet, mmseg
from mmcv.ops import RoIAlign, nms  # compiled ops present
from mmengine.utils import is_installed
assert is_installed('mmdet')  # pkg_resources present: `mmdet::` / `mmseg::` config bases resolve
print('install_mm.sh: OK torch', torch.__version__, '| mmengine', mmengine.__version__, '| mmcv', mmcv.__version__,
      '| mmdet', mmdet.__version__, '| mmseg', mmseg.__version__)
EOF
