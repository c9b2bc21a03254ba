"""`unitserve batch -g istio|ambassador` and the client's `gateway=` go through an
ingress's paths, ``/seldon/NAMESPACE/NAME/api/v1.0/...``, as seldon-batch-processor does.
A small HTTP proxy in the test plays the ingress: it answers 404 to any other path,
strips the prefix, forwards to the real server, and records the paths it saw."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.client_venvs import client_python
from unitserve.client import Client

PREFIX = "/seldon/ns1/dep1"


class Ingress:
    def __init__(self, upstream: str) -> None:
        self.paths: list[str] = []
        forward = httpx.Client(base_url=upstream, timeout=30)
        ingress = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                ingress.paths.append(self.path)
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if not self.path.startswith(PREFIX + "/"):
                    self._answer(404, b'{"error": "no such route"}')
                    return
                resp = forward.post(
                    self.path[len(PREFIX) :],
                    content=body,
                    headers={"content-type": self.headers.get("content-type", "")},
                )
                self._answer(resp.status_code, resp.content)

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.forward = forward

    def __enter__(self) -> Ingress:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
        self.forward.close()


@pytest.fixture
def ingress(serve) -> Iterator[Ingress]:
    with Ingress(serve("Component").url) as proxy:
        yield proxy


@pytest.mark.parametrize("gateway", ["istio", "ambassador"])
def test_batch_calls_the_ingress_paths_the_original_calls(ingress, tmp_path: Path, gateway) -> None:
    source = tmp_path / "in.txt"
    source.write_text("".join(f"[[{i}, 2]]\n" for i in range(5)))
    common = ["-g", gateway, "-d", "dep1", "-n", "ns1", "-h", f"127.0.0.1:{ingress.port}"]
    common += ["-i", str(source)]
    original = client_python("seldon-core").parent / "seldon-batch-processor"
    outputs = {}
    seen = {}
    for who, command in (
        ("ours", [sys.executable, "-m", "unitserve", "batch"]),
        ("theirs", [str(original)]),
    ):
        ingress.paths.clear()
        out = tmp_path / f"{who}.txt"
        done = subprocess.run(
            [*command, *common, "-o", str(out)], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        seen[who] = sorted(ingress.paths)
        outputs[who] = sorted(
            json.loads(line)["data"]["ndarray"] for line in out.read_text().splitlines()
        )
    assert seen["ours"] == seen["theirs"] == [PREFIX + "/api/v1.0/predictions"] * 5
    assert outputs["ours"] == outputs["theirs"] == [[[i, 2]] for i in range(5)]


def test_client_gateway_prefix(ingress) -> None:
    with Client(f"127.0.0.1:{ingress.port}", gateway=PREFIX) as c:
        np.testing.assert_array_equal(c.predict(np.array([[1.0]])).data, [[1.0]])
        c.feedback({"data": {"ndarray": [[1]]}}, None, 1.0)
    assert ingress.paths == [PREFIX + "/api/v1.0/predictions", PREFIX + "/api/v1.0/feedback"]
