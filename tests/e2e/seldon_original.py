"""Run with seldon-core 1.19's interpreter: SeldonClient's answer for each payload kind,
as JSON lines on stdout. argv: HOST:PORT TRANSPORT."""

import json
import sys
from typing import Any

import numpy as np
from seldon_core.seldon_client import SeldonClient

endpoint, transport = sys.argv[1], sys.argv[2]
sc = SeldonClient(
    gateway="seldon", transport=transport, gateway_endpoint=endpoint, client_return_type="dict"
)
data = np.array([[1.5, 2.0, -3.25]])
calls: dict[str, dict[str, Any]] = {
    "ndarray": {"data": data, "payload_type": "ndarray", "names": ["a", "b", "c"]},
    "tensor": {"data": data, "payload_type": "tensor", "names": ["a", "b", "c"]},
    "strData": {"str_data": "hello"},
    "binData": {"bin_data": b"\x00\x01bin"},
    "jsonData": {"json_data": {"a": [1, 2], "b": "x"}},
}
for kind, kwargs in calls.items():
    answer = sc.predict(**kwargs)
    response = answer.response
    if not isinstance(response, dict):
        from google.protobuf import json_format

        response = json_format.MessageToDict(response)
    print(json.dumps({"kind": kind, "success": answer.success, "response": response}))
