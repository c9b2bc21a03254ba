"""Models for the prepackaged servers' benchmark rows, trained on the spot (iris, as in the
tests): benchmarks/results/raw/scratch/servers/ gets

- sklearn/model.joblib: a LogisticRegression alone in a Pipeline, as Seldon's iris example
  (predict_proba on the Seldon protocol), saved by the seldon-core 1.19 environment so
  that its older NumPy can read it (the newer ones of unitserve and MLServer read it too);
- xgboost/model.json: an XGBClassifier;
- mlserver-sklearn/, mlserver-xgboost/ and their -batch twins: MLServer model folders
  naming those files (model "identity", the name the benchmark's V2 bodies use); the
  -batch ones with MLServer's adaptive batching (32 requests, 10 ms).

Run by `make bench-servers` with the project's interpreter.
"""

import json
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BENCH_DIR.parent))

from tests import server_models  # noqa: E402
from tests.client_venvs import client_python  # noqa: E402

OUT = BENCH_DIR / "results" / "raw" / "scratch" / "servers"
RUNTIMES = {"sklearn": "mlserver_sklearn.SKLearnModel", "xgboost": "mlserver_xgboost.XGBoostModel"}
FILES = {"sklearn": "model.joblib", "xgboost": "model.json"}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    server_models.train(client_python("seldon-core-servers"), OUT, sklearn_classifier="sklearn")
    server_models.xgboost_classifier(OUT / "xgboost")
    for library, runtime in RUNTIMES.items():
        for suffix, batching in (
            ("", {}),
            ("-batch", {"max_batch_size": 32, "max_batch_time": 0.01}),
        ):
            folder = OUT / f"mlserver-{library}{suffix}" / "identity"
            folder.mkdir(parents=True, exist_ok=True)
            settings = {
                "name": "identity",
                "implementation": runtime,
                "parameters": {"uri": str(OUT / library / FILES[library])},
                **batching,
            }
            (folder / "model-settings.json").write_text(json.dumps(settings, indent=2))
    print(f"models in {OUT}")


if __name__ == "__main__":
    main()
