"""``inference.GRPCInferenceService`` in-process: every RPC and every error code, with
the handlers a worker registers, driven without a socket (engine_harness)."""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
import pytest

from unitserve import SeldonMicroserviceException
from unitserve.proto import inference_pb2 as pb
from unitserve.transport.grpc.inference import OPERATION_LABEL, PROTOCOL_LABEL

from .engine_harness import RpcError, fixture_model, serving

NAME = "Identity"


def infer_request(
    inputs: list[tuple[str, np.ndarray, str]], raw: bool = False, **fields: Any
) -> Any:
    """A ModelInferRequest holding `inputs` (name, array, datatype), typed or raw."""
    request = pb.ModelInferRequest(model_name=fields.pop("model_name", NAME), **fields)
    for name, arr, datatype in inputs:
        tensor = request.inputs.add(name=name, datatype=datatype, shape=arr.shape)
        flat = arr.reshape(-1)
        if raw:
            if datatype == "BYTES":
                parts = []
                for item in flat.tolist():
                    parts += [len(item).to_bytes(4, "little"), item]
                request.raw_input_contents.append(b"".join(parts))
            else:
                request.raw_input_contents.append(
                    flat.astype(flat.dtype.newbyteorder("<")).tobytes()
                )
        else:
            field = {
                "BOOL": "bool_contents",
                "INT8": "int_contents",
                "INT16": "int_contents",
                "INT32": "int_contents",
                "INT64": "int64_contents",
                "UINT8": "uint_contents",
                "UINT16": "uint_contents",
                "UINT32": "uint_contents",
                "UINT64": "uint64_contents",
                "FP32": "fp32_contents",
                "FP64": "fp64_contents",
                "BYTES": "bytes_contents",
            }[datatype]
            getattr(tensor.contents, field).extend(flat.tolist())
    return request


def output_array(answer: Any, i: int = 0) -> np.ndarray:
    """Output `i` of a ModelInferResponse as an array, from raw or typed contents."""
    out = answer.outputs[i]
    dtypes = {
        "BOOL": np.bool_,
        "INT8": np.int8,
        "INT16": np.int16,
        "INT32": np.int32,
        "INT64": np.int64,
        "UINT8": np.uint8,
        "UINT16": np.uint16,
        "UINT32": np.uint32,
        "UINT64": np.uint64,
        "FP16": np.float16,
        "FP32": np.float32,
        "FP64": np.float64,
    }
    if answer.raw_output_contents:
        buf = answer.raw_output_contents[i]
        if out.datatype == "BYTES":
            items, pos = [], 0
            while pos < len(buf):
                n = int.from_bytes(buf[pos : pos + 4], "little")
                items.append(buf[pos + 4 : pos + 4 + n])
                pos += 4 + n
            return np.array(items, dtype=object).reshape(tuple(out.shape))
        return np.frombuffer(buf, dtype=np.dtype(dtypes[out.datatype]).newbyteorder("<")).reshape(
            tuple(out.shape)
        )
    fields = {f.name: v for f, v in out.contents.ListFields()}
    (values,) = fields.values() if fields else ([],)
    if out.datatype == "BYTES":
        return np.array(list(values), dtype=object).reshape(tuple(out.shape))
    return np.array(list(values), dtype=dtypes[out.datatype]).reshape(tuple(out.shape))


def rpc_error(harness: Any, method: str, request: Any) -> RpcError:
    with pytest.raises(RpcError) as err:
        harness.call_v2(method, request)
    return err.value


@pytest.fixture
def identity():
    with serving(fixture_model("Identity")) as h:
        yield h


# ----------------------------------------------------------------------------- health, metadata


def test_live_ready_and_server_metadata(identity):
    assert identity.call_v2("ServerLive", {}).live is True
    assert identity.call_v2("ServerReady", {}).ready is True
    assert identity.call_v2("ModelReady", {"name": NAME}).ready is True
    meta = identity.call_v2("ServerMetadata", {})
    assert meta.name == "unitserve" and meta.version
    assert set(meta.extensions) == {"binary_tensor_data", "model_repository"}


def test_not_ready_before_load_finished(identity):
    identity.model.state.mark_loading()
    assert identity.call_v2("ServerReady", {}).ready is False
    assert identity.call_v2("ModelReady", {"name": NAME}).ready is False
    request = infer_request([("x", np.array([1.0]), "FP64")])
    err = rpc_error(identity, "ModelInfer", request)
    assert err.code == grpc.StatusCode.UNAVAILABLE and "load()" in err.details


