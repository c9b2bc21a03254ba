"""Model metadata: `init_metadata()` answers GET /metadata and gRPC Model/Metadata.
It runs once per worker, after load(); MODEL_METADATA (YAML or JSON) overrides keys."""


class WithMetadata:
    def load(self):
        self.version = "2024-06"  # e.g. read from the loaded artefact

    def init_metadata(self):
        return {
            "name": "price-model",
            "versions": [self.version],
            "platform": "numpy",
            "inputs": [{"messagetype": "ndarray", "schema": {"names": ["size", "rooms"]}}],
            "outputs": [{"name": "price", "datatype": "FP64", "shape": [1]}],
            "custom": {"team": "pricing"},
        }

    def predict(self, X, features_names):
        return X
