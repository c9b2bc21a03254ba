# Benchmarks, included by the top-level Makefile. See benchmarks/README.md.
#
#   make bench          the full matrix (~32 min): results/REPORT.md + results/results.jsonl
#   make bench-quick    small payload, c=8, REST and gRPC, unitserve vs Seldon (+ the ASGI echo
#                       ceiling), 3 x 5 s: under 3 minutes once the venvs exist
#   make bench-venvs    install the reference servers into benchmarks/.venvs (done on demand)
#   make bench-report   rewrite results/REPORT.md from results/results.jsonl
#
# Narrow any run with BENCH_* variables (environment or make command line), e.g.
#   make bench BENCH_SERVERS=unitserve,seldon BENCH_PAYLOADS=small,medium BENCH_CONC=8
#   make bench-quick BENCH_PROTOS=rest BENCH_REPEATS=1
# or pass flags through BENCH_ARGS="--servers unitserve,raw-codec --duration 3".

BENCH_DIR   := benchmarks
# The reference servers' venvs live outside the clone (shared with tests/client_venvs.py, which
# builds mlserver and kserve there too), so a fresh clone or worktree does not rebuild them.
BENCH_VENVS ?= $(HOME)/.cache/unitserve/venvs
export BENCH_VENVS
BENCH_PY    := $(abspath $(BIN)/python)
BENCH_ARGS  ?=
BENCH_RUN    = cd $(BENCH_DIR) && UNITBENCH_INVOKED_BY="make $@" $(BENCH_PY) -m unitbench run

.PHONY: bench bench-quick bench-v2 bench-graph bench-tools bench-venvs bench-report bench-list \
	bench-servers

# A venv is rebuilt when the script that builds it changes: its content, not its file date (a
# fresh clone or worktree has new dates and must not rebuild venvs that others share).
BENCH_SETUP_ID := $(shell cksum < $(BENCH_DIR)/setup_venvs.sh | cut -d' ' -f1)
BENCH_STAMP    := .installed-$(BENCH_SETUP_ID)

$(BENCH_VENVS)/seldon/$(BENCH_STAMP):
	PYTHON=$(PYTHON) $(BENCH_DIR)/setup_venvs.sh seldon
	touch $@

# MLServer and KServe are the tests' reference environments too: one builder
# (tests/client_venvs.py, from tests/client_requirements/) so neither rebuilds the other's.
BENCH_CLIENT_VENV = $(BENCH_PY) -c "import sys; sys.path.insert(0, 'tests'); \
	from client_venvs import client_python; print(client_python('$(1)'))"

$(BENCH_VENVS)/mlserver/$(BENCH_STAMP): tests/client_requirements/mlserver.txt
	$(call BENCH_CLIENT_VENV,mlserver)
	touch $@

$(BENCH_VENVS)/kserve/$(BENCH_STAMP): tests/client_requirements/kserve.txt
	$(call BENCH_CLIENT_VENV,kserve)
	touch $@

bench-venvs: $(BENCH_VENVS)/seldon/$(BENCH_STAMP) $(BENCH_VENVS)/mlserver/$(BENCH_STAMP) \
	$(BENCH_VENVS)/kserve/$(BENCH_STAMP)

## bench: the full side-by-side matrix; writes benchmarks/results/REPORT.md
bench: $(VENV)/.installed bench-venvs
	$(BENCH_RUN) --out-dir results $(BENCH_ARGS)

## bench-quick: small payload, one concurrency, REST and gRPC, unitserve vs Seldon (< 3 min)
bench-quick: $(VENV)/.installed $(BENCH_VENVS)/seldon/$(BENCH_STAMP)
	$(BENCH_RUN) --quick --out-dir results/raw/quick $(BENCH_ARGS)

## bench-v2: the Open Inference Protocol rows alone (unitserve-v2, MLServer x2, KServe)
bench-v2: $(VENV)/.installed bench-venvs
	$(BENCH_RUN) --servers v2 --payloads v2-small,v2-large,v2-large-bin --conc 8 \
	    --large-conc 1,8 --out-dir results/raw/v2 $(BENCH_ARGS)

## bench-graph: the three-node local chain against one node alone and the chain the Seldon way
bench-graph: $(VENV)/.installed $(BENCH_VENVS)/seldon/$(BENCH_STAMP)
	$(BENCH_RUN) --servers graph --payloads small --conc 1,8,64 --out-dir results/raw/graph \
	    $(BENCH_ARGS)