def test_unknown_model_and_version_are_not_found(identity):
    for method, request in [
        ("ModelReady", {"name": "other"}),
        ("ModelMetadata", {"name": "other"}),
        ("ModelReady", {"name": NAME, "version": "7"}),
        ("RepositoryModelLoad", {"model_name": "other"}),
        ("RepositoryModelUnload", {"model_name": ""}),
    ]:
        err = rpc_error(identity, method, request)
        assert err.code == grpc.StatusCode.NOT_FOUND, (method, err)
        assert "Identity" in err.details
    err = rpc_error(identity, "ModelInfer", infer_request([], model_name="other"))
    assert err.code == grpc.StatusCode.NOT_FOUND
    assert err.details == "unknown model 'other': this server serves 'Identity'"


def test_model_name_and_version_from_the_settings():
    env = {"UNITSERVE_MODEL_NAME": "iris", "UNITSERVE_MODEL_VERSION": "3"}
    with serving(fixture_model("Identity"), env) as h:
        assert h.call_v2("ModelReady", {"name": "iris", "version": "3"}).ready
        assert h.call_v2("ModelReady", {"name": "iris"}).ready
        err = rpc_error(h, "ModelReady", {"name": "iris", "version": "2"})
        assert err.code == grpc.StatusCode.NOT_FOUND and "only version '3'" in err.details
        answer = h.call_v2(
            "ModelInfer", infer_request([("x", np.array([1.5]), "FP64")], model_name="iris")
        )
        assert (answer.model_name, answer.model_version) == ("iris", "3")
        meta = h.call_v2("ModelMetadata", {"name": "iris"})
        assert (meta.name, list(meta.versions)) == ("iris", ["3"])


def test_model_metadata_from_init_metadata():
    with serving(fixture_model("Metadata")) as h:
        meta = h.call_v2("ModelMetadata", {"name": "Metadata"})
    # The metadata's own versions are not listed: no path would accept them. Only a
    # configured --model-version is (see the test above).
    assert meta.name == "Metadata" and list(meta.versions) == []
    assert meta.platform == "unitserve"
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("x", "FP64", [1, 4])]
    assert list(meta.outputs) == []  # a Seldon-kind output has no protocol form


def test_model_metadata_from_model_metadata_variable():
    env = {
        "MODEL_METADATA": (
            '{"platform": "sk", "inputs": [{"name": "a", "datatype": "FP32", "shape": [-1, 3]}],'
            ' "outputs": [{"name": "p", "datatype": "INT64", "shape": [-1]}]}'
        )
    }
    with serving(fixture_model("Identity"), env) as h:
        meta = h.call_v2("ModelMetadata", {"name": NAME})
    assert meta.platform == "sk"
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.outputs] == [("p", "INT64", [-1])]
    assert list(meta.inputs[0].shape) == [-1, 3]


def test_invalid_metadata_is_internal_with_a_sentence():
    with serving(fixture_model("Metadata", variant="invalid")) as h:
        err = rpc_error(h, "ModelMetadata", {"name": "Metadata"})
    assert err.code == grpc.StatusCode.INTERNAL and "init_metadata()" in err.details


# ----------------------------------------------------------------------------- inference

NUMERIC = [
    ("BOOL", np.array([[True, False, True]])),
    ("UINT8", np.array([[0, 7, 255]], dtype=np.uint8)),
    ("UINT16", np.array([[0, 7, 65535]], dtype=np.uint16)),
    ("UINT32", np.array([[0, 7, 2**32 - 1]], dtype=np.uint32)),
    ("UINT64", np.array([[0, 7, 2**64 - 1]], dtype=np.uint64)),
    ("INT8", np.array([[-128, 0, 127]], dtype=np.int8)),
    ("INT16", np.array([[-32768, 0, 32767]], dtype=np.int16)),
    ("INT32", np.array([[-(2**31), 0, 2**31 - 1]], dtype=np.int32)),
    ("INT64", np.array([[-(2**63), 0, 2**63 - 1]], dtype=np.int64)),
    ("FP32", np.array([[1.5, -2.25, 3e38]], dtype=np.float32)),
    ("FP64", np.array([[1.5, -2.25, 1e300]], dtype=np.float64)),
]


