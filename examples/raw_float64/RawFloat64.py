"""`predict_raw` gets the request as it came: a dict on REST, a SeldonMessage on gRPC.

Here it decodes the numbers itself as float64. (The normal path keeps JSON
integers as integers on REST, e.g. [[1, 3]] arrives as an int64 array.)
"""

import numpy as np
from google.protobuf import json_format


class RawFloat64:
    def predict_raw(self, msg):
        request = msg if isinstance(msg, dict) else json_format.MessageToDict(msg)
        data = request.get("data", {})
        if "tensor" in data:
            tensor = data["tensor"]
            X = np.asarray(tensor["values"], dtype=np.float64).reshape(tensor["shape"])
        else:
            X = np.asarray(data.get("ndarray", []), dtype=np.float64)
        shares = X / X.sum(axis=1, keepdims=True)
        # A raw answer is sent as is: no names, tags or metrics are added for us.
        answer = {
            "data": {
                "names": [f"share_{i}" for i in range(X.shape[1])],
                "ndarray": shares.tolist(),
            },
            "meta": {"tags": {"dtype": str(X.dtype)}},
        }
        if isinstance(msg, dict):
            return answer
        return json_format.ParseDict(answer, type(msg)())
