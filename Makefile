# The two commands: `make run` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit docs bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,docs]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m orbitstore --home .orbitstore-run demo

lint: $(STAMP)
	$(VENV)/bin/ruff check orbitstore tests benchmarks examples
	$(VENV)/bin/ruff format --check orbitstore tests benchmarks examples
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

unit: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

test: lint docs unit

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir .site

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .site .pytest_cache .mypy_cache .ruff_cache
