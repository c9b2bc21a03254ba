"""unitserve.proto: private pool, spec field numbers, wire compatibility, gRPC modules."""

from __future__ import annotations

import asyncio
import os
import pickle
import subprocess
import sys
import textwrap
from concurrent import futures
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from google.protobuf import (
    any_pb2,
    descriptor_pb2,
    descriptor_pool,
    json_format,
    message_factory,
    struct_pb2,
    timestamp_pb2,
)
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

import unitserve.proto as up
from unitserve.proto import prediction_pb2 as pb
from unitserve.proto import prediction_pb2_grpc as pb_grpc
from unitserve.proto.tensorflow import tensor_pb2, types_pb2

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
# Seldon's own protos, compiled (see tests/data/README.md): kept in the repo so that the
# wire-compatibility tests run from any clone instead of skipping.
SELDON_DESCRIPTORS = REPO / "tests" / "data" / "seldon_protos.binpb"


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter that imports unitserve from src/."""
    environ = dict(os.environ, **env)
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
        check=False,
    )


# --------------------------------------------------------------------------
# the private pool
# --------------------------------------------------------------------------


def test_descriptors_live_in_the_private_pool() -> None:
    assert pb.DESCRIPTOR.pool is up.POOL
    assert tensor_pb2.DESCRIPTOR.pool is up.POOL
    json_type = pb.SeldonMessage.DESCRIPTOR.fields_by_name["jsonData"].message_type
    assert json_type is not None and json_type.file.pool is up.POOL
    default = descriptor_pool.Default()
    with pytest.raises(KeyError):
        default.FindFileByName("unitserve/proto/prediction.proto")
    # Our Value is not the default pool's Value, but behaves like one.
    assert up.Value is not struct_pb2.Value
    assert type(pb.SeldonMessage().jsonData) is up.Value
    assert up.is_local(pb.SeldonMessage())
    assert not up.is_local(struct_pb2.Value())
    assert up.is_local(pb.SeldonMessage) and up.is_local(up.Value)
    assert not up.is_local(struct_pb2.Value)


CONFLICT_CODE = """
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    # What seldon-core (or TensorFlow) does on import: register seldon.protos.* and
    # tensorflow.* in the default pool, here with deliberately different contents
    # and file names.
    fdp = descriptor_pb2.FileDescriptorProto(
        name="someone_else/prediction.proto", package="seldon.protos", syntax="proto3"
    )
    msg = fdp.message_type.add(name="SeldonMessage")
    msg.field.add(name="binData", number=4, type=12, label=1)
    msg.field.add(name="strData", number=5, type=9, label=1)
    msg.field.add(name="other", number=99, type=9, label=1)
    fdp.message_type.add(name="Meta").field.add(name="x", number=1, type=5, label=1)
    tf = descriptor_pb2.FileDescriptorProto(
        name="tensorflow/core/framework/tensor.proto", package="tensorflow", syntax="proto3"
    )
    tf.message_type.add(name="TensorProto").field.add(name="dtype", number=1, type=5, label=1)
    default = descriptor_pool.Default()
    default.Add(fdp)
    default.Add(tf)
    Foreign = message_factory.GetMessageClass(
        default.FindMessageTypeByName("seldon.protos.SeldonMessage")
    )

    import unitserve.proto as up
    from google.protobuf import json_format
    from unitserve.proto import prediction_pb2 as pb

    m = pb.SeldonMessage(strData="hello")
    m.data.tftensor.dtype = 1
    assert pb.SeldonMessage.FromString(m.SerializeToString()) == m
    assert json_format.MessageToDict(m) == {
        "data": {"tftensor": {"dtype": "DT_FLOAT"}}
    }, json_format.MessageToDict(m)
    # The foreign default-pool class is untouched and still its own.
    assert Foreign.DESCRIPTOR.file.name == "someone_else/prediction.proto"
    foreign = Foreign(strData="from seldon", other="kept")
    ours = up.as_local(foreign, pb.SeldonMessage)
    assert type(ours) is pb.SeldonMessage and ours.strData == "from seldon"
    # the unknown field survives a round trip back to the foreign type
    assert Foreign.FromString(ours.SerializeToString()).other == "kept"
    print("OK")
