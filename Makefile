# couchwatch: `make demo` brings up a local stack and runs the demo; `make test` runs everything.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CW := $(VENV)/bin/couchwatch
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
# The review page's browser test (Playwright) drives this Chromium; apt-get installs it as root.
CHROMIUM ?= /usr/bin/chromium
APT_GET ?= apt-get

.PHONY: demo test up down status install prereqs browser lint typecheck unit integration soak \
  clean bench

demo: install
	@$(CW) up
	@$(CW) demo
	@$(CW) evaluate --labels $${COUCHWATCH_STATE_DIR:-.couchwatch}/demo/labels.json
	@$(CW) status
	@echo "Flower: URL and login in the flower row above. Stop everything with: make down"

up: install
	@$(CW) up

down:
	@if [ -x $(CW) ]; then $(CW) down; else echo "nothing to stop (no $(VENV))"; fi

status: install
	@$(CW) status

test: install browser lint typecheck
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

unit: install
	$(PY) -m pytest -q -m unit

integration: install browser
	$(PY) -m pytest -q -m integration

# Benchmarks (<= 15 min on 2 cores): bench/results/<date>.json and docs/performance.md
bench: install
	$(PY) -m bench

# The soak of tests/integration/test_faults.py for 20 minutes (60 s in `make test`).
soak: install
	COUCHWATCH_SOAK_S=$${COUCHWATCH_SOAK_S:-1200} $(PY) -m pytest -q -s --timeout=3600 \
	  tests/integration/test_faults.py -k soak

install: prereqs $(PY_STAMP) $(NODE_STAMP)

prereqs:
	@python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "couchwatch needs Python >= 3.11 (python3 is $$(python3 --version 2>&1))"; exit 1; }
	@command -v node >/dev/null && node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 18 ? 1 : 0)' \
	  || { echo "couchwatch needs Node.js >= 18 and npm: apt-get install nodejs npm"; exit 1; }
	@command -v redis-server >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing redis-server with apt-get"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >/dev/null \
	      || { echo "could not install redis-server: apt-get install redis-server"; exit 1; }; \
	  else echo "couchwatch needs redis-server: apt-get install redis-server"; exit 1; fi; }

# Only the tests need Chromium (not `make demo`): installed like redis-server, or one line.
browser:
	@[ -x $(CHROMIUM) ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v $(APT_GET) >/dev/null; then \
	    echo "installing chromium with apt-get (the review page's browser test)"; \
	    ($(APT_GET) update -qq && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq chromium) \
	      >/dev/null && [ -x $(CHROMIUM) ] \
	      || { echo "could not install chromium: apt-get install chromium"; exit 1; }; \
	  else echo "the browser test needs Chromium at $(CHROMIUM): apt-get install chromium"; exit 1; fi; }

$(PY):
	python3 -m venv $(VENV)

$(PY_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	@touch $@

$(NODE_STAMP): package.json package-lock.json patches/*.patch
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

clean: down
	rm -rf .couchwatch
