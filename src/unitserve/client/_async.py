"""`AsyncClient`: the asyncio twin of `Client`, the same calls awaited."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from grpc import aio as grpc_aio

from unitserve.client import _seldon_wire as seldon
from unitserve.client._calls import Call, rest_result
from unitserve.client._failures import ClientError, grpc_errors, http_errors
from unitserve.client._oip_wire import InferAnswer
from unitserve.client._seldon_wire import Answer
from unitserve.client._sending import GRPC_OPTIONS, Sender
from unitserve.proto import prediction_pb2


class AsyncClient(Sender):
    """The asyncio twin of `Client`: the same methods, awaited. Use it in an
    ``async with`` block, or await `close`."""

    def __init__(self, url_or_host: str = "localhost", *args: Any, **kwargs: Any) -> None:
        super().__init__(url_or_host, *args, **kwargs)
        self._http: httpx.AsyncClient | None = None
        self._channel: grpc_aio.Channel | None = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def predict(self, data: Any = None, **kw: Any) -> Answer:
        """As `Client.predict`."""
        result: Answer = await self._run(self._seldon("predict", self._message(data, kw)))
        return result

    async def transform_input(self, data: Any = None, **kw: Any) -> Answer:
        result: Answer = await self._run(self._seldon("transform_input", self._message(data, kw)))
        return result

    async def transform_output(self, data: Any = None, **kw: Any) -> Answer:
        call = self._seldon("transform_output", self._message(data, kw))
        result: Answer = await self._run(call)
        return result

    async def route(self, data: Any = None, **kw: Any) -> Answer:
        result: Answer = await self._run(self._seldon("route", self._message(data, kw)))
        return result

    async def aggregate(self, messages: Sequence[Any], **kw: Any) -> Answer:
        body = {"seldonMessages": [seldon.as_dict(m) for m in messages]}
        call = self._seldon("aggregate", body, prediction_pb2.SeldonMessageList)
        result: Answer = await self._run(call)
        return result

    async def feedback(
        self,
        request: Any,
        response: Any = None,
        reward: float = 0.0,
        truth: Any = None,
        routing: int | None = None,
    ) -> Answer:
        body = seldon.feedback(request, response, reward, truth, routing)
        result: Answer = await self._run(self._seldon("feedback", body, prediction_pb2.Feedback))
        return result

    async def metadata(self) -> dict[str, Any]:
        return dict(await self._run(self._metadata_call()))

    async def health(self) -> bool:
        try:
            return bool(await self._run(self._health_call(), retries=0))
        except ClientError:
            return False

    async def infer(
        self,
        inputs: Any,
        *,
        model: str | None = None,
        version: str | None = None,
        outputs: Sequence[str] | None = None,
        binary_data: bool = False,
        parameters: Mapping[str, Any] | None = None,
        request_id: str | None = None,
    ) -> InferAnswer:
        """As `Client.infer`."""
        call = self._infer_call(
            inputs, model, version, outputs, binary_data, parameters, request_id
        )
        result: InferAnswer = await self._run(call)
        return result

    async def model_metadata(self, model: str | None = None, version: str | None = None) -> Any:
        return await self._run(self._model_metadata_call(model, version))

    async def ready(self, model: str | None = None, version: str | None = None) -> bool:
        try:
            return bool(await self._run(self._ready_call(model, version), retries=0))
        except ClientError:
            return False

    async def _run(self, call: Call, retries: int | None = None) -> Any:
        tries = self._tries(retries)
        for attempt in range(tries):
            try:
                return await self._once(call)
            except ClientError as exc:
                delay = self._retry_delay(exc, attempt, tries)
                if delay is None:
                    raise
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _once(self, call: Call) -> Any:
        if self.transport == "rest":
            return await self._rest(call)
        return await self._grpc(call)

    async def _rest(self, call: Call) -> Any:
        if self._http is None:
            self._http = httpx.AsyncClient(**self._http_options())
        with http_errors(call.name):
            resp = await self._http.request(
                call.http, call.path, content=call.body, headers=call.headers
            )
        return rest_result(call, resp)

    async def _grpc(self, call: Call) -> Any:
        if self._channel is None:
            self._channel = grpc_aio.insecure_channel(self.target, options=GRPC_OPTIONS)
        stub = self._stub(self._channel, call)
        with grpc_errors():
            reply = await stub(call.request(), timeout=self.timeout, metadata=self._grpc_metadata())
        return call.grpc_answer(reply)
