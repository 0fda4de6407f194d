# Two entry points that do all set-up on a fresh machine and are safe to re-run.
#   make demo   -> venv, install, `graphlab bench --quick`
#   make test   -> venv, install, ruff + pytest
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.graphlab-installed
TORCH_VERSION ?= 2.13.0

# Offline data mirror laid out like ../shared/data (see its README).
ifneq ($(wildcard ../shared/data),)
export GRAPHLAB_DATA_DIR ?= $(abspath ../shared/data)
endif
# Keep the per-user cache inside the checkout for reproducible, disposable runs.
export GRAPHLAB_CACHE ?= $(abspath .cache/graphlab)
export MPLBACKEND := Agg

.PHONY: demo test install lint clean

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
	$(BIN)/graphlab bench --quick

lint: install
	$(BIN)/ruff check .

test: install
	$(BIN)/ruff check .
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 -q -p no:cacheprovider

clean:
	rm -rf $(VENV) .cache
