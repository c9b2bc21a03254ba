"""`Client`: the synchronous twin, which sends each call and waits for it."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
import httpx

from unitserve.client import _seldon_wire as seldon
from unitserve.client._calls import Call, rest_result
from unitserve.client._failures import ClientError, grpc_errors, http_errors
from unitserve.client._oip_wire import InferAnswer
from unitserve.client._seldon_wire import Answer
from unitserve.client._sending import GRPC_OPTIONS, Sender
from unitserve.proto import prediction_pb2


class Client(Sender):
    """A synchronous client; see the module's description. Use it in a ``with`` block,
    or call `close`."""

    def __init__(self, url_or_host: str = "localhost", *args: Any, **kwargs: Any) -> None:
        super().__init__(url_or_host, *args, **kwargs)
        self._http: httpx.Client | None = None
        self._channel: grpc.Channel | None = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    # ------------------------------------------------------------------ Seldon

    def predict(self, data: Any = None, **kw: Any) -> Answer:
        """Predict on `data` (an array, str or bytes). Keywords: ``payload``
        (ndarray/tensor/tftensor), ``names``, ``str_data``, ``bin_data``, ``json_data``,
        ``meta``, ``tags``, or ``raw`` (a whole SeldonMessage dict, sent as is)."""
        return self._run(self._seldon("predict", self._message(data, kw)))

    def transform_input(self, data: Any = None, **kw: Any) -> Answer:
        return self._run(self._seldon("transform_input", self._message(data, kw)))

    def transform_output(self, data: Any = None, **kw: Any) -> Answer:
        return self._run(self._seldon("transform_output", self._message(data, kw)))

    def route(self, data: Any = None, **kw: Any) -> Answer:
        return self._run(self._seldon("route", self._message(data, kw)))

    def aggregate(self, messages: Sequence[Any], **kw: Any) -> Answer:
        """Combine `messages` (arrays, SeldonMessage dicts or Answers)."""
        body = {"seldonMessages": [seldon.as_dict(m) for m in messages]}
        return self._run(self._seldon("aggregate", body, prediction_pb2.SeldonMessageList))

    def feedback(
        self,
        request: Any,
        response: Any = None,
        reward: float = 0.0,
        truth: Any = None,
        routing: int | None = None,
    ) -> Answer:
        body = seldon.feedback(request, response, reward, truth, routing)
        return self._run(self._seldon("feedback", body, prediction_pb2.Feedback))

    def metadata(self) -> dict[str, Any]:
        return dict(self._run(self._metadata_call()))

    def health(self) -> bool:
        """True when the server answers its health check (no retries)."""
        try:
            return bool(self._run(self._health_call(), retries=0))
        except ClientError:
            return False

    # ------------------------------------------------------------------ OIP

    def infer(
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
        """Run the model on `inputs` (arrays by name, a list, or one array) with the Open
        Inference Protocol; `binary_data` sends and receives tensors as raw bytes."""
        call = self._infer_call(
            inputs, model, version, outputs, binary_data, parameters, request_id
        )
        result: InferAnswer = self._run(call)
        return result

    def model_metadata(self, model: str | None = None, version: str | None = None) -> Any:
        return self._run(self._model_metadata_call(model, version))

    def ready(self, model: str | None = None, version: str | None = None) -> bool:
        try:
            return bool(self._run(self._ready_call(model, version), retries=0))
        except ClientError:
            return False

    # ------------------------------------------------------------------ sending

    def _run(self, call: Call, retries: int | None = None) -> Any:
        tries = self._tries(retries)
        for attempt in range(tries):
            try:
                return self._once(call)
            except ClientError as exc:
                delay = self._retry_delay(exc, attempt, tries)
                if delay is None:
                    raise
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _once(self, call: Call) -> Any:
        if self.transport == "rest":
            if self._http is None:
                self._http = httpx.Client(**self._http_options())
            with http_errors(call.name):
                resp = self._http.request(
                    call.http, call.path, content=call.body, headers=call.headers
                )
            return rest_result(call, resp)
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.target, options=GRPC_OPTIONS)
        stub = self._stub(self._channel, call)
        with grpc_errors():
            reply = stub(call.request(), timeout=self.timeout, metadata=self._grpc_metadata())
        return call.grpc_answer(reply)
