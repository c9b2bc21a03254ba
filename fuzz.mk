# Fuzzing, included by the top-level Makefile. See tests/fuzz/harness.py.
#
#   make test    runs tests/fuzz with the short profile: derandomized, a few dozen
#                examples per test, no shrinking (under a minute)
#   make fuzz    the long profile: random, FUZZ_SCALE (default 20) times as many examples,
#                failures shrunk and kept in .hypothesis/ to be replayed first next time
#
# Every request goes to servers on 127.0.0.1 that the tests start and stop themselves;
# each request has a 20 s timeout and each test a bounded number of examples.

FUZZ_SCALE ?= 20
FUZZ_ARGS  ?=

.PHONY: fuzz

## fuzz: the long fuzzing profile against real servers (FUZZ_SCALE=20 by default)
fuzz: $(VENV)/.installed-test
	UNITSERVE_FUZZ_PROFILE=long UNITSERVE_FUZZ_SCALE=$(FUZZ_SCALE) \
		$(BIN)/python -m pytest tests/fuzz -q --timeout 3600 --hypothesis-show-statistics $(FUZZ_ARGS)
