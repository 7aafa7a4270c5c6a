# Open Relay Portal — `make run` starts the portal, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
APT_PACKAGES := chromium wrk oathtool fonts-dejavu-core openssh-server openssh-client xvfb x11vnc x11-xserver-utils
export PORTAL_DATA_DIR ?= ./data

.PHONY: run test test-sqlite test-postgres lint deps system-deps js-deps bench clean

run: deps js-deps
	@$(VENV)/bin/portal migrate
	@echo "Open http://127.0.0.1:8000 and sign in. The first start creates superadmin 'admin' and prints its password;"
	@echo "set PORTAL_BOOTSTRAP_ADMIN=user:password beforehand to choose it. Registration codes: $(VENV)/bin/portal invite-code"
	@$(VENV)/bin/portal serve --host 127.0.0.1 --port 8000

test: deps system-deps js-deps lint test-sqlite test-postgres

test-sqlite:
	PORTAL_TEST_BACKEND=sqlite $(PY) -m pytest -q

test-postgres:
	bash scripts/ensure-services.sh
	PORTAL_TEST_BACKEND=postgres $(PY) -m pytest -q -m "not e2e" --ignore=tests/scaleout

lint:
	$(VENV)/bin/ruff check portal tests bench
	$(VENV)/bin/mypy

deps: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	@touch $(STAMP)

js-deps: node_modules/.installed

node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || bash scripts/install-system-deps.sh nodejs npm
	SCARF_ANALYTICS=false npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

system-deps:
	bash scripts/install-system-deps.sh $(APT_PACKAGES)

bench: deps system-deps
	$(PIP) install -q -e ".[bench]"
	$(PY) bench/auth_throughput.py

clean:
	rm -rf $(VENV) node_modules
