"""What one request of the batch tool is: input lines made into a Seldon or an Open
Inference request, and its answer made into output lines (one per input line, a failure
line for a line that could not be answered)."""

from __future__ import annotations

import argparse
import asyncio
import copy
import functools
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from unitserve.client import AsyncClient, ClientError
from unitserve.errors import ServingError
from unitserve.protocol.v2 import datatypes, tensors


@dataclass(slots=True)
class Job:
    """A request to send: consecutive input lines, and where its answer lines go."""

    first: int
    lines: list[str]
    done: asyncio.Future[list[str]] = field(repr=False)


def failure(reason: str, tags: dict[str, Any]) -> str:
    return json.dumps({"status": {"info": "FAILURE", "reason": reason, "status": 1}, "meta": tags})


def line_tags(args: argparse.Namespace, index: int, instance: str) -> dict[str, Any]:
    return {"batch_id": args.batch_id, "batch_instance_id": instance, "batch_index": index}


@functools.cache
def _node() -> int:
    return uuid.getnode()


def time_uuid() -> str:
    """A new time-based UUID (version 1), as the original's tags carry. Given the node,
    the standard library makes it in Python, a few times faster than asking the system's
    uuid library for each line."""
    return str(uuid.uuid1(_node()))


def _array(value: Any) -> np.ndarray:
    """An input line's array as the original sends it: numbers go through protobuf's
    ListValue there, which holds doubles only, so whole numbers come back as floats."""
    arr = np.array(value)
    return arr.astype(float) if arr.dtype.kind in "biu" else arr


async def predict_one(client: AsyncClient, args: argparse.Namespace, job: Job) -> list[str]:
    index, line = job.first, job.lines[0]
    instance = time_uuid()
    tags = line_tags(args, index, instance)
    try:
        data = json.loads(line)
        if args.protocol == "v2":
            return [await _infer(client, args, data, tags)]
        if args.method == "feedback":
            answer = await client.feedback(
                data.get("request"),
                data.get("response"),
                data.get("reward", 0.0),
                data.get("truth"),
            )
            raw = dict(answer.raw)
            meta = dict(raw.get("meta") or {})
            meta["tags"] = {**meta.get("tags", {}), **tags}
            raw["meta"] = meta
            return [json.dumps(raw)]
        if args.data_type == "data":
            answer = await client.predict(_array(data), tags=tags)
        elif args.data_type == "str":
            answer = await client.predict(str_data=data, tags=tags)
        elif args.data_type == "json":
            answer = await client.predict(json_data=data, tags=tags)
        else:
            data["meta"] = data.get("meta") or {}
            data["meta"]["tags"] = {**(data["meta"].get("tags") or {}), **tags}
            answer = await client.predict(raw=data)
        return [json.dumps(answer.raw)]
    except (ClientError, ServingError, ValueError, TypeError, AttributeError, KeyError) as exc:
        return [failure(str(exc), tags if args.method == "predict" else {"tags": tags})]


async def _infer(
    client: AsyncClient, args: argparse.Namespace, data: Any, tags: dict[str, Any]
) -> str:
    """One line with the Open Inference Protocol: a bare array (``data``) or a whole
    inference request (``raw``); the answer as the protocol's JSON, tags in its parameters."""
    if args.data_type == "raw":
        if not isinstance(data, dict) or not isinstance(data.get("inputs"), list):
            raise ValueError("a raw line must be an inference request: an object with inputs")
        inputs = {}
        for i, item in enumerate(data["inputs"]):
            if not isinstance(item, dict):
                raise ValueError(f"input {i} of the raw line is not an object")
            where = f"input {i}"
            datatype = datatypes.by_name(item.get("datatype"), where)
            shape = tensors.read_shape(item.get("shape"), where)
            inputs[str(item.get("name", f"input-{i}"))] = tensors.from_json(
                item.get("data"), datatype, shape, datatype.is_bytes, where
            )
    elif isinstance(data, str):
        # --data-type str: the line's text as one BYTES element.
        inputs = {"input-0": np.array([data], dtype=object)}
    else:
        inputs = {"input-0": np.asarray(data)}
    answer = await client.infer(inputs, parameters={k: v for k, v in tags.items()})
    outputs = []
    for name, arr in answer.outputs.items():
        datatype = datatypes.of_array(arr, name)
        values = arr.reshape(-1).tolist()
        if datatype.is_bytes:
            values = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values]
        outputs.append(
            {"name": name, "datatype": datatype.name, "shape": list(arr.shape), "data": values}
        )
    body: dict[str, Any] = {"model_name": answer.model_name}
    if answer.model_version:
        body["model_version"] = answer.model_version
    body["id"] = answer.id
    body["parameters"] = {**answer.parameters, **tags}
    body["outputs"] = outputs
    return json.dumps(body)