@pytest.mark.parametrize("raw", [False, True], ids=["typed", "raw"])
@pytest.mark.parametrize(("datatype", "arr"), NUMERIC, ids=[d for d, _ in NUMERIC])
def test_infer_every_datatype(identity, datatype, arr, raw):
    answer = identity.call_v2("ModelInfer", infer_request([("x", arr, datatype)], raw=raw, id="r1"))
    assert answer.id == "r1" and answer.model_name == NAME
    assert [(o.name, o.datatype, list(o.shape)) for o in answer.outputs] == [
        ("output-0", datatype, [1, 3])
    ]
    assert bool(answer.raw_output_contents) is raw  # raw in, raw out
    got = output_array(answer)
    assert got.dtype == arr.dtype and (got == arr).all()


def test_fp16_travels_raw_only(identity):
    arr = np.array([1.5, -2.0], dtype=np.float16)
    answer = identity.call_v2("ModelInfer", infer_request([("x", arr, "FP16")], raw=True))
    assert answer.outputs[0].datatype == "FP16" and (output_array(answer) == arr).all()
    typed = infer_request([("x", np.array([1.0]), "FP64")])
    typed.inputs[0].datatype = "FP16"
    err = rpc_error(identity, "ModelInfer", typed)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "raw_input_contents" in err.details


@pytest.mark.parametrize("raw", [False, True], ids=["typed", "raw"])
def test_infer_bytes(identity, raw):
    arr = np.array([b"one", b"", b"\xff\x00"], dtype=object)
    answer = identity.call_v2("ModelInfer", infer_request([("t", arr, "BYTES")], raw=raw))
    assert answer.outputs[0].datatype == "BYTES"
    assert output_array(answer).tolist() == [b"one", b"", b"\xff\x00"]


def test_several_inputs_and_requested_outputs(identity):
    request = infer_request(
        [("a", np.array([1, 2], dtype=np.int32), "INT32"), ("b", np.array([0.5]), "FP64")]
    )
    answer = identity.call_v2("ModelInfer", request)
    assert [o.name for o in answer.outputs] == ["a", "b"]
    request.outputs.add(name="b")
    answer = identity.call_v2("ModelInfer", request)
    assert [o.name for o in answer.outputs] == ["b"]
    del request.outputs[:]
    request.outputs.add(name="c")
    err = rpc_error(identity, "ModelInfer", request)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "'c'" in err.details


def test_id_generated_when_absent(identity):
    answer = identity.call_v2("ModelInfer", infer_request([("x", np.array([1.0]), "FP64")]))
    assert len(answer.id) == 36


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda r: r.inputs[0].ClearField("datatype"), "datatype ''"),
        (lambda r: setattr(r.inputs[0], "datatype", "BF16"), "BF16"),
        (lambda r: r.inputs[0].shape.append(2), "needs 6"),
        (lambda r: r.inputs[0].contents.int64_contents.append(1), "fp64_contents"),
        (lambda r: r.raw_input_contents.append(b"\0" * 24), "raw_input_contents"),
        (lambda r: r.ClearField("inputs"), "at least one tensor"),
        (lambda r: r.inputs.add(name="x", datatype="FP64"), "more than once"),
        (lambda r: setattr(r.inputs[0], "name", ""), "needs a name"),
        (lambda r: r.inputs[0].shape.extend([1 << 40, 1 << 40]), "describes"),
    ],
    ids=[
        "no-datatype",
        "bf16",
        "shape-mismatch",
        "wrong-field",
        "contents-and-raw",
        "no-inputs",
        "duplicate",
        "no-name",
        "huge-shape",
    ],
)
def test_bad_requests_are_invalid_argument(identity, mutate, words):
    request = infer_request([("x", np.array([1.0, 2.0, 3.0]), "FP64")])
    mutate(request)
    err = rpc_error(identity, "ModelInfer", request)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT, err
    assert words in err.details


def test_raw_buffer_count_and_size_are_checked(identity):
    request = infer_request([("x", np.array([1.0, 2.0]), "FP64")], raw=True)
    request.raw_input_contents[0] = b"\0" * 15
    err = rpc_error(identity, "ModelInfer", request)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "15 bytes" in err.details
    request.raw_input_contents.append(b"")
    err = rpc_error(identity, "ModelInfer", request)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "2 buffers" in err.details


