"""Model download speed: `unitserve fetch` against `rclone copy`, same S3 server, same run.

Seldon Core's storage initializer runs `rclone copy`; this measures unitserve's
downloader (unitserve.storage, behind `unitserve fetch`) against it on moto's S3 server
on 127.0.0.1, for one large object (200 MB) and for a prefix of 1,000 small objects.
Both are whole processes started the same way, each writing into a new empty folder, in
alternating order; the median of the repeats is reported, and the ratio rclone time /
unitserve time (above 1: unitserve is faster). With --cpu, also the CPU time (user +
system) each way spent in the client and in moto's server, medians of the same runs: on
a shared machine the times follow the load, the CPU much less so.

    make bench-storage                       # or:
    .venv/bin/python benchmarks/storage_bench.py --repeats 3 --big-mb 200 --small 1000 --cpu
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.storage_services import MotoS3  # noqa: E402

BUCKET = "bench"


def seed(s3: MotoS3, big_mb: int, small: int) -> None:
    s3.s3.create_bucket(Bucket=BUCKET)
    chunk = os.urandom(1024 * 1024)
    with tempfile.TemporaryFile() as big:
        for i in range(big_mb):
            big.write(chunk[i:] + chunk[:i])  # not one repeated block
        big.seek(0)
        s3.s3.upload_fileobj(big, BUCKET, "big/model.bin")
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda i: s3.put(BUCKET, f"small/part-{i:04d}.bin", os.urandom(2048 + i)),
                range(small),
            )
        )


# The download alone, as a server's load() makes it: in a Python process whose
# libraries are already imported (importing botocore, and starting Python, cost time of
# their own that `unitserve fetch` pays and rclone does not).
IN_PROCESS = """
import sys, time
import botocore.session
from unitserve.storage import download, s3_transfers
started, cpu = time.perf_counter(), time.process_time()
download(sys.argv[1], sys.argv[2])
print(time.perf_counter() - started, time.process_time() - cpu)
"""


def children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def process_cpu(pid: int) -> float:
    """The CPU time (user + system) process `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(
    command: list[str], env: dict[str, str], server: int, reported: bool = False
) -> tuple[float, float, float]:
    """(seconds, the client's CPU seconds, the server's CPU seconds) of one run; for
    the in-process way, the time and CPU of the download() call alone."""
    cpu, server_cpu = children_cpu(), process_cpu(server)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    server_cpu = process_cpu(server) - server_cpu
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed: {done.stderr.strip()}")
    if reported:
        inside, inside_cpu = done.stdout.strip().splitlines()[-1].split()
        return float(inside), float(inside_cpu), server_cpu
    return elapsed, children_cpu() - cpu, server_cpu


def folder_size(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")]
    return len(files), sum(p.stat().st_size for p in files)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--big-mb", type=int, default=200)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--cpu", action="store_true", help="also print the client's and the server's CPU time"
    )
    args = parser.parse_args()
    rclone = shutil.which("rclone")
    if rclone is None:
        raise SystemExit("rclone is not installed (Debian: apt-get install rclone)")
    unitserve = str(Path(sys.executable).parent / "unitserve")

    s3 = MotoS3(checked_keys=False)
    work = Path(tempfile.mkdtemp(prefix="storage-bench-"))
    try:
        print(f"seeding moto on {s3.url}: {args.big_mb} MB object, {args.small} small objects")
        seed(s3, args.big_mb, args.small)
        # Without a CA bundle of the machine's: the server is plain HTTP, and rclone
        # refuses AWS_CA_BUNDLE with its own HTTP transport.
        inherited = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        env = {
            **inherited,
            "AWS_ACCESS_KEY_ID": s3.key_id,
            "AWS_SECRET_ACCESS_KEY": s3.secret,
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": s3.url,
            "UNITSERVE_MODEL_CACHE": str(work / "cache"),
            "RCLONE_CONFIG": str(work / "rclone.conf"),  # none: the remote is all variables
            "RCLONE_CONFIG_BENCH_TYPE": "s3",
            "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
            "RCLONE_CONFIG_BENCH_ENDPOINT": s3.url,
            "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": s3.key_id,
            "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": s3.secret,
            "RCLONE_CONFIG_BENCH_REGION": "us-east-1",
        }
        results = []
        for prefix in ("big", "small"):
            case = f"one {args.big_mb} MB object" if prefix == "big" else f"{args.small:,} objects"
            tools = ["unitserve fetch", "download() in process", "rclone copy"]
            times: dict[str, list[float]] = {tool: [] for tool in tools}
            cpus: dict[str, list[float]] = {tool: [] for tool in tools}
            server_cpus: dict[str, list[float]] = {tool: [] for tool in tools}
            for repeat in range(args.repeats):
                order = tools if repeat % 2 == 0 else tools[::-1]
                for tool in order:
                    dest = work / f"{tool.split()[0]}-{prefix}-{repeat}"
                    uri = f"s3://{BUCKET}/{prefix}"
                    if tool == "unitserve fetch":
                        command = [unitserve, "fetch", "-q", uri, str(dest)]
                    elif tool == "rclone copy":
                        command = [rclone, "copy", f"bench:{BUCKET}/{prefix}", str(dest)]
                    else:
                        command = [sys.executable, "-c", IN_PROCESS, uri, str(dest)]
                    took, cpu, server_cpu = timed(
                        command, env, s3.process.pid, reported=tool.startswith("down")
                    )
                    times[tool].append(took)
                    cpus[tool].append(cpu)
                    server_cpus[tool].append(server_cpu)
                    count, size = folder_size(dest)
                    shutil.rmtree(dest)
            medians = {tool: statistics.median(times[tool]) for tool in tools}
            rclone_s = medians["rclone copy"]
            row: dict[str, object] = {"case": case, "files": count, "bytes": size}
            for tool in tools:
                row[tool] = {
                    "median_s": round(medians[tool], 3),
                    "all_s": [round(t, 3) for t in times[tool]],
                    "rclone_ratio": round(rclone_s / medians[tool], 2),
                    "client_cpu_s": round(statistics.median(cpus[tool]), 3),
                    "server_cpu_s": round(statistics.median(server_cpus[tool]), 3),
                }
            results.append(row)
            print(f"{case} ({count} files, {size / 2**20:.1f} MiB; median of {args.repeats}):")
            for tool in tools:
                line = (
                    f"  {tool:>22}: {medians[tool]:6.2f} s   "
                    f"rclone time / this time = {rclone_s / medians[tool]:4.2f}"
                )
                if args.cpu:
                    line += (
                        f"   CPU: client {statistics.median(cpus[tool]):5.2f} s, "
                        f"server {statistics.median(server_cpus[tool]):5.2f} s"
                    )
                print(line)
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        s3.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
