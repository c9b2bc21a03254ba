"""The Open Inference Protocol over REST, called by real clients no one here wrote:
NVIDIA's `tritonclient.http` and KServe's `InferenceRESTClient`, each from a virtual
environment of its own (their pins clash with ours), running a script of
tests/e2e/clients/ against the real server and printing what it saw as JSON."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from ..client_venvs import client_python

CLIENTS = Path(__file__).parent / "clients"


def run_client(venv: str, script: str, *args: str) -> Any:
    python = client_python(venv)
    done = subprocess.run(
        [str(python), str(CLIENTS / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_tritonclient_http(fresh_server: Any) -> None:
    # A server of its own: the test unloads and loads the model.
    server = fresh_server("V2Model")
    seen = run_client("tritonclient", "triton_http.py", server.url, "V2Model")
    assert seen["live"] and seen["ready"] and seen["model_ready"]
    assert "binary_tensor_data" in seen["server_metadata"]["extensions"]
    assert seen["model_metadata"]["name"] == "V2Model"
    assert seen["model_metadata"]["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    bad = {k: v for k, v in seen["datatypes"].items() if not v["same"]}
    assert not bad, bad
    assert len(seen["datatypes"]) == 12 * 4 + 1
    assert seen["requested"] == {"names": ["b"], "b": [0.5, 1.5]}
    assert seen["all_outputs"] == {"names": ["a", "b"], "id": "abc"}
    status, message = seen["errors"]["unknown_model"]
    assert status == "400" or "404" in str(status) or "nope" in message
    assert "nope" in message
    assert "zzz" in seen["errors"]["unknown_output"][1]
    assert seen["index"] == [{"name": "V2Model", "state": "READY", "reason": ""}]
    after = seen["after_unload"]
    assert after["model_ready"] is False
    assert after["index"][0]["state"] == "UNAVAILABLE"
    assert "unloaded" in after["infer"][1]
    assert seen["after_load"] == {"model_ready": True, "infer": [1, 2]}


def test_kserve_inference_rest_client(serve: Any) -> None:
    server = serve("V2Model")
    seen = run_client("kserve", "kserve_rest.py", server.url, "V2Model")
    assert seen["live"] and seen["ready"] and seen["model_ready"]
    for case, result in seen["infer"].items():
        assert result == {"same": True, "id": "k1", "name": "output-0"}, case
