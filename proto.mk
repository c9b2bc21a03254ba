# Protobuf/gRPC code generation (included by the main Makefile).
#
# The generated modules in src/unitserve/proto are committed: users never need
# protoc. After editing a .proto file, run `make proto` and commit the .proto
# together with the regenerated *_pb2.py, *_pb2.pyi and *_pb2_grpc.py files.
# tests/unit/test_proto_drift.py fails when they are out of step.

# The grpcio-tools release the committed modules come from (one source of truth:
# GRPCIO_TOOLS_VERSION in scripts/gen_proto.py).
PROTO_TOOLS_VERSION := $(shell sed -n 's/^GRPCIO_TOOLS_VERSION = "\(.*\)"$$/\1/p' scripts/gen_proto.py)

.PHONY: proto proto-check

# grpcio-tools only runs protoc (a self-contained C extension); --no-deps keeps
# it from moving the protobuf/grpcio versions the package itself is tested with.
$(VENV)/.proto-tools-$(PROTO_TOOLS_VERSION): | $(BIN)/python
	$(BIN)/pip install --quiet --no-deps 'grpcio-tools==$(PROTO_TOOLS_VERSION)'
	touch $@

## proto: regenerate src/unitserve/proto/**/*_pb2*.py(i) from the .proto files
proto: $(VENV)/.proto-tools-$(PROTO_TOOLS_VERSION)
	$(BIN)/python scripts/gen_proto.py

## proto-check: fail if the committed generated modules are stale
proto-check: $(VENV)/.proto-tools-$(PROTO_TOOLS_VERSION)
	$(BIN)/python scripts/gen_proto.py --check
