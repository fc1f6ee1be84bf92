# The two commands: `make run` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run collab-editor test test-e2e chromium lint typecheck unit docs bench clean console-bundle

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,docs]'
	touch $(STAMP)

# `make run PORT=4412 HOME_DIR=.orbitstore-run2` in a second terminal starts a second
# node that joins the first (running in .orbitstore-run) and replicates with it. PEER=
# <a "dial:" address> dials a node elsewhere instead.
PORT ?= 4402
HOME_DIR ?= .orbitstore-run
FIRST := .orbitstore-run
PEER ?=

run: $(STAMP)
	$(PY) -m orbitstore --home $(HOME_DIR) run --api 127.0.0.1:$(PORT) \
	  $(if $(PEER),--bootstrap $(PEER),$(if $(filter $(FIRST),$(HOME_DIR)),,--join $(FIRST)))

# examples/collab_editor: two nodes, one console URL per browser, until Ctrl-C.
collab-editor: $(STAMP)
	$(PY) examples/collab_editor/two_nodes.py

lint: $(STAMP)
	$(VENV)/bin/ruff check orbitstore tests benchmarks examples
	$(VENV)/bin/ruff format --check orbitstore tests benchmarks examples
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

unit: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

test: lint docs unit

# Browser tests (tests/e2e): two real nodes, two pages of real Chromium. Installs what
# they need: Debian's chromium (as root, when /usr/bin/chromium is missing) and the
# pinned Python playwright (its driver is in the wheel; no `playwright install`).
E2E_STAMP := $(VENV)/.installed-e2e
CHROMIUM ?= /usr/bin/chromium

$(E2E_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e '.[test,docs,e2e]'
	touch $(E2E_STAMP)

chromium:
	@test -x $(CHROMIUM) || { echo "installing Debian's chromium"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }
	@test -x $(CHROMIUM)

test-e2e: $(E2E_STAMP) chromium
	ORBITSTORE_CHROMIUM=$(CHROMIUM) $(PY) -m pytest -q -p no:cacheprovider tests/e2e

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir .site

# The web console's editor: yjs + y-websocket as one committed browser script (needs npm;
# versions in tools/console-bundle/README.md). Not part of `make run`.
console-bundle:
	cd tools/console-bundle && npm ci --no-audit --no-fund && ./node_modules/.bin/esbuild entry.js \
	  --bundle --minify --format=iife --target=es2020 --legal-comments=eof \
	  --outfile=../../orbitstore/server/console/yjs-bundle.js

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .site .pytest_cache .mypy_cache .ruff_cache
