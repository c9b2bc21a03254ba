"""Run by MLServer only (see ../README.md): one input back as output-0; a load that
waits parameters.extra.load_seconds."""

import asyncio

from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class EchoRuntime(MLModel):
    async def load(self) -> bool:
        extra = (self.settings.parameters.extra if self.settings.parameters else None) or {}
        await asyncio.sleep(float(extra.get("load_seconds", 0)))
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        [tensor] = payload.inputs
        output = NumpyCodec.encode_output("output-0", NumpyCodec.decode_input(tensor))
        return InferenceResponse(model_name=self.name, id=payload.id, outputs=[output])
