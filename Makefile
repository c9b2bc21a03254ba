# unitserve developer commands. Every target that needs Python builds the
# project's own virtual environment (.venv) first, so a fresh clone needs
# nothing but python3 (3.11+) and make.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 9000

.PHONY: serve test test-fast lint proto docs clean

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

## serve: install and serve the example identity model on port $(PORT)
serve: $(VENV)/.installed
	cd examples/identity && ../../$(BIN)/unitserve serve MyModel --http-port $(PORT)

## test: install with test extras and run the whole test suite
test: $(VENV)/.installed-test
	$(BIN)/ruff check src tests soak
	$(BIN)/python -m pytest

## test-fast: the in-process tests only (no server process): seconds, not minutes
test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -m "not e2e"

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests soak
	$(BIN)/ruff format --check src tests soak

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache

-include proto.mk benchmarks/bench.mk docs.mk fuzz.mk soak.mk
