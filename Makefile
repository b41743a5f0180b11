# Tickerflow: `make run` starts the stack, `make test` runs every check, `make bench` measures.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: run test lint bench install clean

# Reinstalls only when a requirements file changed since the last install.
$(INSTALLED): requirements/base.txt requirements/production.txt requirements/dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.txt
	touch $@

install: $(INSTALLED)

run: $(INSTALLED)
	$(PY) -m config.stack

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports --no-cache

test: lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)
	$(MAKE) test-js

# The JavaScript client package (clients/js): its pinned dev dependencies, then node --test
# (React Testing Library on jsdom) and tsc --noEmit on its examples. Needs Node 20+ and npm.
.PHONY: test-js
test-js:
	cd clients/js && npm ci --no-audit --no-fund --loglevel=error && npm test

bench: $(INSTALLED)
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf var staticfiles .mypy_cache .ruff_cache .pytest_cache
	rm -rf clients/js/node_modules
