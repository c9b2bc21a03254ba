"""MLServer custom runtime serving the same forest as examples/batching_sklearn:
trained in load() by the example's own code (copied next to this file by the runner),
one output of predict_proba rows. MLServer's adaptive batching merges requests before
`predict` and splits its output after, as unitserve's does."""

from ForestClassifier import trained_forest
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class Forest(MLModel):
    async def load(self) -> bool:
        self.forest = trained_forest()
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        X = NumpyCodec.decode_input(payload.inputs[0])
        proba = self.forest.predict_proba(X)
        return InferenceResponse(
            model_name=self.name, outputs=[NumpyCodec.encode_output("output-0", proba)]
        )
