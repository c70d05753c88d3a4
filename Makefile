# Two commands set up a fresh machine: `make run` serves, `make test` tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
HOST   ?= 127.0.0.1
PORT   ?= 3663

.PHONY: run test lint typecheck unit e2e clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

run: $(STAMP)
	$(BIN)/mcp-supervisor start --config-dir config --host $(HOST) --port $(PORT)

test: lint typecheck conformance-tools $(STAMP)
	$(BIN)/python -m pytest

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

e2e: conformance-tools $(STAMP)
	$(BIN)/python -m pytest tests/e2e

lint: $(STAMP)
	$(BIN)/ruff check mcp_supervisor tests

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache

# The official MCP conformance suite (npm, with Node 22 from npm too) in .tools/conformance, for tests/conformance.
.PHONY: conformance-tools
conformance-tools:
	bash scripts/install-conformance.sh
