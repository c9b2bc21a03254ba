"""python -m unitbench {run,report,list}: see benchmarks/README.md.

Every option of `run` also has an environment variable (in brackets), so `make bench` can be
narrowed without editing anything, e.g. BENCH_SERVERS=unitserve,seldon BENCH_PAYLOADS=small.
"""

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from unitbench import machine, report, runner, servers, tools
from unitbench.paths import BENCH_DIR, RAW_DIR, RESULTS_DIR, SCRATCH_DIR
from unitbench.payloads import PAYLOADS, body

QUICK = {
    "servers": "quick,asgi-echo",
    "protos": "rest,grpc",
    "payloads": "small",
    "conc": "8",
    "duration": "5",
    "repeats": "3",
    "warmup": "2",
}


def env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m unitbench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the matrix, write results.jsonl and REPORT.md")
    run.add_argument(
        "--quick",
        action="store_true",
        help="bench-quick preset: " + " ".join(f"{k}={v}" for k, v in QUICK.items()),
    )
    run.add_argument(
        "--servers", help="names or groups (all, references, ceilings, quick) [BENCH_SERVERS=all]"
    )
    run.add_argument("--protos", help="rest,grpc [BENCH_PROTOS]")
    run.add_argument("--payloads", help=f"{','.join(PAYLOADS)} [BENCH_PAYLOADS]")
    run.add_argument("--conc", help="concurrencies (connections) [BENCH_CONC=1,8,64]")
    run.add_argument("--large-conc", help="for the large payload [BENCH_LARGE_CONC=1,8]")
    run.add_argument("--duration", type=float, help="seconds per run [BENCH_DURATION=4]")
    run.add_argument("--large-duration", type=float, help="[BENCH_LARGE_DURATION=8]")
    run.add_argument("--repeats", type=int, help="[BENCH_REPEATS=3]")
    run.add_argument("--warmup", type=float, help="seconds of warm-up per session [BENCH_WARMUP=2]")
    run.add_argument("--server-cpus", help="taskset list for servers [BENCH_SERVER_CPUS=0]")
    run.add_argument("--load-cpus", help="taskset list for wrk/h2load [BENCH_LOAD_CPUS=1]")
    run.add_argument("--port-base", type=int, help="[BENCH_PORT_BASE=18100]")
    run.add_argument(
        "--out-dir",
        type=Path,
        help="where results.jsonl and REPORT.md go [BENCH_OUT_DIR=results/raw/last]",
    )
    run.add_argument(
        "--netns",
        choices=("auto", "yes", "no"),
        help="run inside a private network namespace (unshare -n) [BENCH_NETNS=auto]",
    )
    run.add_argument(
        "--nice",
        type=int,
        help="scheduling priority of the harness, servers and load"
        " tools, e.g. -10 on a shared machine (root only) [BENCH_NICE=0]",
    )
    run.add_argument(
        "--tools",
        help="tools rows after the servers: batch, client, both, or none"
        " [BENCH_TOOLS=auto: both when --servers is all, none otherwise]",
    )
    run.add_argument(
        "--batch-lines", type=int, help="lines of the batch input [BENCH_BATCH_LINES=100000]"
    )
    run.add_argument(
        "--batch-workers", type=int, help="--workers of both batch tools [BENCH_BATCH_WORKERS=8]"
    )
    run.add_argument(
        "--client-calls",
        type=int,
        help="calls per round and client; 5 rounds [BENCH_CLIENT_CALLS=4000]",
    )
    run.add_argument("--startup-timeout", type=float, default=120.0)
    run.add_argument("--stop-grace", type=float, default=5.0)

    rep = sub.add_parser("report", help="(re)write REPORT.md from a results.jsonl")
    rep.add_argument("jsonl", type=Path, nargs="?", default=RESULTS_DIR / "results.jsonl")
    rep.add_argument("--out", type=Path, help="default: REPORT.md next to the jsonl")

    sub.add_parser("list", help="servers (and whether they can run here) and payloads")
    return ap.parse_args(argv)


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fill every unset option: --quick preset, then BENCH_* environment, then defaults."""
    defaults = {
        "servers": "all",
        "protos": "rest,grpc",
        "payloads": ",".join(PAYLOADS),
        "conc": "1,8,64",
        "large_conc": "1,8",
        "duration": "4",
        "large_duration": "8",
        "repeats": "3",
        "warmup": "2",
        "server_cpus": "0",
        "load_cpus": "1",
        "port_base": "18100",
        "netns": "auto",
        "nice": "0",
        "out_dir": str(RAW_DIR / "last"),
        "tools": "auto",
        "batch_lines": "100000",
        "batch_workers": "8",
        "client_calls": "4000",
    }
    for key, default in defaults.items():
        if getattr(args, key) is None:
            value = env(f"BENCH_{key.upper()}", QUICK.get(key, default) if args.quick else default)
            setattr(args, key, value)
    args.duration, args.large_duration = float(args.duration), float(args.large_duration)
    args.warmup, args.repeats = float(args.warmup), int(args.repeats)
    args.port_base, args.out_dir = int(args.port_base), Path(args.out_dir)
    args.nice = int(args.nice)
    args.batch_lines, args.batch_workers = int(args.batch_lines), int(args.batch_workers)
    args.client_calls = int(args.client_calls)
    if args.tools == "auto":  # the full matrix includes them; a narrowed run asks by name
        args.tools = ",".join(tools.TOOLS) if args.servers == "all" else ""
    args.tools = ",".join(t for t in words(args.tools) if t != "none")
    for tool in words(args.tools):
        if tool not in tools.TOOLS:
            raise SystemExit(f"unknown tool {tool!r}; known: {', '.join(tools.TOOLS)}, none")
    return args


def ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def words(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def netns_available() -> bool:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    probe = ["unshare", "-n", "--", "ip", "link", "set", "lo", "up"]
    return subprocess.run(probe, capture_output=True).returncode == 0


def reexec_in_netns(argv: list[str]) -> int:
    """Run this very command again inside a new network namespace that has only loopback."""
    os.environ["UNITBENCH_IN_NETNS"] = "1"
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = f"{BENCH_DIR}{os.pathsep}{path}" if path else str(BENCH_DIR)
    inner = shlex.join([sys.executable, "-m", "unitbench", *argv])
    cmd = ["unshare", "-n", "--", "sh", "-c", f"ip link set lo up && exec {inner}"]
    return subprocess.run(cmd).returncode


def check_tools() -> None:
    missing = [t for t in ("wrk", "h2load", "taskset") if not shutil.which(t)]
    if missing:
        raise SystemExit(
            f"missing tools: {', '.join(missing)}"
            " (Debian: apt-get install -y wrk nghttp2-client util-linux)"
        )


def options(args: argparse.Namespace, run_id: str) -> runner.Options:
    return runner.Options(
        protos=words(args.protos),
        payloads=words(args.payloads),
        concs=ints(args.conc),
        large_concs=ints(args.large_conc),
        duration=args.duration,
        large_duration=args.large_duration,
        repeats=args.repeats,
        warmup=args.warmup,
        server_cpus=args.server_cpus,
        load_cpus=args.load_cpus,
        port_base=args.port_base,
        startup_timeout=args.startup_timeout,
        stop_grace=args.stop_grace,
        request_timeout=60.0,
        settle_limit=20.0,
        log_dir=RAW_DIR / "logs" / run_id,
    )


def meta_record(
    run_id: str,
    argv: list[str],
    args: argparse.Namespace,
    opts: runner.Options,
    chosen: list[servers.ServerSpec],
) -> dict:
    """The first line of results.jsonl: what ran, how, and on what."""
    return {
        "kind": "meta",
        "run_id": run_id,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": "python -m unitbench " + shlex.join(argv),
        "invoked_by": os.environ.get("UNITBENCH_INVOKED_BY", ""),
        "netns": os.environ.get("UNITBENCH_IN_NETNS") == "1",
        "nice": args.nice,
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items()},
        "servers": [s.name for s in chosen],
        "tools": {
            "tools": args.tools,
            "batch_lines": args.batch_lines,
            "batch_workers": args.batch_workers,
            "client_calls": args.client_calls,
        },
        "machine": machine.describe(),
        "versions": machine.package_versions(chosen),
    }


def cmd_run(args: argparse.Namespace, argv: list[str]) -> int:
    args = resolve(args)
    check_tools()
    in_netns = os.environ.get("UNITBENCH_IN_NETNS") == "1"
    if not in_netns and (args.netns == "yes" or (args.netns == "auto" and netns_available())):
        return reexec_in_netns(argv)
    chosen = servers.select(args.servers)
    if args.nice:  # inherited by every server and load tool started from here
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    if args.load_cpus:  # the harness shares the load generator's core(s), never the server's
        os.sched_setaffinity(0, {int(n[3:]) for n in runner.cpu_names(args.load_cpus)})
    run_id = time.strftime("%Y%m%d-%H%M%S")
    opts = options(args, run_id)
    print(
        f"unitbench {run_id}: servers {', '.join(s.name for s in chosen)}; protos"
        f" {','.join(opts.protos)}; payloads {','.join(opts.payloads)}; conc"
        f" {args.conc} (large {args.large_conc}); {opts.repeats} x {opts.duration:g} s;"
        f" tools {args.tools or 'none'};"
        f" netns {'yes' if in_netns else 'no'}",
        flush=True,
    )
    for payload in opts.payloads:  # write the bodies before any server starts
        for proto in opts.protos:
            for family in {s.family for s in chosen}:
                body(payload, proto, family)
    jsonl = args.out_dir / "results.jsonl"
    emit = runner.jsonl_writer(jsonl)
    t0 = time.monotonic()
    emit(meta_record(run_id, argv, args, opts, chosen))
    runner.run_matrix(chosen, opts, emit)
    if args.tools:
        tool_opts = tools.ToolOptions(
            args.batch_lines, args.batch_workers, args.client_calls, client_rounds=5
        )
        tools.run_tools(words(args.tools), opts, tool_opts, emit, len(chosen) * 8, SCRATCH_DIR)
    emit({"kind": "end", "wall_s": round(time.monotonic() - t0, 1)})
    report.write(jsonl, args.out_dir / "REPORT.md")
    history = RAW_DIR / "history"
    history.mkdir(parents=True, exist_ok=True)
    shutil.copy(jsonl, history / f"{run_id}.jsonl")
    print(f"wrote {args.out_dir / 'REPORT.md'} and {jsonl} ({time.monotonic() - t0:.0f} s)")
    return 0


def cmd_list() -> int:
    for spec in servers.SERVERS.values():
        state = spec.missing() or "ready"
        print(
            f"{spec.name:16} {spec.role:9} {','.join(spec.protos):9} {state}\n{'':16} {spec.title}"
        )
    print("groups:", "; ".join(f"{k} = {','.join(v)}" for k, v in servers.GROUPS.items()))
    print("payloads:", ", ".join(PAYLOADS))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.command == "run":
        return cmd_run(args, argv)
    if args.command == "report":
        out = args.out or args.jsonl.with_name("REPORT.md")
        report.write(args.jsonl, out)
        print(f"wrote {out}")
        return 0
    return cmd_list()
