"""Server CPU per gRPC request: Open Inference ModelInfer against Seldon Predict, on real
servers, for this tree and (optionally) another.

Each round starts one `unitserve serve IdentityModel --model-name identity` process tree
on 127.0.0.1 and sends it, with h2load (8 connections, one stream each), a bounded number
of small ModelInfer requests (FP32 [1, 4] in ``raw_input_contents``, or in typed contents
with --typed) and then as many small Seldon Predict requests (an ``ndarray``). What is
measured is the CPU time (user + system, every thread) of the server's processes, read
from /proc before and after each batch, divided by its requests. The trees take turns
round by round and every round is printed, so that other work on a shared machine shows.

    .venv/bin/python benchmarks/v2_grpc_cpu.py [--requests 6000] [--rounds 3] [--typed]
        [--other-src PATH]   # e.g. `git archive main src | tar -x -C /tmp/main`: /tmp/main/src

Unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE before a run (``env -u``).
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from google.protobuf import json_format

from unitserve.proto import inference_pb2, prediction_pb2

MODEL_DIR = Path(__file__).parent / "models" / "seldon"
UNITSERVE = str(Path(sys.executable).parent / "unitserve")
PATHS = {
    "v2": "/inference.GRPCInferenceService/ModelInfer",
    "seldon": "/seldon.protos.Seldon/Predict",
}


def frame(message: bytes) -> bytes:
    """gRPC's length-prefixed message: no compression flag, 4-byte big-endian length."""
    return struct.pack(">BI", 0, len(message)) + message


def bodies(folder: Path, typed: bool) -> dict[str, Path]:
    arr = np.random.default_rng(1).random((1, 4)).astype(np.float32)
    request = inference_pb2.ModelInferRequest(model_name="identity")
    tensor = request.inputs.add(name="input-0", datatype="FP32", shape=arr.shape)
    if typed:
        tensor.contents.fp32_contents.extend(arr.ravel().tolist())
    else:
        request.raw_input_contents.append(arr.astype("<f4").tobytes())
    seldon = json_format.ParseDict(
        {"data": {"ndarray": arr.astype(float).tolist()}}, prediction_pb2.SeldonMessage()
    )
    out = {"v2": folder / "v2.bin", "seldon": folder / "seldon.bin"}
    out["v2"].write_bytes(frame(request.SerializeToString()))
    out["seldon"].write_bytes(frame(seldon.SerializeToString()))
    return out


def process_tree(pid: int) -> list[int]:
    found = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                for child in f.read().split():
                    found += process_tree(int(child))
    except FileNotFoundError:
        pass  # gone meanwhile
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def h2load(port: int, body: Path, path: str, requests: int) -> int:
    """The number of requests that succeeded."""
    argv = ["h2load", "-t", "1", "-c", "8", "-m", "1", "-n", str(requests), "-d", str(body)]
    argv += ["-H", "te: trailers", "-H", "content-type: application/grpc"]
    out = subprocess.run(
        [*argv, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, timeout=120
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("requests:"))
    return int(line.split()[7])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_round(src: str | None, files: dict[str, Path], requests: int) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENBLAS_")}
    if src is not None:
        env["PYTHONPATH"] = src
    http, grpc_port, metrics = free_port(), free_port(), free_port()
    argv = [UNITSERVE, "serve", "IdentityModel", "--model-name", "identity", "--host"]
    argv += ["127.0.0.1", "--http-port", str(http), "--grpc-port", str(grpc_port)]
    argv += ["--metrics-port", str(metrics)]
    server = subprocess.Popen(
        argv, cwd=MODEL_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        ready = f"http://127.0.0.1:{http}/v2/health/ready"
        for _ in range(300):  # the ports are bound before the worker answers
            try:
                with urllib.request.urlopen(ready, timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("the server did not become ready")
        cost = {}
        for kind, path in PATHS.items():
            h2load(grpc_port, files[kind], path, 1000)  # warm-up
            pids = process_tree(server.pid)
            before = cpu_seconds(pids)
            done = h2load(grpc_port, files[kind], path, requests)
            cost[kind] = 1e6 * (cpu_seconds(pids) - before) / requests
            if done != requests:
                raise RuntimeError(f"{kind}: {requests - done} requests failed")
        return cost
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--typed", action="store_true", help="FP32 typed contents, not raw")
    parser.add_argument("--other-src", help="another tree's src/ to compare with")
    args = parser.parse_args()
    trees: dict[str, str | None] = {"this": None}
    if args.other_src:
        trees["other"] = args.other_src
    with tempfile.TemporaryDirectory() as folder:
        files = bodies(Path(folder), args.typed)
        for _ in range(args.rounds):
            for name, src in trees.items():
                cost = one_round(src, files, args.requests)
                shown = "  ".join(f"{kind}: {us:6.1f} us/request" for kind, us in cost.items())
                print(f"{name:6s} {shown}", flush=True)


if __name__ == "__main__":
    main()
