"""Run by MLServer (in its own virtual environment), never imported by unitserve's tests:
an MLServer runtime that behaves as the V2Model fixture does without an ``answer``
parameter, so that both servers can be sent the same requests and their answers compared.

One input comes back as ``output-0``; several come back as one output each, under their
own names (V2Model returns the dict of inputs it was given). Arrays are decoded and
encoded with MLServer's own codecs, as an MLServer user would write it: the NumPy codec,
and for BYTES the string codec (the NumPy codec reads a BYTES tensor's last dimension
as the length of each element, so it cannot take texts of different lengths).
"""

from mlserver import MLModel
from mlserver.codecs import NumpyCodec, StringCodec
from mlserver.types import InferenceRequest, InferenceResponse


class EchoRuntime(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        codecs = [StringCodec if i.datatype == "BYTES" else NumpyCodec for i in payload.inputs]
        names = [i.name for i in payload.inputs] if len(payload.inputs) > 1 else ["output-0"]
        outputs = [
            codec.encode_output(name, codec.decode_input(i))
            for name, codec, i in zip(names, codecs, payload.inputs, strict=True)
        ]
        if payload.outputs:
            by_name = {o.name: o for o in outputs}
            outputs = [by_name[o.name] for o in payload.outputs if o.name in by_name]
        # MLServer puts the request's HTTP headers in parameters.headers and sends an
        # answer's parameters.headers as response headers: echoing them would send a
        # second Content-Length.
        tags = {
            k: v
            for k, v in (payload.parameters.model_dump() if payload.parameters else {}).items()
            if k != "headers" and v is not None
        }
        return InferenceResponse(
            model_name=self.name, id=payload.id, parameters=tags or None, outputs=outputs
        )
