"""Tried as a new user would: `unitserve init demo && cd demo && unitserve serve` answers.
The image that `unitserve build` makes of it is built and run by tests/e2e/test_image.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..conftest import Server, run_cli
from .grpc_client import call_json

ROOT = Path(__file__).resolve().parents[2]

REQUESTS = {
    "MODEL": ("/api/v1.0/predictions", {"data": {"ndarray": [[1.0, 2.0]]}}, [[1.0, 2.0]]),
    "TRANSFORMER": ("/transform-input", {"data": {"ndarray": [[1.0, 2.0]]}}, [[1.0, 2.0]]),
    "OUTPUT_TRANSFORMER": ("/transform-output", {"data": {"ndarray": [[3.0]]}}, [[3.0]]),
    "ROUTER": ("/route", {"data": {"ndarray": [[1.0, 2.0]]}}, [[0]]),
    "COMBINER": (
        "/aggregate",
        [{"data": {"ndarray": [[1.0, 2.0]]}}, {"data": {"ndarray": [[3.0, 4.0]]}}],
        [[2.0, 3.0]],
    ),
}


class BareServe(Server):
    """`unitserve serve` with no argument, as the README of a new component says."""

    def __init__(self, cwd: Path) -> None:
        super().__init__("bare-serve", cwd=cwd)
        self.command.remove("bare-serve")


@pytest.mark.parametrize("kind", list(REQUESTS))
def test_init_then_serve_answers(tmp_path, kind):
    assert run_cli("init", "demo", "--type", kind, cwd=tmp_path).returncode == 0
    server = BareServe(tmp_path / "demo").start()
    try:
        path, body, expected = REQUESTS[kind]
        r = server.post(path, json=body)
        assert r.status_code == 200, r.text
        assert r.json()["data"]["ndarray"] == expected
        if kind == "MODEL":
            out = call_json(server.grpc_target, "Model/Predict", body)
            assert out["data"]["ndarray"] == expected
    finally:
        assert server.stop() == 0
