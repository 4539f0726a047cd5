# Two entry points for a new user (see README): `make demo` and `make test`.
# Both build ./.venv on first use; torch is installed first, pinned, before anything else resolves it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?= -n 2

.PHONY: venv mm cuda12 demo test bench clean

$(VENV)/.installed: setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e '.[dev,tools]'
	touch $@

venv: $(VENV)/.installed

# mmengine + mmcv 2.1.0 (ops, built once per torch version into ~/.cache/vmamba_zoo/wheels) + mmdet + mmseg
$(VENV)/.mm-installed: $(VENV)/.installed tools/install_mm.sh
	bash tools/install_mm.sh $(PY)
	touch $@

mm: $(VENV)/.mm-installed

# a CUDA 12.4 compiler (Debian's nvidia-cuda-toolkit .deb + NVIDIA's PyPI header wheels, ~115 MB once, cached):
# tests/ops/test_selective_scan_cuda_build.py builds kernels/selective_scan with it and with the machine's CUDA
CUDA12_HOME ?= $(HOME)/.cache/vmamba_zoo/cuda-12.4
cuda12: venv
	$(PY) tools/cuda_toolkit.py fetch --dest $(CUDA12_HOME)

demo: venv
	$(PY) tools/demo.py

# VMAMBA_ZOO_REQUIRE_MM=1: tests/mm fail (instead of skipping) if the mm stack does not import;
# VMAMBA_ZOO_REQUIRE_CPU_KERNEL=1: the C++ CPU kernels (kernels/cpu) must build, or their tests fail;
# VMAMBA_ZOO_REQUIRE_CUDA12=1: the CUDA kernels must build with the fetched CUDA 12.4 (CPU-only check)
test: venv mm cuda12
	VMAMBA_ZOO_REQUIRE_MM=1 VMAMBA_ZOO_REQUIRE_CPU_KERNEL=1 VMAMBA_ZOO_CUDA12_HOME=$(CUDA12_HOME) \
	VMAMBA_ZOO_REQUIRE_CUDA12=1 $(PY) -m pytest $(PYTEST_ARGS) tests

bench: venv
	$(PY) tools/bench_cpu.py

clean:
	rm -rf $(VENV) build *.egg-info
