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
	# torch first, pinned; the CPU build comes from pip's configured index (on GitHub the
	# workflow adds PyTorch's CPU index); users elsewhere keep theirs.
	$(PY) -m pip install "torch==2.13.0"
	$(PY) -m pip install -e ".[book,test,fl]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (faimi)"
	touch $(STAMP)

env: $(STAMP)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . --builder html
	@echo "Book built: open $(CURDIR)/_build/html/index.html in a browser"

test: test-unit test-book test-browser

# Includes the slow install tests (marked `install`: clean venvs, a built wheel).
test-unit: $(STAMP)
	$(PY) -m pytest -q

test-book: $(STAMP)
	rm -rf _build
	FAIMI_CACHE_DIR=$(CURDIR)/_build/.faimi-cache $(VENV)/bin/jupyter-book build . --builder html --warningiserror --nitpick --keep-going
	$(PY) -m pytest -q tests/book

# The built book read in headless Chromium (tests/browser, driven by Playwright): a
# browser already there is used ($FAIMI_CHROMIUM, chromium, google-chrome: GitHub's
# runners have Chrome); otherwise Debian's chromium is installed with apt-get, as root
# or through password-less sudo. Elsewhere the browser tests skip and say why; with
# CI=true they fail instead.
.PHONY: chromium
chromium:
	@if [ -n "$$FAIMI_CHROMIUM" ] || [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1 \
		|| command -v google-chrome >/dev/null 2>&1 || command -v google-chrome-stable >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && command -v apt-get >/dev/null 2>&1; then \
		sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	else echo "no Chromium or Chrome, and no root or sudo to install one: the browser tests skip (CI=true: fail); set FAIMI_CHROMIUM to a browser"; fi

test-browser: $(STAMP) chromium
	rm -rf test-artifacts/screenshots
	$(PY) -m pytest -q tests/browser

# After the benchmarks, each chapter's "Estimated run time" is rewritten from
# bench/results/chapters.json (bench/runtimes.py), so no chapter states a time by hand.
bench: $(STAMP)
	$(PY) bench/run_all.py --book
	$(PY) bench/runtimes.py

# Slide decks of the chapters: _build/slides/<chapter>.html (reveal.js, works offline),
# from the executed notebooks of the last `make book` (a chapter without a current
# executed copy is executed first). nbconvert does the conversion.
.PHONY: slides
slides: $(STAMP)
	$(PY) scripts/make_slides.py
	@echo "Slides built: open $(CURDIR)/_build/slides/index.html in a browser"

clean:
	rm -rf _build .pytest_cache
