"""Transports: REST (an ASGI app on uvicorn) and gRPC, both calling the engine."""
