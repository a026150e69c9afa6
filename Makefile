# exocheck — two commands from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Runtime install (demo) and test install are stamped on pyproject.toml so edits re-install.
$(VENV)/.runtime-stamp: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.test-stamp: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.runtime-stamp

demo: $(VENV)/.runtime-stamp
	$(BIN)/exocheck demo --out demo-output

# pytest exits 5 when it collected nothing: that must fail CI, and it does (non-zero exit).
test: $(VENV)/.test-stamp
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -n 2 -q

lint: $(VENV)/.test-stamp
	$(BIN)/ruff check src tests benchmarks

bench: $(VENV)/.test-stamp
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) demo-output bench-output .pytest_cache .ruff_cache
