# One-command entry points. Every target installs what it needs first, so a fresh clone works.
SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do command -v $$p >/dev/null && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && echo $$p && break; done)
VENV := .venv
SAM_VENV := .venv-sam
BIN := $(VENV)/bin
FILE ?= examples
ARGS ?=

.PHONY: setup run test lint bench sam-build sam-validate clean

$(BIN)/segment-importer: pyproject.toml layers/segment_importer/requirements.txt
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is required"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

$(SAM_VENV)/bin/sam:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q --upgrade pip
	$(SAM_VENV)/bin/pip install -q aws-sam-cli
	@touch $@

setup: $(BIN)/segment-importer $(SAM_VENV)/bin/sam  ## create the virtualenvs

run: $(BIN)/segment-importer  ## import FILE (default: the samples in examples/) through the local stack
	$(BIN)/segment-importer run $(FILE) $(ARGS)

test: setup  ## lint, template checks and the whole test suite
	$(BIN)/ruff check .
	PATH="$(CURDIR)/$(SAM_VENV)/bin:$$PATH" $(BIN)/pytest

lint: $(BIN)/segment-importer
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(BIN)/segment-importer  ## benchmarks with same-run baselines
	$(BIN)/python -m bench $(ARGS)

sam-validate: setup
	$(SAM_VENV)/bin/sam validate --lint

sam-build: setup
	PYENV_VERSION=3.13.0:3.12.1:3.11.7 $(SAM_VENV)/bin/sam build

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache
