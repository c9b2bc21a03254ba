"""The Open Inference Protocol gRPC messages: our .proto's wire numbers, and
ModelInferRequest / ModelInferResponse ⇄ Message / Reply."""

from __future__ import annotations

import re

import numpy as np
import pytest

from unitserve.calls import run_sync
from unitserve.engine import Engine
from unitserve.errors import BadModelOutput, BadRequest, MalformedMessage
from unitserve.message import JSON, NDARRAY, Reply
from unitserve.proto import _pool
from unitserve.proto import inference_pb2 as pb
from unitserve.protocol.v2.proto_codec import V2ProtoCodec, parameters_to_dict

# The numbers clients depend on (the protocol's own .proto and Triton's).
FIELD_NUMBERS = {
    "ModelInferRequest": {
        "model_name": 1,
        "model_version": 2,
        "id": 3,
        "parameters": 4,
        "inputs": 5,
        "outputs": 6,
        "raw_input_contents": 7,
    },
    "ModelInferRequest.InferInputTensor": {
        "name": 1,
        "datatype": 2,
        "shape": 3,
        "parameters": 4,
        "contents": 5,
    },
    "ModelInferRequest.InferRequestedOutputTensor": {"name": 1, "parameters": 2},
    "ModelInferResponse": {
        "model_name": 1,
        "model_version": 2,
        "id": 3,
        "parameters": 4,
        "outputs": 5,
        "raw_output_contents": 6,
    },
    "ModelInferResponse.InferOutputTensor": {
        "name": 1,
        "datatype": 2,
        "shape": 3,
        "parameters": 4,
        "contents": 5,
    },
    "InferParameter": {
        "bool_param": 1,
        "int64_param": 2,
        "string_param": 3,
        "double_param": 4,
        "uint64_param": 5,
    },
    "InferTensorContents": {
        "bool_contents": 1,
        "int_contents": 2,
        "int64_contents": 3,
        "uint_contents": 4,
        "uint64_contents": 5,
        "fp32_contents": 6,
        "fp64_contents": 7,
        "bytes_contents": 8,
    },
    "ServerLiveResponse": {"live": 1},
    "ServerReadyResponse": {"ready": 1},
    "ModelReadyRequest": {"name": 1, "version": 2},
    "ModelReadyResponse": {"ready": 1},
    "ServerMetadataResponse": {"name": 1, "version": 2, "extensions": 3},
    "ModelMetadataRequest": {"name": 1, "version": 2},
    "ModelMetadataResponse": {
        "name": 1,
        "versions": 2,
        "platform": 3,
        "inputs": 4,
        "outputs": 5,
        "parameters": 6,  # MLServer's addition
    },
    "ModelMetadataResponse.TensorMetadata": {
        "name": 1,
        "datatype": 2,
        "shape": 3,
        "parameters": 4,  # MLServer's addition
    },
    "RepositoryIndexRequest": {"repository_name": 1, "ready": 2},
    "RepositoryIndexResponse": {"models": 1},
    "RepositoryIndexResponse.ModelIndex": {"name": 1, "version": 2, "state": 3, "reason": 4},
    "RepositoryModelLoadRequest": {"repository_name": 1, "model_name": 2, "parameters": 3},
    "RepositoryModelUnloadRequest": {"repository_name": 1, "model_name": 2, "parameters": 3},
    "ModelRepositoryParameter": {
        "bool_param": 1,
        "int64_param": 2,
        "string_param": 3,
        "bytes_param": 4,
    },
}


@pytest.mark.parametrize("message", sorted(FIELD_NUMBERS))
def test_field_numbers(message):
    descriptor = _pool.POOL.FindMessageTypeByName(f"inference.{message}")
    assert {f.name: f.number for f in descriptor.fields} == FIELD_NUMBERS[message]


def test_service_and_rpcs():
    service = _pool.POOL.FindServiceByName("inference.GRPCInferenceService")
    assert [m.name for m in service.methods] == [
        "ServerLive",
        "ServerReady",
        "ModelReady",
        "ServerMetadata",
        "ModelMetadata",
        "ModelInfer",
        "RepositoryIndex",
        "RepositoryModelLoad",
        "RepositoryModelUnload",
    ]


# ----------------------------------------------------------------------------- the codec

TYPED = [
    ("BOOL", "bool_contents", [True, False], np.bool_),
    ("UINT8", "uint_contents", [0, 255], np.uint8),
    ("UINT16", "uint_contents", [0, 65535], np.uint16),
    ("UINT32", "uint_contents", [0, 4294967295], np.uint32),
    ("UINT64", "uint64_contents", [0, 18446744073709551615], np.uint64),
    ("INT8", "int_contents", [-128, 127], np.int8),
    ("INT16", "int_contents", [-32768, 32767], np.int16),
    ("INT32", "int_contents", [-2147483648, 2147483647], np.int32),
    ("INT64", "int64_contents", [-9223372036854775808, 9223372036854775807], np.int64),
    ("FP32", "fp32_contents", [0.5, -2.25], np.float32),
    ("FP64", "fp64_contents", [0.1, 1e300], np.float64),
    ("BYTES", "bytes_contents", [b"a", b"\xff"], object),
]


def infer_request(name="x", datatype="FP32", shape=(2,), **fields):
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name=name, datatype=datatype, shape=list(shape))
    for field, values in fields.items():
        getattr(tensor.contents, field).extend(values)
    return request


def codec_for(request):
    codec = V2ProtoCodec("m", "1")
    return codec, codec.decode(request)


@pytest.mark.parametrize(("datatype", "field", "values", "dtype"), TYPED)
def test_typed_contents_both_ways(datatype, field, values, dtype):
    codec, msg = codec_for(infer_request(datatype=datatype, **{field: values}))
    x = msg.features
    assert x.dtype == np.dtype(dtype) and x.shape == (2,)
    assert x.tolist() == values
    answer = codec.encode(Reply(NDARRAY, x, None, {}))
    assert (answer.model_name, answer.model_version) == ("m", "1")
    out = answer.outputs[0]
    assert (out.name, out.datatype, list(out.shape)) == ("output-0", datatype, [2])
    assert list(getattr(out.contents, field)) == values
    assert not answer.raw_output_contents


@pytest.mark.parametrize(
    ("datatype", "field", "values", "dtype"), [*TYPED, ("FP16", None, [0.5, -2], np.float16)]
)
def test_raw_contents_both_ways(datatype, field, values, dtype):
    arr = np.array(values, dtype=dtype)
    if datatype == "BYTES":
        raw = b"".join(len(v).to_bytes(4, "little") + v for v in values)
    else:
        raw = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
    request = infer_request(datatype=datatype)
    request.raw_input_contents.append(raw)
    codec, msg = codec_for(request.SerializeToString())
    x = msg.features
    assert x.dtype == arr.dtype
    assert x.tolist() == arr.tolist()
    if datatype != "BYTES":
        assert not x.flags.owndata  # a view of the received buffer, not a copy
    answer = codec.encode(Reply(NDARRAY, x, None, {}))
    assert list(answer.raw_output_contents) == [raw]
    assert not answer.outputs[0].HasField("contents")


def test_fp16_answers_go_raw_even_for_typed_requests():
    codec, _ = codec_for(infer_request(fp32_contents=[1, 2]))
    answer = codec.encode(
        Reply(JSON, {"a": np.ones(1, np.float16), "b": np.ones(1, np.float32)}, None, {})
    )
    assert len(answer.raw_output_contents) == 2
    assert not any(o.HasField("contents") for o in answer.outputs)


