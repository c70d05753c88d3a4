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

test: lint typecheck conformance-tools everything-tools browser-tools $(STAMP)
	$(BIN)/python -m pytest

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

e2e: conformance-tools everything-tools browser-tools $(STAMP)
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

# Benchmark, direct vs gateway on loopback (issue 7): prints a table, writes bench/results/<timestamp>.json.
# `make bench BENCH_ARGS=--quick` for a short run; `bench/run.py --help` for the knobs.
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# The MCP reference server @modelcontextprotocol/server-everything (npm, with Node 22 from npm too) in
# .tools/everything, for tests/e2e/test_server_everything.py.
.PHONY: everything-tools
everything-tools:
	bash scripts/install-everything.sh

# Debian's chromium at /usr/bin/chromium (apt-get, sudo when not root), which the admin UI's browser tests
# (tests/e2e/test_admin_browser.py) drive through Playwright; nothing to do when it is there.
.PHONY: browser-tools
browser-tools:
	bash scripts/install-chromium.sh
