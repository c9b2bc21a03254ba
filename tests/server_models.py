"""Tiny models for the prepackaged servers' tests and benchmarks, trained on the spot.

Each function trains a small model on scikit-learn's bundled iris data (installed with
the library, nothing downloaded), saves it in a folder the way users save theirs, and
returns the trained model, so that a test can compare the server's answers with the
library's own predictions.
"""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path
from typing import Any

import numpy as np


def iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    data = load_iris()
    return data.data.astype(np.float64), data.target.astype(np.int64)


def sklearn_classifier(folder: Path, file_name: str = "model.joblib") -> Any:
    """A LogisticRegression alone in a one-step Pipeline, as in Seldon's iris example (which
    uses liblinear one-vs-rest; scikit-learn 1.9's liblinear refuses three classes, so this
    keeps the default lbfgs solver)."""
    import joblib
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    X, y = iris()
    model = Pipeline([("clf", LogisticRegression(max_iter=500))])
    model.fit(X, y)
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / file_name)
    return model


def sklearn_regressor(folder: Path) -> Any:
    import joblib
    from sklearn.linear_model import LinearRegression

    X, _ = iris()
    model = LinearRegression().fit(X[:, :3], X[:, 3])
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / "model.joblib")
    return model


def sklearn_transformer(folder: Path) -> Any:
    """A StandardScaler: a model whose answer is ``transform``."""
    import joblib
    from sklearn.preprocessing import StandardScaler

    X, _ = iris()
    model = StandardScaler().fit(X)
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / "model.joblib")
    return model


def xgboost_classifier(folder: Path, file_name: str = "model.json") -> Any:
    """An XGBClassifier saved through its scikit-learn interface (.json or .ubj), or its
    booster in the old binary form (.bst)."""
    import xgboost as xgb

    X, y = iris()
    model = xgb.XGBClassifier(n_estimators=4, max_depth=2, n_jobs=1)
    model.fit(X, y)
    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the old binary form is deprecated, and says so
        model.save_model(folder / file_name)
    return model


def xgboost_booster(folder: Path, objective: str = "multi:softmax") -> Any:
    """A plain Booster (xgb.train), as Seldon's iris example saves it."""
    import xgboost as xgb

    X, y = iris()
    params = {"objective": objective, "max_depth": 2, "nthread": 1}
    if objective.startswith("multi:"):
        params["num_class"] = 3
    booster = xgb.train(params, xgb.DMatrix(X, label=y), num_boost_round=4)
    folder.mkdir(parents=True, exist_ok=True)
    booster.save_model(folder / "model.json")
    return booster


def lightgbm_classifier(folder: Path, file_name: str = "model.txt") -> Any:
    import lightgbm as lgb

    X, y = iris()
    params = {
        "objective": "multiclass",
        "num_class": 3,
        "num_leaves": 4,
        "min_data_in_leaf": 5,
        "verbose": -1,
        "num_threads": 1,
    }
    booster = lgb.train(params, lgb.Dataset(X, label=y), num_boost_round=4)
    folder.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(folder / file_name))
    return booster


COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
# The text column of `table_frame`: where each flower grew, one of these by row.
GARDENS = ("north", "south", "east")


#: The documents `sklearn_text_pipeline` is fitted on, and their classes (1: kind).
TEXTS = (
    ("a kind and helpful answer", 1),
    ("thank you, very helpful", 1),
    ("kind words and good help", 1),
    ("a rude and useless answer", 0),
    ("useless, wrong and rude", 0),
    ("wrong answer, no help at all", 0),
)


def sklearn_text_pipeline(folder: Path) -> Any:
    """A text classifier: TF-IDF then a LogisticRegression, fitted on `TEXTS`. It takes a
    list of documents (a request with content type ``str``)."""
    import joblib
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    model = Pipeline([("tfidf", TfidfVectorizer()), ("clf", LogisticRegression())])
    model.fit([t for t, _ in TEXTS], [c for _, c in TEXTS])
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / "model.joblib")
    return model


