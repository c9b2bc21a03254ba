"""KServe ModelServer with a model equivalent to our IdentityModel: every input tensor is read as
a numpy array and sent back unchanged as an output of the same name.

Run with the kserve venv's interpreter: `python identity_server.py --http_port H --grpc_port G`
(ModelServer reads its own flags from the command line). The model is called `identity`, as in
the MLServer runtime, so every server of the Open Inference rows gets the same request bytes.
Binary outputs are sent when the request asks for them (`binary_data_output`), as tritonclient
does, so the binary row measures KServe's binary path both ways.
"""

import uuid

from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer


class Identity(Model):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.load()

    def load(self) -> bool:
        self.ready = True
        return self.ready

    async def predict(self, payload, headers=None, response_headers=None):  # type: ignore[no-untyped-def]
        request: InferRequest = payload
        binary = bool((request.parameters or {}).get("binary_data_output", False))
        outputs = []
        for tensor in request.inputs:
            array = tensor.as_numpy()
            output = InferOutput(
                name=tensor.name, shape=list(array.shape), datatype=tensor.datatype
            )
            output.set_data_from_numpy(array, binary_data=binary)
            outputs.append(output)
        return InferResponse(
            model_name=self.name,
            infer_outputs=outputs,
            # KServe's response model requires an id; it makes one when the request has none
            response_id=request.id or str(uuid.uuid4()),
            use_binary_outputs=binary,
        )


if __name__ == "__main__":
    ModelServer().start([Identity("identity")])