def test_bytes_that_do_not_parse_are_invalid_argument(identity):
    for method in ("ModelInfer", "ModelReady", "RepositoryIndex"):
        with pytest.raises(RpcError) as err:
            identity.call_v2_bytes(method, b"\xff\xff\xff")
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "is not a valid inference." in err.value.details


def test_non_utf8_bytes_asked_as_str(identity):
    request = infer_request([("t", np.array([b"\xff"], dtype=object), "BYTES")])
    request.inputs[0].parameters["content_type"].string_param = "str"
    err = rpc_error(identity, "ModelInfer", request)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "UTF-8" in err.details


def test_user_errors_keep_their_codes():
    with serving(fixture_model("Failing")) as h:
        cases = [
            ("seldon", grpc.StatusCode.PERMISSION_DENIED, "not for you"),
            ("default", grpc.StatusCode.INVALID_ARGUMENT, "bad input, says the model"),
            (None, grpc.StatusCode.INTERNAL, "predict failed on purpose"),
        ]
        for mode, code, details in cases:
            request = infer_request([("x", np.array([1.0]), "FP64")], model_name="Failing")
            if mode:
                request.parameters["feature_names"].string_param = f'["{mode}"]'
            err = rpc_error(h, "ModelInfer", request)
            assert (err.code, err.details) == (code, details)


def test_tags_and_feature_names_reach_the_model():
    class Echo:
        def predict(self, X, names, meta):
            return {"names": np.array(names, dtype=object), "tag": np.array([meta["tags"]["k"]])}

        def tags(self):
            return {"model": "echo"}

    with serving(Echo()) as h:
        request = infer_request([("x", np.array([[1.0, 2.0]]), "FP64")], model_name="Echo")
        request.inputs[0].parameters["feature_names"].string_param = '["a", "b"]'
        request.parameters["k"].int64_param = 5
        answer = h.call_v2("ModelInfer", request)
    assert output_array(answer, 0).tolist() == [b"a", b"b"]
    assert output_array(answer, 1).tolist() == [5]
    assert answer.parameters["model"].string_param == "echo"
    assert answer.parameters["k"].int64_param == 5


def test_raw_method_gets_the_infer_request():
    class RawV2:
        def predict_raw(self, request):
            answer = pb.ModelInferResponse(model_name="raw", id=request.id)
            answer.outputs.add(
                name="n", datatype="INT64", shape=[1]
            ).contents.int64_contents.append(len(request.inputs))
            return answer

    with serving(RawV2()) as h:
        answer = h.call_v2(
            "ModelInfer",
            infer_request([("x", np.array([1.0]), "FP64")], model_name="RawV2", id="q"),
        )
    assert (answer.model_name, answer.id) == ("raw", "q")
    assert list(answer.outputs[0].contents.int64_contents) == [1]


def test_raw_method_gets_a_message_for_raw_contents_too():
    # Requests of the common form are read without protobuf objects, but a raw method
    # is promised the ModelInferRequest itself.
    seen = []

    class RawV2:
        def predict_raw(self, request):
            seen.append(type(request))
            return pb.ModelInferResponse(model_name="raw", id=request.id)

    with serving(RawV2()) as h:
        request = infer_request([("x", np.array([1.0]), "FP64")], raw=True, model_name="RawV2")
        answer = h.call_v2("ModelInfer", request)
    assert answer.model_name == "raw"
    assert seen == [pb.ModelInferRequest]


def test_common_and_general_requests_answer_alike(identity):
    # The same raw request with and without a request parameter: the first is read
    # without protobuf objects, the second by the general codec.
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    plain = infer_request([("x", arr, "FP32")], raw=True, id="same")
    tagged = infer_request([("x", arr, "FP32")], raw=True, id="same")
    tagged.parameters["binary_data_output"].bool_param = True  # steers, not a tag
    answers = [identity.call_v2_bytes("ModelInfer", r.SerializeToString()) for r in (plain, tagged)]
    assert answers[0] == answers[1]
    assert output_array(pb.ModelInferResponse.FromString(answers[0]), 0).tolist() == arr.tolist()