"""


def test_conflicting_default_pool_registration_before_import() -> None:
    result = run_python(CONFLICT_CODE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK"


def test_conflicting_default_pool_registration_pure_python_backend() -> None:
    result = run_python(CONFLICT_CODE, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK"


@pytest.mark.parametrize("backend", ["default", "python"])
def test_seldons_real_protos_in_the_default_pool_beside_ours(backend: str) -> None:
    code = f"""
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
        from google.protobuf import any_pb2, empty_pb2, struct_pb2
        with open({str(SELDON_DESCRIPTORS)!r}, "rb") as f:
            fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
        default = descriptor_pool.Default()
        for f in fds.file:
            if not f.name.startswith(("google/", "grpc_reflection/")):
                default.Add(f)
        Theirs = message_factory.GetMessageClass(
            default.FindMessageTypeByName("seldon.protos.SeldonMessage")
        )
        import unitserve.proto as up
        from unitserve.proto import prediction_pb2 as pb
        theirs = Theirs(strData="x")
        theirs.meta.puid = "p"
        assert up.as_local(theirs) == pb.SeldonMessage(strData="x", meta=pb.Meta(puid="p"))
        print("OK")
    """
    env = {"PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"} if backend == "python" else {}
    result = run_python(code, **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK"


def test_classes_pickle_and_name_like_generated_code() -> None:
    msg = pb.SeldonMessage(meta=pb.Meta(tags={"a": up.Value(string_value="b")}))
    assert pickle.loads(pickle.dumps(msg)) == msg
    assert pb.Meta.TagsEntry.__qualname__ == "Meta.TagsEntry"
    assert pb.SeldonMessage.__module__ == "unitserve.proto.prediction_pb2"
    assert pickle.loads(pickle.dumps(up.Value(number_value=1))) == up.Value(number_value=1)
    assert pb.Metric.TIMER == 2 and pb.Metric.MetricType.Name(1) == "GAUGE"


# --------------------------------------------------------------------------
# as_local
# --------------------------------------------------------------------------


def _foreign_pool_class(full_name: str) -> type:
    """A class for ``full_name`` from a throwaway pool, wire-compatible with ours."""
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(struct_pb2.DESCRIPTOR.serialized_pb)
    fdp = descriptor_pb2.FileDescriptorProto(
        name="foreign.proto",
        package="seldon.protos",
        syntax="proto3",
        dependency=["google/protobuf/struct.proto"],
    )
    msg = fdp.message_type.add(name="SeldonMessage")
    msg.field.add(name="strData", number=5, type=9, label=1, oneof_index=0)
    msg.field.add(
        name="jsonData",
        number=6,
        type=FieldDescriptor.TYPE_MESSAGE,
        type_name=".google.protobuf.Value",
        label=1,
        oneof_index=0,
    )
    msg.oneof_decl.add(name="data_oneof")
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))


def test_as_local_converts_foreign_pool_messages() -> None:
    Foreign = _foreign_pool_class("seldon.protos.SeldonMessage")
    foreign = Foreign()
    foreign.jsonData.string_value = "x"
    ours = up.as_local(foreign)
    assert type(ours) is pb.SeldonMessage
    assert ours.jsonData.string_value == "x"
    assert up.as_local(foreign, pb.SeldonMessage) == ours


def test_as_local_converts_default_pool_well_known_types() -> None:
    packed = any_pb2.Any()
    packed.Pack(struct_pb2.Value(number_value=1.5))
    ours = up.as_local(packed)
    assert type(ours) is up.Any
    value = up.Value()
    assert ours.Unpack(value) and value.number_value == 1.5
    msg = pb.SeldonMessage()
    msg.customData.CopyFrom(up.as_local(packed, up.Any))
    assert msg.customData.Is(struct_pb2.Value.DESCRIPTOR)
    listed = up.as_local(struct_pb2.ListValue(values=[struct_pb2.Value(bool_value=True)]))
    assert type(listed) is up.ListValue and list(listed) == [True]


def test_as_local_returns_our_own_message_unchanged() -> None:
    msg = pb.SeldonMessage(strData="same")
    assert up.as_local(msg) is msg
    assert up.as_local(msg, pb.SeldonMessage) is msg


def test_as_local_rejects_unrelated_types() -> None:
    with pytest.raises(TypeError, match=r"google\.protobuf\.Timestamp is not a unitserve"):
        up.as_local(timestamp_pb2.Timestamp())
    with pytest.raises(TypeError, match=r"expected seldon\.protos\.Feedback"):
        up.as_local(pb.SeldonMessage(), pb.Feedback)
    with pytest.raises(TypeError, match="not a unitserve protobuf class"):
        up.as_local(struct_pb2.Value(), struct_pb2.Value)
    with pytest.raises(TypeError, match="expected a protobuf message"):
        # a dict where a message belongs, on purpose
        up.as_local({"strData": "x"})  # type: ignore[call-overload]


# --------------------------------------------------------------------------
# the spec's field numbers and types (spec section 3.1)
# --------------------------------------------------------------------------


def _field(message: type[Message], name: str) -> FieldDescriptor:
    # The stubs allow the C (upb) descriptor classes too; they behave the same here.
    return cast(FieldDescriptor, message.DESCRIPTOR.fields_by_name[name])


def _message_type(message: type[Message], name: str) -> Descriptor:
    message_type = _field(message, name).message_type
    assert message_type is not None, f"{name} is not a message field"
    return message_type


@pytest.mark.parametrize(
    ("message", "name", "number"),
    [
        (pb.SeldonMessage, "status", 1),
        (pb.SeldonMessage, "meta", 2),
        (pb.SeldonMessage, "data", 3),
        (pb.SeldonMessage, "binData", 4),
        (pb.SeldonMessage, "strData", 5),
        (pb.SeldonMessage, "jsonData", 6),
        (pb.SeldonMessage, "customData", 7),
        (pb.DefaultData, "names", 1),
        (pb.DefaultData, "tensor", 2),
        (pb.DefaultData, "ndarray", 3),
        (pb.DefaultData, "tftensor", 4),
        (pb.Meta, "puid", 1),
        (pb.Meta, "tags", 2),
        (pb.Meta, "routing", 3),
        (pb.Meta, "requestPath", 4),
        (pb.Meta, "metrics", 5),
        (pb.Metric, "value", 3),
        (pb.Status, "status", 4),
        (pb.Feedback, "reward", 3),
        (pb.Feedback, "truth", 4),
        (pb.SeldonMessageMetadata, "shape", 5),
        (pb.SeldonModelMetadata, "custom", 6),
        (pb.SeldonGraphMetadata, "models", 2),
        (tensor_pb2.TensorProto, "tensor_content", 4),
        (tensor_pb2.TensorProto, "half_val", 13),
        (tensor_pb2.TensorProto, "resource_handle_val", 14),
        (tensor_pb2.TensorProto, "variant_val", 15),
        (tensor_pb2.TensorProto, "float8_val", 18),
    ],
)
def test_field_numbers(message: type, name: str, number: int) -> None:
    assert _field(message, name).number == number


def test_oneofs_and_types() -> None:
    oneof = pb.SeldonMessage.DESCRIPTOR.oneofs_by_name["data_oneof"]
    assert [f.name for f in oneof.fields] == [
        "data",
        "binData",
        "strData",
        "jsonData",
        "customData",
    ]
    oneof = pb.DefaultData.DESCRIPTOR.oneofs_by_name["data_oneof"]
    assert [f.name for f in oneof.fields] == ["tensor", "ndarray", "tftensor"]
    assert _message_type(pb.SeldonMessage, "customData").full_name == "google.protobuf.Any"
    assert _message_type(pb.DefaultData, "tftensor").full_name == "tensorflow.TensorProto"
    # float32, as in Seldon: 0.1 reads back as 0.10000000149011612.
    assert _field(pb.Feedback, "reward").type == FieldDescriptor.TYPE_FLOAT
    assert _field(pb.Metric, "value").type == FieldDescriptor.TYPE_FLOAT
    assert pb.Feedback.FromString(pb.Feedback(reward=0.1).SerializeToString()).reward == (
        pytest.approx(0.10000000149011612, abs=0)
    )
    assert pb.Metric.MetricType.Value("TIMER") == 2
    assert pb.Status.StatusFlag.Value("FAILURE") == 1
    assert types_pb2.DT_FLOAT == 1 and types_pb2.DT_STRING == 7 and types_pb2.DT_HALF == 19
    assert types_pb2.DT_UINT32 == 22 and types_pb2.DT_UINT64 == 23


def test_packed_encoding() -> None:
    # field 1, wire type 2 (length-delimited), 2 bytes: 1, 2 -- packed, not 0x08 01 08 02
    assert pb.Tensor(shape=[1, 2]).SerializeToString() == b"\x0a\x02\x01\x02"
    assert pb.Tensor(values=[1.0]).SerializeToString()[:2] == b"\x12\x08"
    assert tensor_pb2.TensorProto(float_val=[1.0]).SerializeToString()[:2] == b"\x2a\x04"


def test_json_names_are_camel_case_as_declared() -> None:
    msg = json_format.ParseDict(
        {
            "meta": {
                "puid": "abc",
                "tags": {"k": "v"},
                "routing": {"router": 0},
                "requestPath": {"node": "image:tag"},
                "metrics": [{"key": "m", "type": "COUNTER", "value": 1, "tags": {"a": "b"}}],
            },
            "data": {"names": ["a", "b"], "ndarray": [[1, 2]]},
        },
        pb.SeldonMessage(),
    )
    assert msg.meta.requestPath["node"] == "image:tag"
    assert list(cast(struct_pb2.ListValue, msg.data.ndarray[0])) == [1.0, 2.0]
    out = json_format.MessageToDict(pb.SeldonMessage(binData=b"\x00\x01", strData=""))
    assert out == {"strData": ""}
    assert json_format.MessageToDict(pb.SeldonMessage(binData=b"\x00\x01")) == {"binData": "AAE="}
    feedback = json_format.ParseDict(
        {"request": {"jsonData": {"a": [1, None]}}, "truth": {"strData": "t"}, "reward": 1},
        pb.Feedback(),
    )
    assert cast(struct_pb2.ListValue, feedback.request.jsonData.struct_value["a"])[1] is None
    with pytest.raises(json_format.ParseError):
        json_format.ParseDict({"unknown": 1}, pb.Feedback())
    lst = json_format.ParseDict({"seldonMessages": [{"strData": "x"}]}, pb.SeldonMessageList())
    assert lst.seldonMessages[0].strData == "x"


def test_any_json_needs_the_private_pool() -> None:
    msg = pb.SeldonMessage()
    msg.customData.Pack(pb.Tensor(shape=[1], values=[2.0]))
    as_dict = json_format.MessageToDict(msg, descriptor_pool=up.POOL)
    assert as_dict == {
        "customData": {
            "@type": "type.googleapis.com/seldon.protos.Tensor",
            "shape": [1],
            "values": [2.0],
        }
    }
    parsed = json_format.ParseDict(as_dict, pb.SeldonMessage(), descriptor_pool=up.POOL)
    # Compared as bytes: the pure-Python backend's == unpacks an Any through the
    # default pool, where seldon.protos.Tensor is not (a KeyError).
    assert parsed.SerializeToString(deterministic=True) == msg.SerializeToString(deterministic=True)


def test_services() -> None:
    services = {s.full_name: s for s in pb.DESCRIPTOR.services_by_name.values()}
    assert tuple(services) == up.SERVICE_NAMES
    expected = {
        "Generic": {
            "TransformInput": ("SeldonMessage", "SeldonMessage"),
            "TransformOutput": ("SeldonMessage", "SeldonMessage"),
            "Route": ("SeldonMessage", "SeldonMessage"),
            "Aggregate": ("SeldonMessageList", "SeldonMessage"),
            "SendFeedback": ("Feedback", "SeldonMessage"),
        },
        "Model": {
            "Predict": ("SeldonMessage", "SeldonMessage"),
            "SendFeedback": ("Feedback", "SeldonMessage"),
            "Metadata": ("google.protobuf.Empty", "SeldonModelMetadata"),
        },
        "Router": {
            "Route": ("SeldonMessage", "SeldonMessage"),
            "SendFeedback": ("Feedback", "SeldonMessage"),
        },
        "Transformer": {"TransformInput": ("SeldonMessage", "SeldonMessage")},
        "OutputTransformer": {"TransformOutput": ("SeldonMessage", "SeldonMessage")},
        "Combiner": {"Aggregate": ("SeldonMessageList", "SeldonMessage")},
        "Seldon": {
            "Predict": ("SeldonMessage", "SeldonMessage"),
            "SendFeedback": ("Feedback", "SeldonMessage"),
            "ModelMetadata": ("SeldonModelMetadataRequest", "SeldonModelMetadata"),
            "GraphMetadata": ("google.protobuf.Empty", "SeldonGraphMetadata"),
        },
    }

    def qualify(name: str) -> str:
        return name if "." in name else f"seldon.protos.{name}"

    for service, methods in expected.items():
        got = {
            m.name: (m.input_type.full_name, m.output_type.full_name)
            for m in services[f"seldon.protos.{service}"].methods
        }
        assert got == {k: (qualify(a), qualify(b)) for k, (a, b) in methods.items()}


# --------------------------------------------------------------------------
# wire compatibility with Seldon's compiled protos
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seldon_pool() -> descriptor_pool.DescriptorPool:
    fds = descriptor_pb2.FileDescriptorSet.FromString(SELDON_DESCRIPTORS.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in fds.file:
        pool.Add(file)
    return pool


def _their_messages(pool: descriptor_pool.DescriptorPool) -> list[str]:
    fds = descriptor_pb2.FileDescriptorSet.FromString(SELDON_DESCRIPTORS.read_bytes())
    names: list[str] = []

    def walk(prefix: str, messages: list[descriptor_pb2.DescriptorProto]) -> None:
        for m in messages:
            names.append(prefix + m.name)
            walk(prefix + m.name + ".", list(m.nested_type))

    for file in fds.file:
        if file.package in ("seldon.protos", "tensorflow"):
            walk(file.package + ".", list(file.message_type))
    return names


# Seldon's vendored types.proto has it; no payload uses it.
_NOT_CARRIED = {"tensorflow.SerializedDType"}


def test_every_seldon_field_matches_ours(seldon_pool: descriptor_pool.DescriptorPool) -> None:
    problems = []
    for name in _their_messages(seldon_pool):
        if name in _NOT_CARRIED:
            continue
        theirs = seldon_pool.FindMessageTypeByName(name)
        try:
            ours = up.POOL.FindMessageTypeByName(name)
        except KeyError:
            problems.append(f"missing message {name}")
            continue
        for f in theirs.fields:
            g = ours.fields_by_number.get(f.number)
            if g is None:
                problems.append(f"{name}: missing field {f.number} {f.name}")
                continue

            def sig(x: FieldDescriptor) -> tuple[object, ...]:
                return (
                    x.name,
                    x.json_name,
                    x.type,
                    x.cpp_type,
                    x.message_type.full_name if x.message_type else None,
                    x.enum_type.full_name if x.enum_type else None,
                    x.containing_oneof.name if x.containing_oneof else None,
                    x.message_type.GetOptions().map_entry if x.message_type else None,
                    getattr(x, "is_repeated", None),
                    getattr(x, "is_packed", None),
                )

            if sig(f) != sig(g):
                problems.append(f"{name}.{f.name}: theirs {sig(f)} ours {sig(g)}")
        extra = set(ours.fields_by_number) - set(theirs.fields_by_number)
        if extra:
            problems.append(f"{name}: fields only we have: {sorted(extra)}")
    for enum in ("tensorflow.DataType", "seldon.protos.Metric.MetricType"):
        theirs_e = {v.number: v.name for v in seldon_pool.FindEnumTypeByName(enum).values}
        ours_e = {v.number: v.name for v in up.POOL.FindEnumTypeByName(enum).values}
        if theirs_e != ours_e:
            problems.append(f"{enum}: theirs {theirs_e} ours {ours_e}")
    for service in up.SERVICE_NAMES:
        theirs_s = seldon_pool.FindServiceByName(service)
        ours_s = up.POOL.FindServiceByName(service)
        sig_t = [
            (m.name, m.input_type.full_name, m.output_type.full_name) for m in theirs_s.methods
        ]
        sig_o = [(m.name, m.input_type.full_name, m.output_type.full_name) for m in ours_s.methods]
        if sig_t != sig_o:
            problems.append(f"{service}: theirs {sig_t} ours {sig_o}")
    assert not problems, "\n".join(problems)


WIRE_SAMPLES: dict[str, list[dict[str, Any]]] = {
    "seldon.protos.SeldonMessage": [
        {
            "status": {"code": 400, "info": "bad", "reason": "MICROSERVICE_BAD_DATA", "status": 1},
            "meta": {
                "puid": "abc",
                "tags": {"k": "v", "n": 1.5, "l": [1, None, {"x": True}]},
                "routing": {"router": 2},
                "requestPath": {"node": "image:tag"},
                "metrics": [
                    {"key": "m", "type": "TIMER", "value": 0.1, "tags": {"a": "b"}},
                    {"key": "c", "type": "COUNTER", "value": 1},
                ],
            },
            "data": {"names": ["a", "b"], "tensor": {"shape": [2, 2], "values": [1, 2.5, -3, 4]}},
        },
        {"data": {"names": ["x"], "ndarray": [[1, "two", None, True]]}},
        {
            "data": {
                "tftensor": {
                    "dtype": "DT_INT64",
                    "tensorShape": {"dim": [{"size": "2"}, {"size": "1", "name": "c"}]},
                    "int64Val": ["1", "-2"],
                    "versionNumber": 3,
                }
            }
        },
        {"data": {"tftensor": {"dtype": "DT_FLOAT", "tensorContent": "AACAPwAAAEA="}}},
        {"data": {"tftensor": {"dtype": "DT_STRING", "stringVal": ["YQ==", ""]}}},
        {"binData": "AAEC/w=="},
        {"strData": "héllo"},
        {"jsonData": {"a": [1, 2, {"b": None}], "c": "d"}},
        {"jsonData": "just a string"},
    ],
    "seldon.protos.SeldonMessageList": [
        {"seldonMessages": [{"strData": "a"}, {"data": {"ndarray": [1]}}]}
    ],
    "seldon.protos.Feedback": [
        {
            "request": {"data": {"ndarray": [[1]]}},
            "response": {"meta": {"routing": {"r": 1}}, "data": {"ndarray": [[2]]}},
            "reward": 0.5,
            "truth": {"strData": "t"},
        }
    ],
    "seldon.protos.SeldonModelMetadata": [
        {
            "name": "m",
            "versions": ["v1"],
            "platform": "p",
            "inputs": [
                {"messagetype": "tensor", "name": "in", "datatype": "FP32", "shape": [1, "3"]}
            ],
            "outputs": [{"messagetype": "jsonData", "schema": {"type": "object"}}],
            "custom": {"author": "me"},
        }
    ],
    "seldon.protos.SeldonGraphMetadata": [
        {
            "name": "g",
            "models": {"m": {"name": "m", "platform": "p", "custom": {"k": "v"}}},
            "inputs": [{"name": "i"}],
            "outputs": [{"name": "o", "shape": ["-1"]}],
        }
    ],
    "seldon.protos.SeldonModelMetadataRequest": [{"name": "m"}],
    "seldon.protos.RequestResponse": [{"request": {"strData": "q"}, "response": {"strData": "a"}}],
}


@pytest.mark.parametrize(
    ("full_name", "index"),
    [(name, i) for name, samples in WIRE_SAMPLES.items() for i in range(len(samples))],
)
def test_wire_round_trip_with_seldon(
    seldon_pool: descriptor_pool.DescriptorPool, full_name: str, index: int
) -> None:
    sample = WIRE_SAMPLES[full_name][index]
    Theirs = message_factory.GetMessageClass(seldon_pool.FindMessageTypeByName(full_name))
    Ours = message_factory.GetMessageClass(up.POOL.FindMessageTypeByName(full_name))
    theirs = json_format.ParseDict(sample, Theirs(), descriptor_pool=seldon_pool)
    ours = json_format.ParseDict(sample, Ours(), descriptor_pool=up.POOL)
    # their bytes parse as ours, to the same message, and back
    from_theirs = Ours.FromString(theirs.SerializeToString(deterministic=True))
    assert from_theirs == ours
    assert Theirs.FromString(ours.SerializeToString(deterministic=True)) == theirs
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(
        deterministic=True
    )
    assert json_format.MessageToDict(from_theirs, descriptor_pool=up.POOL) == (
        json_format.MessageToDict(theirs, descriptor_pool=seldon_pool)
    )


def test_custom_data_any_from_seldon(seldon_pool: descriptor_pool.DescriptorPool) -> None:
    Theirs = message_factory.GetMessageClass(
        seldon_pool.FindMessageTypeByName("seldon.protos.SeldonMessage")
    )
    TheirTensor = message_factory.GetMessageClass(
        seldon_pool.FindMessageTypeByName("seldon.protos.Tensor")
    )
    # classes made at run time: their fields are unknown to the type checker
    theirs: Any = Theirs()
    theirs.customData.Pack(TheirTensor(shape=[1], values=[3.0]))  # type: ignore[call-arg]
    ours = up.as_local(theirs, pb.SeldonMessage)
    tensor = pb.Tensor()
    assert ours.customData.Unpack(tensor)
    assert list(tensor.values) == [3.0]


# --------------------------------------------------------------------------
# the gRPC module
# --------------------------------------------------------------------------

ECHO_SERVICES = {
    "Generic": ["TransformInput", "TransformOutput", "Route", "Aggregate", "SendFeedback"],
    "Model": ["Predict", "SendFeedback", "Metadata"],
    "Router": ["Route", "SendFeedback"],
    "Transformer": ["TransformInput"],
    "OutputTransformer": ["TransformOutput"],
    "Combiner": ["Aggregate"],
    "Seldon": ["Predict", "SendFeedback", "ModelMetadata", "GraphMetadata"],
}


class EchoServicer:
    """One object serving all seven services, as unitserve's transport does."""

    def _echo(self, request: Message, context: object) -> pb.SeldonMessage:
        return pb.SeldonMessage(strData=type(request).DESCRIPTOR.full_name)

    TransformInput = TransformOutput = Route = Predict = _echo

    def Aggregate(self, request: pb.SeldonMessageList, context: object) -> pb.SeldonMessage:
        return pb.SeldonMessage(strData=f"n={len(request.seldonMessages)}")

    def SendFeedback(self, request: pb.Feedback, context: object) -> pb.SeldonMessage:
        return pb.SeldonMessage(strData=f"reward={request.reward}")

    def Metadata(self, request: object, context: object) -> pb.SeldonModelMetadata:
        assert type(request) is up.Empty
        return pb.SeldonModelMetadata(name="m", custom={"k": "v"})

    def ModelMetadata(self, request: pb.SeldonModelMetadataRequest, context: object) -> object:
        return pb.SeldonModelMetadata(name=request.name)

    def GraphMetadata(self, request: object, context: object) -> pb.SeldonGraphMetadata:
        return pb.SeldonGraphMetadata(name="g")