def test_parameters_tags_ids_and_feature_names():
    request = infer_request(fp32_contents=[1, 2])
    request.id = "r1"
    request.parameters["tenant"].string_param = "a"
    request.parameters["n"].int64_param = 3
    request.parameters["feature_names"].string_param = '["f0", "f1"]'
    codec, msg = codec_for(request)
    assert msg.names == ["f0", "f1"]
    assert msg.meta == {"puid": "r1", "tags": {"tenant": "a", "n": 3}, "outputs": []}
    tags = {"tenant": "a", "n": 3, "ok": True, "x": 0.5, "big": 2**64 - 1, "obj": {"k": [1]}}
    answer = codec.encode(Reply(NDARRAY, np.ones((1, 2)), ["no", "yes"], {"tags": tags}))
    assert answer.id == "r1"
    assert parameters_to_dict(answer.parameters) == {**tags, "obj": '{"k":[1]}'}
    assert parameters_to_dict(answer.outputs[0].parameters) == {"class_names": '["no","yes"]'}


def test_requested_outputs_through_the_engine():
    class Model:
        def predict(self, X, names):
            return {"a": X * 2, "b": "text"}

    request = infer_request(fp32_contents=[1, 2])
    request.outputs.add(name="b")
    codec = V2ProtoCodec("m")
    status, answer = run_sync(Engine(Model()).predict(request, codec))
    assert status == 200
    assert [o.name for o in answer.outputs] == ["b"]
    assert list(answer.outputs[0].contents.bytes_contents) == [b"text"]
    assert answer.id  # generated


@pytest.mark.parametrize(
    ("build", "says"),
    [
        (lambda: infer_request(datatype="FP32", int_contents=[1, 2]), "belong in contents.fp32"),
        (lambda: infer_request(datatype="FP16", fp32_contents=[1, 2]), "only in raw_input"),
        (
            lambda: infer_request(datatype="INT8", int_contents=[1, 300]),
            "value 300 is out of range for datatype INT8",
        ),
        (lambda: infer_request(datatype="UINT16", uint_contents=[70000, 1]), "out of range"),
        (lambda: infer_request(fp32_contents=[1, 2, 3]), "has 3 values but shape [2] needs 2"),
        (lambda: infer_request(shape=(-1,), fp32_contents=[1]), "non-negative integers"),
        (lambda: infer_request(datatype="BF16"), "BF16"),
        (lambda: infer_request(shape=(1 << 40,), fp32_contents=[1]), "may be implied"),
        (lambda: pb.ModelInferRequest(), "inputs must hold at least one tensor"),
        (
            lambda: infer_request(datatype="BYTES", bytes_contents=[b"\xff", b"a"]),
            None,
        ),
    ],
)
def test_bad_requests(build, says):
    request = build()
    if says is None:  # bytes that are fine unless asked for as text
        request.inputs[0].parameters["content_type"].string_param = "str"
        says = "not UTF-8 text"
    with pytest.raises(BadRequest, match=re.escape(says)):
        codec_for(request)


def test_raw_contents_that_do_not_fit_the_inputs():
    request = infer_request()
    request.raw_input_contents.extend([b"\0" * 8, b"\0" * 8])
    with pytest.raises(BadRequest, match="2 buffers for 1 inputs"):
        codec_for(request)
    request = infer_request(fp32_contents=[1, 2])
    request.raw_input_contents.append(b"\0" * 8)
    with pytest.raises(BadRequest, match="has contents although the request uses raw"):
        codec_for(request)
    request = infer_request()
    request.raw_input_contents.append(b"\0" * 7)
    with pytest.raises(BadRequest, match="not a whole number of FP32 elements"):
        codec_for(request)


def test_bytes_that_are_not_a_request():
    with pytest.raises(MalformedMessage, match="not a ModelInferRequest"):
        codec_for(b"\xff\xff\xff")


def test_unknown_requested_output():
    request = infer_request(fp32_contents=[1, 2])
    request.outputs.add(name="nope")
    codec, _ = codec_for(request)
    with pytest.raises(BadRequest, match="requested output 'nope'"):
        codec.encode(Reply(NDARRAY, np.ones(1), None, {}))


def test_raw_methods_answer_a_response():
    codec = V2ProtoCodec("m")
    answer = pb.ModelInferResponse(model_name="m")
    assert codec.encode_raw(answer) is answer
    with pytest.raises(BadModelOutput, match=r"must return an inference\.ModelInferResponse"):
        codec.encode_raw({"outputs": []})
