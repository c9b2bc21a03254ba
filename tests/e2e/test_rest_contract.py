"""The user-class contract through a real server, where it depends on the process:
environment variables, ``--parameters``, ``load()`` and the model metadata. Every
method variant, the meta merge and the error answers are tested in-process
(tests/unit/test_user_methods.py, test_meta_and_metrics.py, test_errors.py)."""

from __future__ import annotations

import pytest

ONE = {"data": {"ndarray": [[1]]}}


def test_puid_and_request_path(fresh_server):
    server = fresh_server(
        "Identity",
        env={"PREDICTIVE_UNIT_ID": "clf", "PREDICTIVE_UNIT_IMAGE": "repo/clf:1.2"},
        grpc=False,
    )
    body = server.post(
        "/predict", json={**ONE, "meta": {"puid": "abc", "requestPath": {"up": "img:1"}}}
    ).json()
    assert body["meta"] == {"puid": "abc", "requestPath": {"clf": "repo/clf:1.2", "up": "img:1"}}


def test_health_status_variants(fresh_server):
    assert fresh_server("Health", grpc=False).get("/health/status").json() == {
        "strData": "all good",
        "meta": {},
    }
    server = fresh_server(
        "Health",
        "--parameters",
        '[{"name": "mode", "value": "array", "type": "STRING"}]',
        grpc=False,
    )
    assert server.get("/health/status").json()["data"] == {
        "names": [],
        "tensor": {"shape": [2], "values": [0.5, 1.5]},
    }
    server = fresh_server(
        "Health",
        "--parameters",
        '[{"name": "mode", "value": "raise", "type": "STRING"}]',
        grpc=False,
    )
    r = server.get("/api/v1.0/health/status")
    assert r.status_code == 500 and r.json()["status"]["info"] == "database unreachable"


def test_payload_passthrough(fresh_server):
    server = fresh_server("Passthrough", env={"PAYLOAD_PASSTHROUGH": "true"}, grpc=False)
    r = server.post("/predict", content=b"not even json")
    assert (r.status_code, r.json()) == (200, {"kind": "bytes", "len": 13})
    r = server.get("/predict", params={"json": "abc"})
    assert r.json() == {"kind": "str", "len": 3}


def test_metadata(fresh_server):
    server = fresh_server("Metadata", grpc=False)
    body = server.get("/metadata").json()
    assert body["name"] == "my-model" and body["custom"] == {"loaded": "True"}
    assert server.get("/api/v1.0/metadata").json() == body


def test_metadata_defaults_env_and_invalid(fresh_server):
    server = fresh_server(
        "Identity",
        env={"PREDICTIVE_UNIT_IMAGE": "reg:5000/m:0.3", "MODEL_METADATA": "platform: yaml\n"},
        grpc=False,
    )
    assert server.get("/metadata").json() == {
        "name": "reg:5000/m",
        "versions": ["0.3"],
        "platform": "yaml",
        "inputs": [],
        "outputs": [],
        "custom": {},
    }
    server = fresh_server(
        "Metadata",
        "--parameters",
        '[{"name": "variant", "value": "invalid", "type": "STRING"}]',
        grpc=False,
    )
    r = server.get("/metadata")
    assert r.status_code == 500
    assert r.json() == {
        "status": {
            "code": -1,
            "info": "Model metadata unavailable",
            "reason": "MICROSERVICE_BAD_METADATA",
            "status": 1,
        }
    }


@pytest.mark.parametrize("preload", [False, True])
def test_async_load_and_init_metadata_are_awaited(fresh_server, preload):
    server = fresh_server("AsyncLoad", *(["--preload"] if preload else []), grpc=False)
    assert server.post("/predict", json=ONE).json()["jsonData"] == {"loaded": True}
    metadata = server.get("/metadata").json()
    assert metadata["name"] == "async-model" and metadata["custom"] == {"loaded": "True"}
