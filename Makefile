# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both install into .venv first if it is missing or stale.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0

.PHONY: setup demo test test-fast bench lint clean

setup: $(STAMP)

# CPU torch goes in first, pinned, so that nothing later resolves a multi-GB CUDA build.
# The PYTHONWARNINGS filter drops the one note setuptools prints on every editable install (a folder
# named like the package in the working directory may shadow it: here that folder is the package).
$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	PYTHONWARNINGS='ignore:Editable installation' $(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/toolbench demo --out runs/demo

# `make test` runs the whole suite (what CI runs); `make test-fast` the unit tests that no marker
# sets apart (markers in pyproject.toml), for the inner loop. PYTEST_ARGS adds options to either,
# e.g. `make test-fast PYTEST_ARGS="-k score -x"`.
PYTEST_ARGS ?=
test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not (e2e or integration or slow)" $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/generate.py
	$(BIN)/python benchmarks/retrieve.py
	$(BIN)/python benchmarks/eval_throughput.py

# The last line is lint-imports: the layer contracts of docs/ARCHITECTURE.md (pyproject.toml), run on
# the installed layout that the script stages (tests/unit/test_architecture.py runs them in CI too).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python tests/unit/test_architecture.py

clean:
	rm -rf $(VENV) runs build *.egg-info
