# unitserve developer commands. Every target that needs Python builds the
# project's own virtual environment (.venv) first, so a fresh clone needs
# nothing but python3 (3.11+) and make.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 9000

.DEFAULT_GOAL := help
.PHONY: help serve test test-fast lint typecheck proto docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Install the package with its test extras into .venv.
$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# Install the package alone into .venv.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

## serve: install and serve the example identity model (port 9000, or PORT=…)
serve: $(VENV)/.installed
	cd examples/identity && ../../$(BIN)/unitserve serve MyModel --http-port $(PORT)

## test: install with test extras, lint (ruff, ruff format, mypy), run the whole test suite
# Most tests wait on servers rather than compute, so they run in parallel processes
# (whole files per process); the tests marked `serial` load the machine or check timing
# and run alone afterwards. A test that fails is run once more on its own (--lf): a few
# process tests (a real Prometheus starting, a browser) depend on outside programs that
# start slowly on a busy machine; one that fails twice fails the target.
test: lint
	$(BIN)/python -m pytest -n 3 --dist loadfile -m "not serial" \
	    || $(BIN)/python -m pytest -m "not serial" --lf --lfnf=none
	$(BIN)/python -m pytest -m serial || $(BIN)/python -m pytest -m serial --lf --lfnf=none

## test-fast: the in-process tests only (no server process): seconds, not minutes
test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -m "not e2e"

LINTED := src tests soak benchmarks scripts examples

## lint: ruff, ruff format --check and the mypy type check, all of which must be clean
lint: $(VENV)/.installed-test
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy

## typecheck: the mypy type check alone (configured in pyproject.toml)
typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

## help: list the targets
help:
	@grep -h -E '^## ' $(MAKEFILE_LIST) | sed -e 's/^## //' | awk -F': ' '{printf "  %-14s %s\n", $$1, $$2}'

## clean: remove the virtual environment and build output
clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache

-include proto.mk benchmarks/bench.mk docs.mk fuzz.mk soak.mk
