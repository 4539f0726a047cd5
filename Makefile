# Two entry points for a new user (see README): `make demo` and `make test`.
# Both build ./.venv on first use; torch is installed first, pinned, before anything else resolves it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?= -n 2

.PHONY: venv demo test bench clean

$(VENV)/.installed: setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e '.[dev,tools]'
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) tools/demo.py

test: venv
	$(PY) -m pytest $(PYTEST_ARGS) tests

bench: venv
	$(PY) tools/bench_cpu.py

clean:
	rm -rf $(VENV) build *.egg-info
