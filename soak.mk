# Soak test, included by the top-level Makefile. See soak/runner.py.
#
#   make soak                       10 minutes of mixed REST and gRPC load (32 + 32
#                                   connections, closed loop) on 127.0.0.1 against
#                                   `unitserve serve --workers 2`; fails on any error or
#                                   on RSS growth beyond the bound after the warm-up
#   make soak SOAK_SECONDS=120      another duration
#   make soak SOAK_ARGS="--rate 500 --rss-growth-mib 24"
#
# Writes soak/results/REPORT.md, summary.json and rss.png (kept); the raw samples and
# logs go to soak/results/raw/ (ignored by git). A 60-second version of the same code
# runs in `make test` (tests/reliability/test_soak.py).

SOAK_SECONDS ?= 600
SOAK_ARGS    ?=

.PHONY: soak

## soak: SOAK_SECONDS (600) of REST+gRPC load on 2 workers; report and plot in soak/results
soak: $(VENV)/.installed-test
	$(BIN)/python -m soak --require-plot --seconds $(SOAK_SECONDS) --out soak/results $(SOAK_ARGS)
