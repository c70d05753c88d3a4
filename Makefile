# Two commands set up a fresh machine: `make run` serves, `make test` tests. Both install from the locks only:
# uv.lock (Python, with hashes) and tests/npm/package-lock.json (npm); `make lock` refreshes them.
PYTHON ?= python3
HOST   ?= 127.0.0.1
PORT   ?= 3663

# uv itself comes from PyPI through pip, pinned by hash (requirements/uv.txt). It never downloads a Python.
UV_HOME := .tools/uv
UV_BIN  := $(UV_HOME)/bin/uv
# uv's settings go to uv alone, not exported: `make run` and `make test` start backends, and a uvx backend that
# inherited UV_PYTHON would look for this interpreter inside its sandbox, where it is not shown.
UV_ENV  := UV_PYTHON_DOWNLOADS=never UV_PYTHON=$(shell command -v $(PYTHON)) UV_NO_PROGRESS=1
UV      := $(UV_ENV) $(UV_BIN)

# The test venv: runtime, the sample backend and the test toolchain.
VENV := .venv
BIN  := $(VENV)/bin
# `make run`'s own lean venv (runtime and the sample backend only) and its working copy of the sample config:
# untracked, created on the first run and kept afterwards, so nothing `make run` does writes into the checkout.
RUN_DIR    := .run
RUN_VENV   := $(RUN_DIR)/venv
RUN_CONFIG := $(RUN_DIR)/config
LOCKS      := pyproject.toml uv.lock

.PHONY: run status test test-latest suite lint typecheck unit e2e lock clean npm-tools browser-tools sandbox-tools bench

$(UV_BIN): requirements/uv.txt
	test -x $(UV_HOME)/bin/python || $(PYTHON) -m venv $(UV_HOME)
	$(UV_HOME)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
		-r requirements/uv.txt
	touch $(UV_BIN)

$(VENV)/.synced: $(LOCKS) $(UV_BIN)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --quiet --frozen --group test
	touch $@

$(RUN_VENV)/.synced: $(LOCKS) $(UV_BIN)
	UV_PROJECT_ENVIRONMENT=$(RUN_VENV) $(UV) sync --quiet --frozen --group sample
	touch $@

$(RUN_CONFIG):
	mkdir -p $(RUN_DIR)
	cp -R config $(RUN_CONFIG)
	@echo "make run: serving a working copy of the sample config in $(RUN_CONFIG) (edit it there; config/ stays as tracked)"

run: $(RUN_VENV)/.synced | $(RUN_CONFIG)
	@echo "make run: the CLI is $(RUN_VENV)/bin/mcp-supervisor (from here it finds this instance: try 'make status')"
	$(RUN_VENV)/bin/mcp-supervisor start --config-dir $(RUN_CONFIG) --host $(HOST) --port $(PORT)

# `mcp-supervisor status` of what `make run` serves, from another terminal.
status:
	@$(RUN_VENV)/bin/mcp-supervisor status --config-dir $(RUN_CONFIG)

# The whole suite on the locked versions: what CI runs (.ci/run).
test: $(VENV)/.synced npm-tools browser-tools sandbox-tools
	$(MAKE) --no-print-directory suite BIN=$(BIN)

# The whole suite on the newest versions pyproject allows (a venv of its own, the lock untouched), so drift shows
# up as the result of one command rather than as a red CI on some later morning.
test-latest: $(UV_BIN) npm-tools browser-tools sandbox-tools
	$(UV) venv --quiet --allow-existing .venv-latest
	$(UV) pip install --quiet --upgrade --python .venv-latest/bin/python -e . --group test
	$(UV_ENV) bash scripts/lock-drift.sh $(UV_BIN) .venv-latest/bin/python
	$(MAKE) --no-print-directory suite BIN=.venv-latest/bin

suite:
	$(BIN)/ruff check mcp_supervisor tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest

unit: $(VENV)/.synced
	$(BIN)/python -m pytest tests/unit

e2e: $(VENV)/.synced npm-tools browser-tools sandbox-tools
	$(BIN)/python -m pytest tests/e2e

lint: $(VENV)/.synced
	$(BIN)/ruff check mcp_supervisor tests bench

typecheck: $(VENV)/.synced
	$(BIN)/mypy

# Refresh every lock to the newest versions the manifests allow: uv itself, uv.lock, the npm lock.
lock: $(UV_BIN)
	echo "uv" | $(UV) pip compile --quiet --generate-hashes --no-header --upgrade - -o requirements/uv.txt.new
	{ head -2 requirements/uv.txt; cat requirements/uv.txt.new; } >requirements/uv.txt.tmp
	mv requirements/uv.txt.tmp requirements/uv.txt && rm requirements/uv.txt.new
	$(UV) lock --upgrade
	cd tests/npm && npm install --package-lock-only --no-audit --no-fund --loglevel=error

clean:
	rm -rf $(VENV) .venv-latest $(RUN_VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache

# The npm tools the tests use (Node 22, the conformance suite 0.1.16 and its 2026-07-28 pre-release under the npm
# alias conformance-next, server-everything, server-filesystem, server-memory, oidc-provider), `npm ci` from
# tests/npm/package-lock.json into .tools/npm (or $NPM_TOOLS_DIR).
npm-tools:
	bash scripts/install-npm-tools.sh

# Debian's chromium at /usr/bin/chromium, which the admin UI's browser tests drive through Playwright.
browser-tools:
	bash scripts/install-debian-package.sh chromium /usr/bin/chromium

# Debian's bubblewrap, the sandbox of stdio backends (the product uses it where installed; the tests need it).
sandbox-tools:
	bash scripts/install-debian-package.sh bubblewrap /usr/bin/bwrap
	bash scripts/install-debian-package.sh slirp4netns /usr/bin/slirp4netns

# Benchmark, direct vs gateway on loopback: prints a table, writes bench/results/<timestamp>.json.
# `make bench BENCH_ARGS=--quick` for a short run; `bench/run.py --help` for the knobs. Then tool search
# (bench/tool_search.py): retrieval accuracy on the real catalogs, tools/list bytes, search_tools p50.
bench: $(VENV)/.synced
	$(BIN)/python bench/run.py $(BENCH_ARGS)
	$(BIN)/python bench/tool_search.py
