"""`unitserve test` and `unitserve batch` against a real server, side by side with
seldon-core-microservice-tester and seldon-batch-processor (seldon-core 1.19, in a virtual
environment of its own), and under faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.batch_lines import comparable
from tests.client_venvs import client_python
from tests.conftest import wait_until

CONTRACT = {
    "features": [
        {"name": "x", "ftype": "continuous", "dtype": "FLOAT", "range": [0, 10], "repeat": 2},
        {"name": "n", "ftype": "continuous", "dtype": "INT", "range": [1, 5]},
        {"name": "wide", "ftype": "continuous", "dtype": "FLOAT", "shape": [3]},
    ],
    "targets": [{"name": "y", "ftype": "continuous", "dtype": "FLOAT", "repeat": 6}],
}


def unitserve(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "unitserve", *args], capture_output=True, text=True, timeout=timeout
    )


def original(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    python = client_python("seldon-core")
    return subprocess.run(
        [str(python.parent / tool), *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("flags", [[], ["--tensor"], ["--grpc"], ["--grpc", "--tensor"]])
def test_tester_sends_what_the_original_sends(serve, tmp_path, flags) -> None:
    contract = tmp_path / "contract.json"
    # No targets: the echoing model answers with the features' names, not the targets'.
    contract.write_text(json.dumps({**CONTRACT, "targets": []}))
    records = {}
    for who in ("ours", "theirs"):
        record = tmp_path / f"{who}.jsonl"
        server = serve("Recorder", env={"RECORD_TO": str(record)})
        port = str(server.grpc_port if "--grpc" in flags else server.http_port)
        args = [str(contract), "127.0.0.1", port, "-n", "3", "-b", "2", *flags]
        done = (
            unitserve("test", *args)
            if who == "ours"
            else original("seldon-core-microservice-tester", *args)
        )
        assert done.returncode == 0, done.stderr
        records[who] = [json.loads(line) for line in record.read_text().splitlines()]
    assert records["ours"] == records["theirs"]
    assert records["ours"][0]["shape"] == [2, 6]


def test_tester_fails_on_a_broken_contract(serve, tmp_path) -> None:
    contract = tmp_path / "contract.json"
    broken = {
        **CONTRACT,
        "targets": [
            {"name": "y", "ftype": "continuous", "dtype": "FLOAT", "range": [100, 200], "repeat": 6}
        ],
    }
    contract.write_text(json.dumps(broken))
    server = serve("Component")
    done = unitserve("test", str(contract), "127.0.0.1", str(server.http_port), "-n", "2")
    assert done.returncode == 1
    assert "outside the range" in done.stdout and "2 broke it" in done.stderr


@pytest.mark.parametrize("extra", [[], ["-p", "tensor"], ["-s", "3"], ["--transport", "grpc"]])
def test_batch_writes_what_the_original_writes(serve, tmp_path, extra) -> None:
    server = serve("Component")
    source = tmp_path / "in.txt"
    source.write_text("".join(f"[[{i}, {i + 0.5}, {-i}]]\n" for i in range(20)))
    port = server.grpc_port if "grpc" in extra else server.http_port
    common = ["-g", "seldon", "-h", f"127.0.0.1:{port}", "-i", str(source), "-w", "4", *extra]
    done = unitserve("batch", *common, "-o", str(tmp_path / "ours.txt"))
    assert done.returncode == 0, done.stderr
    done = original(
        "seldon-batch-processor", "-d", "x", *common, "-o", str(tmp_path / "theirs.txt")
    )
    assert done.returncode == 0, done.stderr
    ours, theirs = comparable(tmp_path / "ours.txt"), comparable(tmp_path / "theirs.txt")
    assert [a["meta"]["tags"]["batch_index"] for a in ours] == list(range(20))
    if "grpc" in extra:
        # The original sends no tags over gRPC, so its lines cannot be put back in input
        # order: compare the answers' data as sets.
        key = json.dumps
        assert sorted(map(key, (a["data"] for a in ours))) == sorted(
            map(key, (a["data"] for a in theirs))
        )
    else:
        assert ours == sorted(theirs, key=lambda a: a["meta"]["tags"]["batch_index"])


def batch_argv(port: int, source: Path, out: Path, *extra: str) -> list[str]:
    """The command line of `unitserve batch` sending `source` to the server's own REST
    route on 127.0.0.1:`port`, answers to `out`."""
    command = [sys.executable, "-m", "unitserve", "batch", "-g", "seldon"]
    return [*command, "-h", f"127.0.0.1:{port}", "-i", str(source), "-o", str(out), *extra]


def _indexes(path: Path) -> list[int]:
    return [
        json.loads(line)["meta"]["tags"]["batch_index"] for line in path.read_text().splitlines()
    ]


def test_batch_rides_out_a_server_that_answers_503_for_a_while(fresh_server, tmp_path) -> None:
    server = fresh_server("Flaky503", "--workers", "1", env={"FLAKY_FAILS": "6"})
    source = tmp_path / "in.txt"
    source.write_text("".join(f"[[{i}]]\n" for i in range(30)))
    out = tmp_path / "out.txt"
    done = subprocess.run(
        batch_argv(server.http_port, source, out, "-w", "3", "-r", "10"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert _indexes(out) == list(range(30))
    assert "6 retried" in done.stderr


def test_batch_rides_out_a_restart_and_marks_what_never_got_through(fresh_server, tmp_path) -> None:
    server = fresh_server("Component")
    source = tmp_path / "in.txt"
    source.write_text("".join(f"[[{i}]]\n" for i in range(2000)))
    out = tmp_path / "out.txt"
    argv = batch_argv(
        server.http_port, source, out, "-w", "4", "-r", "12", "--batch-interval", "0.005"
    )
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: out.exists() and out.stat().st_size > 0, timeout=60)
        server.stop()
        # stop() closes the helper's HTTP client; start() polls /ready with it.
        server.client = httpx.Client(base_url=server.url, timeout=30)
        server.start()
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["meta"]["tags"]["batch_index"] for line in lines] == list(range(2000))
    assert all("data" in line or line["status"]["info"] == "FAILURE" for line in lines), err


def test_batch_killed_then_resumed_completes_the_file(serve, tmp_path) -> None:
    server = serve("Component")
    source = tmp_path / "in.txt"
    source.write_text("".join(f"[[{i}]]\n" for i in range(3000)))
    out = tmp_path / "out.txt"
    args = batch_argv(server.http_port, source, out, "-w", "2")
    proc = subprocess.Popen(args, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: out.exists() and out.stat().st_size > 20_000, timeout=60)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done = subprocess.run([*args, "--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resuming after" in done.stderr
    assert _indexes(out) == list(range(3000))
