# exocheck — two commands from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-quick lint bench clean sysdeps browser-sysdeps

# Debian libraries that WeasyPrint (PDF certificates) needs; installed when missing and root.
SYSDEPS := libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core
sysdeps:
	@if ! ldconfig -p | grep -q 'libpango-1.0.so' ; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing $(SYSDEPS)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(SYSDEPS); \
	  else echo "PDF certificates need: $(SYSDEPS) (install them with your package manager)"; fi; \
	fi

# The browser of the web service's end-to-end test (Debian's chromium, driven headless through
# Selenium and chromium-driver; nothing is downloaded at run time); installed when missing and root.
BROWSER_SYSDEPS := chromium chromium-driver
browser-sysdeps:
	@if ! [ -x /usr/bin/chromium ] || ! [ -x /usr/bin/chromedriver ] ; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing $(BROWSER_SYSDEPS)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(BROWSER_SYSDEPS); \
	  else echo "the browser test needs: $(BROWSER_SYSDEPS) (install them with your package manager)"; fi; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Runtime install (demo) and test install are stamped on pyproject.toml so edits re-install.
# After installing, the compiled detection and linking kernels are built once into numba's cache
# (about 10 s), so that no analysis pays for it (a plain `pip install .` does the same while it
# builds the wheel: setup.py).
WARM_KERNELS := $(BIN)/python -c "from exocheck.nta import _kernels; _kernels.build_cache()"
$(VENV)/.runtime-stamp: pyproject.toml setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	$(WARM_KERNELS)
	touch $@

$(VENV)/.test-stamp: pyproject.toml setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(WARM_KERNELS)
	touch $@ $(VENV)/.runtime-stamp

demo: sysdeps $(VENV)/.runtime-stamp
	$(BIN)/exocheck demo --out demo-output

# pytest exits 5 when it collected nothing: that must fail CI, and it does (non-zero exit).
# `make test` (and CI, .ci/run) runs every test.
PYTEST := $(BIN)/python -m pytest -n 2 --dist loadfile -q -p no:cacheprovider
test: sysdeps browser-sysdeps $(VENV)/.test-stamp
	$(BIN)/ruff check src tests benchmarks
	$(PYTEST)

# the quick loop while developing: every test but those marked slow (accuracy runs, fuzzing,
# the trackpy comparison, the full demo); `make test` and CI run them all
test-quick: $(VENV)/.test-stamp
	$(PYTEST) -m "not slow"

lint: $(VENV)/.test-stamp
	$(BIN)/ruff check src tests benchmarks

bench: $(VENV)/.test-stamp
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) demo-output bench-output .pytest_cache .ruff_cache
