"""The Open Inference Protocol ("V2", KServe / Triton / MLServer): its wire forms ⇄
the engine's `Message` and `Reply`.

`datatypes` (names ⇄ numpy dtypes), `tensors` (one tensor ⇄ an array),
`binary` (the binary tensor data extension), `mapping` (request ⇄ the user's
arguments, result ⇄ outputs), `json_codec` (REST bodies) and `proto_codec`
(``inference.ModelInferRequest`` / ``ModelInferResponse``).
"""
