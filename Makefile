# The two commands a newcomer needs: `make dev` (the local stack, running) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: dev down status test unit lint deps binaries

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

deps: $(VENV)/.installed
	testenv/install-system-packages.sh

binaries: deps
	$(PY) -m testenv build

dev: binaries
	$(PY) -m testenv up

down:
	$(PY) -m testenv down

status:
	$(PY) -m testenv status

test: binaries
	$(PY) -m pytest

unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit

lint: $(VENV)/.installed
	$(PY) -m ruff check operator api testenv tests bench
	$(PY) -m mypy operator api
