# Entry points that do all set-up on a fresh machine and are safe to re-run.
#   make demo       -> venv, install, the benchmark harness's quick tasks (python -m benchmarks --quick)
#   make test       -> venv, install, ruff + the whole test suite (what CI runs)
#   make test-fast  -> the same without the tests marked `slow` (compile, gradcheck, end-to-end)
#   make docs       -> the API reference from the docstrings (Sphinx, warnings are errors)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.graphlab-installed
TORCH_VERSION ?= 2.13.0
PYTEST := OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 -q -p no:cacheprovider

# Offline data mirror laid out like ../shared/data (see its README).
ifneq ($(wildcard ../shared/data),)
export GRAPHLAB_DATA_DIR ?= $(abspath ../shared/data)
endif
# Keep the per-user cache inside the checkout for reproducible, disposable runs.
export GRAPHLAB_CACHE ?= $(abspath .cache/graphlab)
export MPLBACKEND := Agg

.PHONY: demo test test-fast docs install lint wheel clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, pinned, so that nothing later pulls a multi-GB CUDA build.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python -m benchmarks --quick

lint: install
	$(BIN)/ruff check .

test: install
	$(BIN)/ruff check .
	$(PYTEST)

test-fast: install
	$(BIN)/ruff check .
	$(PYTEST) -m "not slow"

docs: install
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

# The distribution a user installs (only the graphlab package; see tests/test_packaging.py).
wheel: install
	$(BIN)/python -m pip wheel --no-deps --no-build-isolation -q -w dist .

clean:
	rm -rf $(VENV) .cache build dist
