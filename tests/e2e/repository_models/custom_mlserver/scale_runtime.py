"""Run by MLServer only: an MLServer custom runtime that multiplies its input by the
`factor` of parameters.extra; custom_seldon/Scale.py is the same model as a Seldon class."""

from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import MLServerError
from mlserver.types import InferenceRequest, InferenceResponse


class ScaleRuntime(MLModel):
    async def load(self) -> bool:
        extra = (self.settings.parameters.extra if self.settings.parameters else None) or {}
        self.factor = float(extra.get("factor", 1))
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        if len(payload.inputs) != 1:
            raise MLServerError("Scale takes one input", status_code=400)
        X = NumpyCodec.decode_input(payload.inputs[0])
        output = NumpyCodec.encode_output("output-0", X * self.factor)
        return InferenceResponse(model_name=self.name, id=payload.id, outputs=[output])