def table_frame(rows: np.ndarray) -> Any:
    """Iris rows as a DataFrame of named columns: the four numbers, and a text column
    ``garden`` (`GARDENS` in turn)."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["garden"] = [GARDENS[i % len(GARDENS)] for i in range(len(rows))]
    return frame


def sklearn_table_pipeline(folder: Path) -> Any:
    """A Pipeline fitted on a DataFrame with named columns: a ColumnTransformer scales
    the number columns and one-hot encodes the text column ``garden``, then a
    LogisticRegression. It needs a table with those names: a bare array fails."""
    import joblib
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y = iris()
    columns = ColumnTransformer(
        [
            ("numbers", StandardScaler(), COLUMNS),
            ("text", OneHotEncoder(handle_unknown="ignore"), ["garden"]),
        ]
    )
    model = Pipeline([("columns", columns), ("clf", LogisticRegression(max_iter=500))])
    model.fit(table_frame(X), y)
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / "model.joblib")
    return model


def mlflow_classifier(folder: Path, columns: bool = True) -> Any:
    """A scikit-learn classifier saved as an MLflow model; with `columns` its signature
    names the four columns (a DataFrame input), else it takes a plain array."""
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    X, y = iris()
    model = LogisticRegression(max_iter=500).fit(X, y)
    example: Any = pd.DataFrame(X[:5], columns=COLUMNS) if columns else X[:5]
    signature = infer_signature(example, model.predict(X[:5]))
    folder.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.save_model(
            model, str(folder), signature=signature, serialization_format="cloudpickle"
        )
    return model


def mlflow_array_classifier(folder: Path) -> Any:
    """`mlflow_classifier` with a signature of a plain array (no column names)."""
    return mlflow_classifier(folder, columns=False)


def mlflow_table(folder: Path) -> Any:
    """An MLflow pyfunc model whose answer is a DataFrame: a number column (the row's
    sum) and a text column (``long`` above 15, else ``short``), as object values, the
    form MLServer's pandas codec writes. The class is defined here, in the function,
    so that it is saved with the model (by value) and loads without this module."""
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.models import infer_signature

    class Table(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined,unused-ignore]
        # No type hints: MLflow reads a predict method's hints as its input schema.
        def predict(self, context, model_input, params=None):
            total = pd.DataFrame(model_input).sum(axis=1).to_numpy()
            size = pd.Series(["long" if t > 15 else "short" for t in total], dtype=object)
            return pd.DataFrame({"total": total, "size": size})

    X, _ = iris()
    example = pd.DataFrame(X[:3], columns=COLUMNS)
    signature = infer_signature(example, Table().predict(None, example))
    folder.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.pyfunc.save_model(str(folder), python_model=Table(), signature=signature)
    return Table()


def mlflow_table_by_name(folder: Path) -> Any:
    """`mlflow_table`'s model, its class in tests/fixtures/mlflow_table_model.py saved
    beside it and pickled by name: for a server whose Python differs from ours."""
    import sys

    import mlflow.pyfunc
    import pandas as pd
    from mlflow.models import infer_signature

    code = Path(__file__).parent / "fixtures" / "mlflow_table_model.py"
    sys.path.insert(0, str(code.parent))
    try:
        from mlflow_table_model import Table  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(code.parent))
    X, _ = iris()
    example = pd.DataFrame(X[:3], columns=COLUMNS)
    signature = infer_signature(example, Table().predict(None, example))
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Saving a python_model makes MLflow keep a tracking folder: beside the model, not in
    # the working directory.
    mlflow.set_tracking_uri((folder.parent / "mlruns").as_uri())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.pyfunc.save_model(
            str(folder), python_model=Table(), code_paths=[str(code)], signature=signature
        )
    return Table()


def write_metadata(folder: Path) -> dict[str, Any]:
    """The metadata.yaml of Seldon's iris example, beside the model."""
    text = (
        "name: iris\n"
        "versions: [iris/v1]\n"
        "platform: sklearn\n"
        "inputs:\n"
        "- messagetype: tensor\n"
        "  schema:\n"
        "    names: [sepal_length, sepal_width, petal_length, petal_width]\n"
        "    shape: [4]\n"
        "outputs:\n"
        "- messagetype: tensor\n"
        "  schema:\n"
        "    shape: [3]\n"
    )
    (folder / "metadata.yaml").write_text(text)
    import yaml

    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def train(python: Path, folder: Path, **saved: str) -> None:
    """Run this module's functions with another environment's interpreter (a reference
    server's, whose libraries may not read files that ours write): ``name=subfolder``
    saves ``name(folder / subfolder)``."""
    root = Path(__file__).resolve().parents[1]
    calls = "; ".join(f"m.{name}(Path({str(folder / sub)!r}))" for name, sub in saved.items())
    code = f"import sys; sys.path.insert(0, {str(root)!r}); from pathlib import Path; "
    code += f"from tests import server_models as m; {calls}"
    subprocess.run([str(python), "-c", code], check=True, timeout=600)
