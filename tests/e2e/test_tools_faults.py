"""The client and `unitserve batch` when connections drop in the middle of a request: a
small TCP proxy between them and a real server cuts some connections, either before the
server sees the request or after it has answered (the answer is lost on the way back)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.dropping_proxy import DroppingProxy
from unitserve.client import Client


@pytest.mark.parametrize("after_server", [False, True], ids=["before", "after"])
@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_client_retries_dropped_connections(serve, transport, after_server) -> None:
    server = serve("Component")
    port = server.http_port if transport == "rest" else server.grpc_port
    with (
        DroppingProxy(port, every=5, after_server=after_server) as proxy,
        Client(f"127.0.0.1:{proxy.port}", transport=transport, retries=8, backoff=0.001) as c,
    ):
        for i in range(40):
            row = np.array([[i, -i, 0.5]])
            np.testing.assert_array_equal(c.predict(row).data, row)
    assert proxy.dropped >= 3
    assert c.retried >= 1


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("after_server", [False, True], ids=["before", "after"])
@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_batch_through_dropped_connections_loses_and_repeats_nothing(
    serve, tmp_path: Path, transport, after_server
) -> None:
    server = serve("Component")
    port = server.http_port if transport == "rest" else server.grpc_port
    source = tmp_path / "in.txt"
    source.write_text("".join(f"[[{i}, {i + 1}]]\n" for i in range(150)))
    out = tmp_path / "out.txt"
    with DroppingProxy(port, every=9, after_server=after_server) as proxy:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "unitserve",
                "batch",
                "-g",
                "seldon",
                "--transport",
                transport,
                "-h",
                f"127.0.0.1:{proxy.port}",
                "-i",
                str(source),
                "-o",
                str(out),
                "-w",
                "4",
                "-r",
                "10",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    assert proxy.dropped >= 3
    lines = _lines(out)
    assert [line["data"]["ndarray"] for line in lines] == [[[i, i + 1]] for i in range(150)]
    assert [line["meta"]["tags"]["batch_index"] for line in lines] == list(range(150))
    retried = int(done.stderr.split(" retried")[0].rsplit(" ", 1)[-1])
    assert retried >= 1, done.stderr
