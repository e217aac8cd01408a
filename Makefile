# ticklake developer entry points. The README's two commands: `make demo`, `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test unit lint fmt services-up services-down bench clean venv

venv: $(STAMP)

# The virtualenv, installed exactly from the lock (uv is only the installer).
# Bytecode is compiled at install: with PYTHONDONTWRITEBYTECODE set (CI images
# often do) every process start -- the sink and each of its encoder processes
# -- would otherwise compile botocore and friends again, ~2 CPU-s each.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip sync -q --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	$(BIN)/python -m compileall -q worker
	touch $(STAMP)

## demo: emulator -> collectors -> in-process bus -> sink -> ./lake/, then a summary and a DuckDB query
demo: venv
	scripts/demo

## test: real Kafka + S3 (started if needed), the deployment tools (installed if
## missing: tests/deploy needs them), every test, nothing may skip
test: venv
	scripts/services up
	DEPLOY_TOOLS_QUIET=1 scripts/deploy-tools
	source .services/env && REQUIRE_SERVICES=1 $(BIN)/pytest $(PYTEST_ARGS)

## unit: the fast tests only, no services
unit: venv
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check worker tests bench
	$(BIN)/ruff format --check worker tests bench
	$(BIN)/mypy --strict worker

fmt: venv
	$(BIN)/ruff check --fix worker tests bench
	$(BIN)/ruff format worker tests bench

services-up:
	scripts/services up

services-down:
	scripts/services down

bench: venv
	scripts/services up
	source .services/env && $(BIN)/python bench/sink_throughput.py && $(BIN)/python bench/collector_throughput.py

clean:
	-scripts/services down
	rm -rf $(VENV) .services lake .pytest_cache .mypy_cache .ruff_cache
