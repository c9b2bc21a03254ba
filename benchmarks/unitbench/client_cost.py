"""Client CPU per call: unitserve.client.Client.predict of a 1x4 array vs a bare httpx post.

Run by the tools runner (tools.py) on the load core, against a unitserve server pinned to
another core, so that this process' CPU time is the client's alone. Both clients call the same
route (/predict) with the same numbers over one keep-alive connection; the bare client posts a
body built once beforehand, so its cost is httpx's and nothing else. The two alternate in
rounds (after a warm-up of each), so that a change of machine speed during the measurement
hits both alike; each round's CPU per call is process CPU time (user + system, all threads)
over the round's calls, and the result is the median over the rounds. Prints one JSON object.
"""

import argparse
import json
import statistics
import time

import httpx
import numpy as np

from unitserve.client import Client

ARRAY = np.array([[0.5, 1.25, -3.0, 42.0]])


def cpu_per_call(call, calls: int) -> float:
    """Microseconds of this process' CPU per call over `calls` calls."""
    before = time.process_time()
    for _ in range(calls):
        call()
    return (time.process_time() - before) / calls * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--calls", type=int, default=2000, help="calls per round and client")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    url = f"http://127.0.0.1:{args.port}"
    body = json.dumps({"data": {"ndarray": ARRAY.tolist()}}).encode()
    headers = {"Content-Type": "application/json"}
    with Client(url) as client, httpx.Client() as bare:

        def ours() -> None:
            client.predict(ARRAY)

        def theirs() -> None:
            reply = bare.post(f"{url}/predict", content=body, headers=headers)
            reply.raise_for_status()
            _ = reply.content

        answer = client.predict(ARRAY)  # both must get the identity's answer before timing
        if not np.array_equal(np.asarray(answer.data), ARRAY):
            raise SystemExit(f"unexpected answer from the client: {answer.data!r}")
        if (
            json.loads(bare.post(f"{url}/predict", content=body, headers=headers).content)["data"][
                "ndarray"
            ]
            != ARRAY.tolist()
        ):
            raise SystemExit("unexpected answer to the bare post")
        warm = max(100, args.calls // 5)
        cpu_per_call(ours, warm)
        cpu_per_call(theirs, warm)
        rounds: dict[str, list[float]] = {"client": [], "httpx": []}
        started = time.monotonic()
        for _ in range(args.rounds):
            rounds["client"].append(cpu_per_call(ours, args.calls))
            rounds["httpx"].append(cpu_per_call(theirs, args.calls))
    client_us, httpx_us = statistics.median(rounds["client"]), statistics.median(rounds["httpx"])
    print(
        json.dumps(
            {
                "calls": args.calls * args.rounds,
                "seconds": round(time.monotonic() - started, 2),
                "client_us_per_call": round(client_us, 1),
                "httpx_us_per_call": round(httpx_us, 1),
                "ratio": round(client_us / httpx_us, 3),
                "rounds": {k: [round(x, 1) for x in v] for k, v in rounds.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