def test_async_model_answers():
    class Async:
        async def predict(self, X, names):
            return X * 2

    with serving(Async()) as h:
        answer = h.call_v2(
            "ModelInfer", infer_request([("x", np.array([1.5]), "FP64")], model_name="Async")
        )
    assert output_array(answer).tolist() == [3.0]


def test_service_types():
    with serving(fixture_model("Transformer"), flags={"service_type": "TRANSFORMER"}) as h:
        answer = h.call_v2(
            "ModelInfer",
            infer_request([("x", np.array([1.0]), "FP64")], model_name="Transformer"),
        )
        assert output_array(answer).tolist() == [2.0]
    for kind in ("ROUTER", "COMBINER"):
        with serving(fixture_model("Router"), flags={"service_type": kind}) as h:
            err = rpc_error(
                h,
                "ModelInfer",
                infer_request([("x", np.array([1.0]), "FP64")], model_name="Router"),
            )
        assert err.code == grpc.StatusCode.FAILED_PRECONDITION and kind in err.details


def test_user_exception_status_codes_map():
    class Picky:
        def predict(self, X, names):
            raise SeldonMicroserviceException("too big for me", status_code=413)

    with serving(Picky()) as h:
        err = rpc_error(
            h, "ModelInfer", infer_request([("x", np.array([1.0]), "FP64")], model_name="Picky")
        )
    assert (err.code, err.details) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "too big for me")


# ----------------------------------------------------------------------------- repository


def test_repository_unload_and_load(identity):
    index = identity.call_v2("RepositoryIndex", {})
    assert [(m.name, m.state) for m in index.models] == [(NAME, "READY")]
    identity.call_v2("RepositoryModelUnload", {"model_name": NAME})
    assert identity.model.user is None  # released
    # One state for the worker: the REST side sees the unload too.
    assert identity.request("GET", f"/v2/models/{NAME}/ready").status_code == 503
    assert identity.call_v2("ModelReady", {"name": NAME}).ready is False
    assert identity.call_v2("ServerReady", {}).ready is False
    (entry,) = identity.call_v2("RepositoryIndex", {}).models
    assert entry.state == "UNAVAILABLE" and "unloaded" in entry.reason
    assert list(identity.call_v2("RepositoryIndex", {"ready": True}).models) == []
    err = rpc_error(identity, "ModelInfer", infer_request([("x", np.array([1.0]), "FP64")]))
    assert err.code == grpc.StatusCode.UNAVAILABLE and "unloaded" in err.details
    # the Seldon protocol serves the same model: it is not ready either
    with pytest.raises(RpcError) as raised:
        identity.call("Model/Predict", {"data": {"ndarray": [1]}})
    err = raised.value
    assert err.code == grpc.StatusCode.UNAVAILABLE and "unloaded" in err.details
    identity.call_v2("RepositoryModelLoad", {"model_name": NAME})
    assert identity.call_v2("ModelReady", {"name": NAME}).ready is True
    assert identity.call_v2("ModelInfer", infer_request([("x", np.array([1.0]), "FP64")]))


def test_version_in_the_index():
    with serving(fixture_model("Identity"), {"UNITSERVE_MODEL_VERSION": "2"}) as h:
        (entry,) = h.call_v2("RepositoryIndex", {}).models
    assert (entry.name, entry.version, entry.state) == (NAME, "2", "READY")


# ----------------------------------------------------------------------------- metrics


class _Requests:
    def __init__(self) -> None:
        self.finished: list[tuple[str, str, str, str]] = []

    def request_started(self, protocol: str) -> None:
        pass

    def request_finished(
        self, operation: str, protocol: str, code: str, seconds: float, model: str
    ) -> None:
        self.finished.append((operation, protocol, code, model))


def test_infer_requests_are_counted(identity):
    requests = _Requests()
    identity.accounting.metrics = requests
    identity.call_v2("ModelInfer", infer_request([("x", np.array([1.0]), "FP64")]))
    rpc_error(identity, "ModelInfer", infer_request([], model_name="nope"))
    identity.call_v2("ServerLive", {})  # probes are not counted
    # the model label is the served model's name; a name it does not serve gets none
    assert requests.finished == [
        (OPERATION_LABEL, PROTOCOL_LABEL, "OK", identity.model.name),
        (OPERATION_LABEL, PROTOCOL_LABEL, "NOT_FOUND", ""),
    ]