def _request_for(method: str) -> object:
    if method == "Aggregate":
        return pb.SeldonMessageList(seldonMessages=[pb.SeldonMessage(), pb.SeldonMessage()])
    if method == "SendFeedback":
        return pb.Feedback(reward=2.0)
    if method in ("Metadata", "GraphMetadata"):
        return up.Empty()
    if method == "ModelMetadata":
        return pb.SeldonModelMetadataRequest(name="asked")
    return pb.SeldonMessage(strData="in")


def _check_reply(method: str, reply: object) -> None:
    expected = {
        "Aggregate": pb.SeldonMessage(strData="n=2"),
        "SendFeedback": pb.SeldonMessage(strData="reward=2.0"),
        "Metadata": pb.SeldonModelMetadata(name="m", custom={"k": "v"}),
        "ModelMetadata": pb.SeldonModelMetadata(name="asked"),
        "GraphMetadata": pb.SeldonGraphMetadata(name="g"),
    }.get(method, pb.SeldonMessage(strData="seldon.protos.SeldonMessage"))
    assert reply == expected, method


def _add_all(server: object) -> None:
    servicer = EchoServicer()
    for service in ECHO_SERVICES:
        getattr(pb_grpc, f"add_{service}Servicer_to_server")(servicer, server)


def test_grpc_sync_server_and_stubs() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    _add_all(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            for service, methods in ECHO_SERVICES.items():
                stub = getattr(pb_grpc, f"{service}Stub")(channel)
                for method in methods:
                    _check_reply(method, getattr(stub, method)(_request_for(method), timeout=10))
            # a raw call by full method path, as Seldon's clients make it
            raw = channel.unary_unary("/seldon.protos.Model/Predict")
            reply = pb.SeldonMessage.FromString(raw(pb.SeldonMessage().SerializeToString()))
            assert reply.strData == "seldon.protos.SeldonMessage"
    finally:
        server.stop(None)


def test_grpc_aio_server_and_stubs() -> None:
    async def main() -> None:
        server = grpc.aio.server()
        _add_all(server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                for service, methods in ECHO_SERVICES.items():
                    stub = getattr(pb_grpc, f"{service}Stub")(channel)
                    for method in methods:
                        reply = await getattr(stub, method)(_request_for(method), timeout=10)
                        _check_reply(method, reply)
        finally:
            await server.stop(None)

    asyncio.run(main())


def test_grpc_reflection_with_the_private_pool() -> None:
    reflection = pytest.importorskip("grpc_reflection.v1alpha.reflection")
    db_module = pytest.importorskip("grpc_reflection.v1alpha.proto_reflection_descriptor_database")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    _add_all(server)
    reflection.enable_server_reflection(
        (*up.SERVICE_NAMES, reflection.SERVICE_NAME), server, pool=up.POOL
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            db = db_module.ProtoReflectionDescriptorDatabase(channel)
            assert set(up.SERVICE_NAMES) <= set(db.get_services())
            client_pool = descriptor_pool.DescriptorPool(db)
            service = client_pool.FindServiceByName("seldon.protos.Model")
            assert [m.name for m in service.methods] == ["Predict", "SendFeedback", "Metadata"]
            tensor = client_pool.FindMessageTypeByName("tensorflow.TensorProto")
            assert tensor.fields_by_name["float8_val"].number == 18
    finally:
        server.stop(None)


def test_compat_feature_switches() -> None:
    from unitserve.proto import _compat

    assert _compat.grpc_version("1.62.3") == (1, 62)
    assert _compat.grpc_version("1.66.0rc1") == (1, 66)
    assert _compat.grpc_version("dev") == (99, 0)
    expected = {"_registered_method": True} if _compat.grpc_version() >= (1, 63) else {}
    assert dict(_compat.REGISTERED_METHOD) == expected

    class OldServer:
        def __init__(self) -> None:
            self.handlers: list[object] = []

        def add_generic_rpc_handlers(self, handlers: object) -> None:
            self.handlers.append(handlers)

    old = OldServer()
    pb_grpc.add_ModelServicer_to_server(EchoServicer(), old)  # no AttributeError
    assert len(old.handlers) == 1

    class NewServer(OldServer):
        def add_registered_method_handlers(self, name: str, handlers: dict) -> None:
            self.registered = (name, sorted(handlers))

    new = NewServer()
    pb_grpc.add_ModelServicer_to_server(EchoServicer(), new)
    assert new.registered == ("seldon.protos.Model", ["Metadata", "Predict", "SendFeedback"])
