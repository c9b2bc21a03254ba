"""A text model served over the Open Inference Protocol: BYTES in, BYTES (and INT32)
out. Clients such as tritonclient send BYTES elements as bytes; a request that sets
the input's ``parameters.content_type`` to ``"str"`` gets them as str instead, so
the model accepts both."""

import numpy as np


class TextStats:
    def predict(self, X, feature_names):
        texts = [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in X.reshape(-1)]
        words = [t.lower().split() for t in texts]
        # A dict answers one output per key, named after it.
        return {
            "normalized": np.array([" ".join(w) for w in words], dtype=object),
            "word_count": np.array([len(w) for w in words], dtype=np.int32),
        }

    def init_metadata(self):
        return {
            "platform": "python",
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
            "outputs": [
                {"name": "normalized", "datatype": "BYTES", "shape": [-1]},
                {"name": "word_count", "datatype": "INT32", "shape": [-1]},
            ],
        }
