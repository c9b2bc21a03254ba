"""Served models: one model's object, engine, invoker and state (`ServedModel`), what
belongs to one model apart from the server (`ModelSettings`), the models a server
holds by name and version (`ModelRegistry`), and the Open Inference Protocol over
them (`DataPlane`), which the REST and gRPC transports call."""
