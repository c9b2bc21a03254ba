# Documentation generated from the code (included by the main Makefile).
#
# docs/configuration.md's tables come from src/unitserve/settings/table.py (OPTIONS,
# ENV_ONLY) and the CLI parsers; tests/unit/test_docs.py fails when they are stale.

.PHONY: docs docs-check

## docs: regenerate the generated tables of docs/configuration.md
docs: $(VENV)/.installed
	$(BIN)/python scripts/gen_config_docs.py

## docs-check: fail if docs/configuration.md is out of date
docs-check: $(VENV)/.installed
	$(BIN)/python scripts/gen_config_docs.py --check