async def predict_many(client: AsyncClient, args: argparse.Namespace, job: Job) -> list[str]:
    """Several lines in one request; the answer split into one line per input line."""
    puid = time_uuid()
    indexes = range(job.first, job.first + len(job.lines))
    instances = [f"{puid}-item-{n}" for n in range(len(job.lines))]
    base = {"batch_id": args.batch_id}
    row_tags = [
        {**base, "batch_index": i, "batch_instance_id": inst}
        for i, inst in zip(indexes, instances, strict=True)
    ]
    try:
        loaded = [json.loads(line) for line in job.lines]
        raw_tags: list[dict[str, Any]] = [{} for _ in loaded]
        if args.data_type == "raw":
            raw, payload = _join_raw(loaded, base)
            raw_tags = [(d.get("meta") or {}).get("tags") or {} for d in loaded]
            answer = await client.predict(raw=raw)
        else:
            payload = args.payload_type
            arrays = [_array(x) for x in loaded]
            if any(a.shape[:1] != (1,) for a in arrays):
                raise ValueError(
                    "When using mini-batching each row should contain single instance."
                )
            answer = await client.predict(np.concatenate(arrays), payload=payload, tags=base)
    except (ClientError, ServingError, ValueError, TypeError, KeyError, AttributeError) as exc:
        return [failure(str(exc), tags) for tags in row_tags]
    out = []
    response = answer.raw
    for i, tags in enumerate(row_tags):
        try:
            new = copy.deepcopy(response)
            meta = new.setdefault("meta", {})
            meta["tags"] = {**raw_tags[i], **(meta.get("tags") or {})}
            if payload == "ndarray":
                new["data"]["ndarray"] = [response["data"]["ndarray"][i]]
            elif payload == "tensor":
                shape = response["data"]["tensor"]["shape"]
                rows = np.array(response["data"]["tensor"]["values"]).reshape(shape)
                new["data"]["tensor"]["shape"][0] = 1
                new["data"]["tensor"]["values"] = rows[i].tolist()
            else:
                raise ValueError("only ndarray and tensor answers can be split into rows")
            meta["tags"]["batch_index"] = tags["batch_index"]
            meta["tags"]["batch_instance_id"] = tags["batch_instance_id"]
            out.append(json.dumps(new))
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            out.append(failure(str(exc), tags))
    return out


def _join_raw(loaded: list[Any], tags: dict[str, Any]) -> tuple[dict[str, Any], str]:
    first = loaded[0].get("data") or {}
    names = [(d.get("data") or {}).get("names") for d in loaded]
    if any(n != names[0] for n in names):
        raise ValueError("All names in mini-batch must be the same.")
    if "ndarray" in first:
        arrays = [np.array(d["data"]["ndarray"]) for d in loaded]
        if any(a.shape[:1] != (1,) for a in arrays):
            raise ValueError("When using mini-batching each row should contain single instance.")
        data = {"names": names[0], "ndarray": np.concatenate(arrays).tolist()}
        return {"data": data, "meta": {"tags": tags}}, "ndarray"
    if "tensor" in first:
        shapes = [d["data"]["tensor"]["shape"] for d in loaded]
        if any(s[0] != 1 or s[1:] != shapes[0][1:] for s in shapes):
            raise ValueError("each line must hold one instance, all of the same width")
        values = [v for d in loaded for v in d["data"]["tensor"]["values"]]
        tensor = {"shape": [len(loaded), *shapes[0][1:]], "values": values}
        return {"data": {"names": names[0], "tensor": tensor}, "meta": {"tags": tags}}, "tensor"
    raise ValueError("raw input with predict in mini-batch mode requires data payload")