## bench-tools: unitserve batch vs seldon-batch-processor, the client vs a bare httpx post
bench-tools: $(VENV)/.installed $(BENCH_VENVS)/seldon/$(BENCH_STAMP)
	$(BENCH_RUN) --servers none --tools batch,client --out-dir results/raw/tools $(BENCH_ARGS)

# Each pair with its library ceiling (benchmarks/ceilings/library_replies.py) in the same run.
SERVERS_SKLEARN_V2 := unitserve-sklearn-v2,mlserver-sklearn,ceiling-sklearn-v2
SERVERS_XGBOOST_V2 := unitserve-xgboost-v2,mlserver-xgboost,ceiling-xgboost-v2
## bench-servers: the prepackaged servers: iris predict_proba vs seldon-core, OIP vs MLServer
bench-servers: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[sklearn,xgboost]'
	$(BENCH_PY) $(BENCH_DIR)/models/servers/prepare.py
	$(call BENCH_CLIENT_VENV,mlserver-runtimes)
	$(BENCH_RUN) --servers unitserve-sklearn,seldon-sklearn,ceiling-sklearn --payloads small \
	    --protos rest --conc 8 --out-dir results/raw/servers-seldon $(BENCH_ARGS)
	$(BENCH_RUN) --servers $(SERVERS_SKLEARN_V2),$(SERVERS_XGBOOST_V2) --payloads v2-small --protos rest --conc 8 \
	    --out-dir results/raw/servers-v2 $(BENCH_ARGS)
	$(BENCH_RUN) --servers unitserve-sklearn-v2-batch,mlserver-sklearn-batch --payloads v2-small \
	    --protos rest --conc 64 --out-dir results/raw/servers-batch $(BENCH_ARGS)
	# One report for the three runs: results/raw/servers/REPORT.md, pairs and targets first.
	mkdir -p $(BENCH_DIR)/results/raw/servers
	cd $(BENCH_DIR)/results/raw && cat servers-seldon/results.jsonl servers-v2/results.jsonl \
	    servers-batch/results.jsonl > servers/results.jsonl
	cd $(BENCH_DIR) && $(BENCH_PY) -m unitbench report results/raw/servers/results.jsonl

bench-report: $(VENV)/.installed
	cd $(BENCH_DIR) && $(BENCH_PY) -m unitbench report results/results.jsonl

bench-list: $(VENV)/.installed
	cd $(BENCH_DIR) && $(BENCH_PY) -m unitbench list

# Adaptive batching (benchmarks/batching/run.py): a scikit-learn forest, batching on vs off
# and vs MLServer's adaptive batching. Narrow with BATCHING_ARGS="--duration 3" for a smoke test.
BATCHING_ARGS ?=
.PHONY: bench-batching
## bench-batching: batching on vs off vs MLServer, scikit-learn forest (~5 min)
bench-batching: $(VENV)/.installed
	$(BENCH_PY) $(BENCH_DIR)/batching/run.py $(BATCHING_ARGS)

## bench-storage: model download, unitserve fetch vs rclone copy, on moto's S3 (one 200 MB object, 1,000 small ones)
# Needs the test extras (moto) and Debian's rclone. Not part of `make bench`: it measures
# the storage layer, not a server.
.PHONY: bench-storage
bench-storage: $(VENV)/.installed-test
	$(BENCH_PY) $(BENCH_DIR)/storage_bench.py --cpu --json $(BENCH_DIR)/results/raw/storage/storage.json $(BENCH_ARGS)

## bench-image: the identity image's size over its base, code-only rebuild, start to /ready
.PHONY: bench-image
bench-image: $(VENV)/.installed-test
	$(BENCH_PY) $(BENCH_DIR)/image.py

## bench-repository: unitserve start vs MLServer 1.7, one repository (REST c=8, many models through the API and at start, load/unload cycles)
# REPOSITORY_ARGS narrows it, e.g. REPOSITORY_ARGS="--models 200 --parts many,startup". Needs the
# test extras (scikit-learn in unitserve's venv); MLServer's venv is built on demand.
REPOSITORY_ARGS ?=
.PHONY: bench-repository
bench-repository: $(VENV)/.installed-test
	$(BENCH_PY) $(BENCH_DIR)/repository_bench.py \
	    --json $(BENCH_DIR)/results/raw/repository/repository.json $(REPOSITORY_ARGS)
