# Two commands do all the set-up on a fresh machine with Python 3.11 and make:
#   make book   -> executes every chapter and builds the HTML book into _build/html
#   make test   -> runs the package tests and the strict book build (every chapter executed)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Limit BLAS threads so chapters behave the same on a laptop and on a 2-core CI machine.
export OMP_NUM_THREADS ?= 2
export MKL_NUM_THREADS ?= 2
export OPENBLAS_NUM_THREADS ?= 2
export FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION = 1
export PYDEVD_DISABLE_FILE_VALIDATION = 1

.PHONY: help env book test test-unit test-book test-browser bench clean

help:
	@echo "make book   build the executed HTML book into _build/html"
	@echo "make test   run the package tests and the strict executed book build"
	@echo "make bench  run the benchmarks in bench/ (bench/results/summary.json and a table)"

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# torch first, pinned to the CPU build that installs quickly; users elsewhere keep theirs.
	$(PY) -m pip install "torch==2.13.0"
	$(PY) -m pip install -e ".[book,test,fl]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (faimi)"
	touch $(STAMP)

env: $(STAMP)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . --builder html
	@echo "Book built: open $(CURDIR)/_build/html/index.html in a browser"

test: test-unit test-book test-browser

test-unit: $(STAMP)
	$(PY) -m pytest -q

test-book: $(STAMP)
	rm -rf _build
	FAIMI_CACHE_DIR=$(CURDIR)/_build/.faimi-cache $(VENV)/bin/jupyter-book build . --builder html --warningiserror --nitpick --keep-going
	$(PY) -m pytest -q tests/book

# The built book read in headless Chromium (tests/browser): Debian's chromium and
# chromium-driver, installed here when missing and when running as root (CI machines).
# Elsewhere the browser tests skip and say why; with CI=true they fail instead.
.PHONY: chromium
chromium:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; \
	else echo "chromium is not installed and this is not root: the browser tests use FAIMI_CHROMIUM or google-chrome if there, else skip (CI=true: fail)"; fi

test-browser: $(STAMP) chromium
	rm -rf test-artifacts/screenshots
	$(PY) -m pytest -q tests/browser

bench: $(STAMP)
	$(PY) bench/run_all.py --book

clean:
	rm -rf _build .pytest_cache
