"""The Open Inference Protocol's error paths, one table run over both transports: the
same request gets the same answer class and the same sentence over REST and gRPC
(each transport only writes it in its own form: a status and ``{"error": ...}``, or
a status code and its details)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from .engine_harness import Harness, RpcError

NAME = "V2Model"
X = {"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}


@dataclass(frozen=True)
class Failure:
    """What a client saw: the HTTP status or gRPC code, and the sentence."""

    code: str
    sentence: str


class Rest:
    name = "rest"
    codes = {
        400: "INVALID_ARGUMENT",
        404: "NOT_FOUND",
        500: "INTERNAL",
        503: "UNAVAILABLE",
    }

    def __init__(self, h: Harness) -> None:
        self.h = h

    def _failure(self, r: Any) -> Failure:
        assert r.status_code >= 400, r.text
        return Failure(self.codes[r.status_code], r.json()["error"])

    def infer(self, model: str, version: str = "") -> Failure:
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "")
        return self._failure(self.h.post(path + "/infer", json={"inputs": [X]}))

    def metadata(self, model: str, version: str = "") -> Failure:
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "")
        return self._failure(self.h.get(path))

    def ready(self, model: str) -> Failure:
        return self._failure(self.h.get(f"/v2/models/{model}/ready"))

    def load(self, model: str, parameters: dict[str, str] | None = None) -> Failure:
        body = {"parameters": parameters} if parameters else {}
        return self._failure(self.h.post(f"/v2/repository/models/{model}/load", json=body))

    def unload(self, model: str) -> Failure:
        return self._failure(self.h.post(f"/v2/repository/models/{model}/unload"))

    def do_unload(self, model: str) -> None:
        assert self.h.post(f"/v2/repository/models/{model}/unload").status_code == 200


class Grpc:
    name = "grpc"

    def __init__(self, h: Harness) -> None:
        self.h = h

    def _failure(self, method: str, request: dict[str, Any]) -> Failure:
        with pytest.raises(RpcError) as raised:
            self.h.call_v2(method, request)
        return Failure(raised.value.code.name, raised.value.details)

    def infer(self, model: str, version: str = "") -> Failure:
        request = {
            "model_name": model,
            "model_version": version,
            "inputs": [
                {"name": "x", "shape": [1], "datatype": "FP32", "contents": {"fp32_contents": [1]}}
            ],
        }
        return self._failure("ModelInfer", request)

    def metadata(self, model: str, version: str = "") -> Failure:
        return self._failure("ModelMetadata", {"name": model, "version": version})

    def ready(self, model: str) -> Failure:
        return self._failure("ModelReady", {"name": model})

    def load(self, model: str, parameters: dict[str, str] | None = None) -> Failure:
        request: dict[str, Any] = {"model_name": model}
        if parameters:
            request["parameters"] = {k: {"string_param": v} for k, v in parameters.items()}
        return self._failure("RepositoryModelLoad", request)

    def unload(self, model: str) -> Failure:
        return self._failure("RepositoryModelUnload", {"model_name": model})

    def do_unload(self, model: str) -> None:
        self.h.call_v2("RepositoryModelUnload", {"model_name": model})


Transport = Rest | Grpc


@pytest.fixture(params=[Rest, Grpc], ids=["rest", "grpc"])
def transport(request: Any, model: Any) -> Transport:
    h = model("V2Model", env={"UNITSERVE_MODEL_VERSION": "1"})
    return request.param(h)


# Each case: what the client does, and what it must see (the same over both).
CASES: dict[str, tuple[Callable[[Transport], Failure], Failure]] = {
    "infer-unknown-model": (
        lambda t: t.infer("other"),
        Failure("NOT_FOUND", f"unknown model 'other': this server serves {NAME!r}"),
    ),
    "infer-unknown-version": (
        lambda t: t.infer(NAME, "9"),
        Failure("NOT_FOUND", f"unknown version '9' of model {NAME!r}: it has only version '1'"),
    ),
    "metadata-unknown-model": (
        lambda t: t.metadata("other"),
        Failure("NOT_FOUND", f"unknown model 'other': this server serves {NAME!r}"),
    ),
    "metadata-unknown-version": (
        lambda t: t.metadata(NAME, "9"),
        Failure("NOT_FOUND", f"unknown version '9' of model {NAME!r}: it has only version '1'"),
    ),
    "ready-unknown-model": (
        lambda t: t.ready("other"),
        Failure("NOT_FOUND", f"unknown model 'other': this server serves {NAME!r}"),
    ),
    "load-unknown-model": (
        lambda t: t.load("other"),
        Failure("NOT_FOUND", f"unknown model 'other': this server serves {NAME!r}"),
    ),
    "unload-unknown-model": (
        lambda t: t.unload("other"),
        Failure("NOT_FOUND", f"unknown model 'other': this server serves {NAME!r}"),
    ),
    "load-with-a-configuration": (
        lambda t: t.load(NAME, {"config": "{}"}),
        Failure(
            "INVALID_ARGUMENT",
            "loading with a configuration or files is not supported: this server loads "
            "the models it was started with",
        ),
    ),
    "load-with-files": (
        lambda t: t.load(NAME, {"file:1/model.onnx": "x"}),
        Failure(
            "INVALID_ARGUMENT",
            "loading with a configuration or files is not supported: this server loads "
            "the models it was started with",
        ),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_error_paths_answer_alike_over_both_transports(transport: Transport, case: str) -> None:
    act, expected = CASES[case]
    assert act(transport) == expected


def test_an_unloaded_model_is_unavailable_with_one_sentence(transport: Transport) -> None:
    transport.do_unload(NAME)
    expected = Failure(
        "UNAVAILABLE",
        f"model {NAME!r} is not ready: unloaded through the repository extension: "
        "load it to serve it again",
    )
    assert transport.infer(NAME) == expected
    assert transport.metadata(NAME) == expected


def test_invalid_metadata_has_one_sentence(model: Any) -> None:
    sentences = set()
    for kind in (Rest, Grpc):
        h = model("V2Model", metadata=None)  # metadata that broke the schema at start-up
        sentences.add(kind(h).metadata(NAME))
    assert sentences == {
        Failure(
            "INTERNAL",
            "the model's metadata is invalid: init_metadata() or MODEL_METADATA does not "
            "follow the metadata schema (the server's log says why)",
        )
    }


def test_both_transports_log_loads_and_unloads(
    transport: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="unitserve")
    transport.do_unload(NAME)
    if isinstance(transport, Rest):
        assert transport.h.post(f"/v2/repository/models/{NAME}/load").status_code == 200
    else:
        transport.h.call_v2("RepositoryModelLoad", {"model_name": NAME})
    logged = [r.getMessage() for r in caplog.records]
    assert f"model {NAME!r} unloaded through the model repository" in logged
    assert f"model {NAME!r} loaded through the model repository" in logged
