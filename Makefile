# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned: an unpinned torch pulls a multi-GB CUDA build.
TORCH := torch==2.13.0
THREADS ?= 2

.PHONY: venv demo test lint bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

demo: venv
	OMP_NUM_THREADS=$(THREADS) $(BIN)/seisfno reproduce --preset quick --small --out runs/demo

test: venv
	OMP_NUM_THREADS=$(THREADS) $(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check src tests benchmarks

bench: venv
	OMP_NUM_THREADS=$(THREADS) $(BIN)/python benchmarks/solver_cpu.py

clean:
	rm -rf $(VENV) runs .pytest_cache
