"""MLServer custom runtime equivalent to our IdentityModel: every input tensor is decoded to a
numpy array and encoded back, unchanged, as an output of the same name."""

from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class Identity(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        outputs = []
        for request_input in payload.inputs:
            array = NumpyCodec.decode_input(request_input)
            outputs.append(NumpyCodec.encode_output(name=request_input.name, payload=array))
        return InferenceResponse(model_name=self.name, outputs=outputs)
