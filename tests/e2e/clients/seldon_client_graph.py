"""Run with seldon-core 1.19's interpreter: SeldonClient in gateway mode against a graph
served by `unitserve graph` (as it would call the orchestrator behind an ingress), a
prediction and then feedback about it. Prints one JSON line per call on stdout.
argv: HOST:PORT TRANSPORT (rest or grpc)."""

import json
import sys

import numpy as np
from google.protobuf import json_format
from seldon_core.seldon_client import SeldonClient

endpoint, transport = sys.argv[1], sys.argv[2]
client = SeldonClient(
    gateway="seldon",
    transport=transport,
    gateway_endpoint=endpoint,
    deployment_name="graph",
    namespace="default",
    client_return_type="proto",
)
# REST: no ingress in front, so the orchestrator's own paths (/api/v1.0/...)
prefix = "" if transport == "rest" else None


def as_dict(message):
    return json_format.MessageToDict(message) if message is not None else None


prediction = client.predict(
    data=np.array([[1.0, 2.0]]), payload_type="ndarray", gateway_prefix=prefix
)
print(
    json.dumps(
        {
            "call": "predict",
            "success": prediction.success,
            "msg": prediction.msg,
            "response": as_dict(prediction.response),
        }
    )
)
feedback = client.feedback(
    prediction_request=prediction.request,
    prediction_response=prediction.response,
    reward=1.0,
    gateway_prefix=prefix,
)
print(
    json.dumps(
        {
            "call": "feedback",
            "success": feedback.success,
            "msg": feedback.msg,
            "response": as_dict(feedback.response),
        }
    )
)
