"""A Python client for a model served by unitserve (or any Seldon 1.x microservice, or
an Open Inference Protocol server), over REST (httpx) or gRPC (grpcio).

    from unitserve.client import Client
    with Client("localhost:9000") as c:
        answer = c.predict(np.array([[1.0, 2.0]]))
        answer.data           # numpy array
    with Client("localhost:5000", transport="grpc") as c: ...
    with Client("localhost:9000", protocol="v2", model="iris") as c:
        c.infer({"x": np.ones((1, 4), np.float32)}).outputs

`AsyncClient` is the same for asyncio (``await c.predict(...)``). A client keeps its
connections open between calls (a pool, keep-alive); a call that finds no server, loses
its connection or is answered 503 (gRPC UNAVAILABLE) is tried again, up to `retries`
times, waiting longer each time; any other failure raises `ClientError` at once.
"""

from __future__ import annotations

from unitserve.client._async import AsyncClient
from unitserve.client._failures import ClientError
from unitserve.client._oip_wire import InferAnswer
from unitserve.client._seldon_wire import Answer
from unitserve.client._sync import Client

__all__ = ["Answer", "AsyncClient", "Client", "ClientError", "InferAnswer"]
