# The two commands of the README: `make demo` and `make test`. CI runs `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
# torch drags in ~3 GB of CUDA wheels from PyPI: the venv lives in a cache keyed by the lock,
# so it is built once per lock change, never per run or per clone.
LOCK_ID := $(shell sha256sum requirements.lock | cut -c1-16)
VENV ?= $(HOME)/.cache/tonewatch/venv-$(LOCK_ID)
BIN := $(VENV)/bin
TONEWATCH := $(BIN)/tonewatch
PYTEST_ARGS ?=

.PHONY: help install lint format test test-unit services-up services-down status demo lock clean

help:
	@echo "make demo   set up everything and run the main job on the bundled defaults"
	@echo "make test   install, lint, start the services, run the whole test suite"
	@echo "other: install lint format test-unit services-up services-down status lock clean"

# No prerequisite on purpose: the path already changes with the lock's content, and a fresh
# clone's new mtimes must not trigger a rebuild.
$(VENV)/.complete:
	@echo "building the venv $(VENV) (once per requirements.lock)"
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --requirement requirements.lock
	touch $@

install: $(VENV)/.complete
	$(BIN)/pip install --quiet --no-deps --no-build-isolation --editable .
	ln -sfn $(VENV) .venv

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy tonewatch streams inference storage retrain tests
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

services-up: install
	$(TONEWATCH) services up

services-down: install
	$(TONEWATCH) services down

status: install
	$(TONEWATCH) services status

test: lint services-up
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: install
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

demo: services-up
	$(TONEWATCH) demo

# Re-resolve the pins from pyproject.toml into a scratch venv and write requirements.lock.
lock:
	rm -rf /tmp/tonewatch-lock && $(PYTHON) -m venv /tmp/tonewatch-lock
	/tmp/tonewatch-lock/bin/pip install --quiet ".[dev]"
	{ echo "# Exact pins for a reproducible install (pip freeze of a fresh resolve of pyproject.toml + [dev])."; \
	  echo "# Regenerate with: make lock"; \
	  /tmp/tonewatch-lock/bin/pip freeze --all | grep -v -E '^(pip|tonewatch)[= ]'; } > requirements.lock

clean: services-down
	rm -rf var
