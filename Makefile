# One-command entry points. Every target installs what it needs first, so a fresh clone works.
SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do command -v $$p >/dev/null && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && echo $$p && break; done)
VENV := .venv
SAM_VENV := .venv-sam
# checkov pins boto3/botocore/packaging/networkx below what the project uses: its own venv.
CHECKOV_VENV := .venv-checkov
# pip-audit asks PyPI's per-version JSON API; where that is unreachable it reports every package
# as "not found" (and, without --strict, passes): probe it first and say so instead. It is the one
# target that needs the outside network, so it is `make audit`, not part of `make test`.
PYPI_PROBE := https://pypi.org/pypi/pip/24.0/json
# Two pytest workers (moto's state is per process; a test module stays in one worker, so its
# module-scoped fixtures, e.g. the SAM build, run once). PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2
# The SAM CLI sends no telemetry from any target.
export SAM_CLI_TELEMETRY := 0
BIN := $(VENV)/bin
FILE ?= examples
ARGS ?=

.PHONY: setup run test lint bench build validate deploy sam-build sam-validate clean security audit lock

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

$(CHECKOV_VENV)/bin/checkov:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q --upgrade pip
	$(CHECKOV_VENV)/bin/pip install -q 'checkov>=3.2,<4'
	@touch $@

setup: $(BIN)/segment-importer $(SAM_VENV)/bin/sam  ## create the virtualenvs

run: $(BIN)/segment-importer  ## import FILE (default: the samples in examples/) through the local stack
	$(BIN)/segment-importer run $(FILE) $(ARGS)

test: setup security  ## lint, template checks, security checks and the whole test suite (offline)
	$(BIN)/ruff check .
	PATH="$(CURDIR)/$(SAM_VENV)/bin:$$PATH" AWS_EC2_METADATA_DISABLED=true \
		$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

lint: $(BIN)/segment-importer
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(BIN)/segment-importer  ## benchmarks with same-run baselines
	$(BIN)/python -m bench $(ARGS)

security: $(BIN)/segment-importer $(CHECKOV_VENV)/bin/checkov  ## checkov and bandit (offline)
	$(CHECKOV_VENV)/bin/checkov -f template.yaml --framework cloudformation
	$(BIN)/bandit --ini .bandit -r layers functions -q

audit: $(BIN)/segment-importer  ## pip-audit of the dependencies (asks PyPI's JSON API)
	@if $(BIN)/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=15)' \
			$(PYPI_PROBE) 2>/dev/null; then \
		set -x; \
		$(BIN)/pip-audit --strict --progress-spinner off -r layers/segment_importer/requirements.txt && \
		$(BIN)/pip-audit --strict --progress-spinner off --skip-editable; \
	else \
		echo "pip-audit SKIPPED: PyPI's per-version JSON API ($(PYPI_PROBE)) does not answer here;"; \
		echo "  pip-audit would find no package and audit nothing. Run 'make audit' where it answers."; \
	fi

validate: setup  ## sam validate --lint (offline: cfn-lint)
	$(SAM_VENV)/bin/sam validate --lint

build: setup  ## sam build: the functions and the layer, into .aws-sam/build
	PYENV_VERSION=3.13.0:3.12.1:3.11.7 $(SAM_VENV)/bin/sam build

deploy: build  ## sam deploy with samconfig.toml's stack name and region; ARGS=--guided asks for them
	$(SAM_VENV)/bin/sam deploy $(ARGS)

# Older names of the two targets above.
sam-validate: validate
sam-build: build

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) .aws-sam .pytest_cache

# The layer's lock: every package pinned with its hashes, from layers/segment_importer/requirements.in.
lock: $(BIN)/segment-importer
	$(BIN)/pip install -q pip-tools
	cd layers/segment_importer && ../../$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras \
		--no-emit-index-url --no-emit-find-links --output-file requirements.txt requirements.in

# ---- sam local (issue 19, branch samlocal): a self-contained block, nothing above depends on it ----
# docker-up installs Debian's docker.io if missing and starts dockerd (root); local-image builds the
# Lambda python base image the SAM CLI looks for, offline (cached: rebuilt only when its inputs
# change); local-invoke runs the splitter and the sender through `sam local invoke` on events/.
.PHONY: docker-up local-image local-invoke

docker-up:  ## start dockerd for sam local (installs docker.io first if missing)
	scripts/docker_up.sh

local-image: docker-up $(BIN)/segment-importer  ## the local Lambda base image (offline, cached)
	$(BIN)/python local-image/build.py

local-invoke: local-image sam-build  ## splitter and sender through sam local invoke, on moto + the endpoint
	SAM_VENV=$(abspath $(SAM_VENV)) $(BIN)/python scripts/local_invoke.py
