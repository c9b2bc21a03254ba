"""The soak's report: REPORT.md and summary.json (small, meant to be kept), the raw
samples (raw/samples.jsonl, not kept) and rss.png (resident memory over time)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .result import MIB, RSS_BOUND_WHY, SoakResult


def write(result: SoakResult, out_dir: Path) -> None:
    raw = out_dir / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    with open(raw / "samples.jsonl", "w") as f:
        for s in result.samples:
            f.write(json.dumps(asdict(s)) + "\n")
    plot = out_dir / "rss.png"
    result.plot_path = str(plot) if _plot(result, plot) else ""
    result.report_path = str(out_dir / "REPORT.md")
    summary = asdict(result)
    summary.pop("samples")  # in raw/samples.jsonl
    summary.pop("ticks")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out_dir / "REPORT.md").write_text(markdown(result))


def _requests_table(result: SoakResult) -> list[str]:
    lines = [
        "| protocol | requests | errors | req/s | p50 ms | p99 ms | max ms | connections opened |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    seconds = result.config["seconds"]
    for protocol, r in sorted(result.requests.items()):
        n = r["ok"] + r["errors"]
        lat = r["latency_ms"]
        lines.append(
            f"| {protocol} | {n:,} | {r['errors']} | {n / seconds:,.0f} | {lat['p50']} | "
            f"{lat['p99']} | {lat['max']} | {r['connections_opened']} |"
        )
    return lines


def _rss_table(result: SoakResult) -> list[str]:
    bound = result.config["rss_growth_mib"]
    lines = [
        "| process | pid | RSS start | after warm-up | end | peak | growth after warm-up "
        "| fds start → end | threads |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for role, f in result.rss.items():
        growth = f["growth_mib"]
        shown = "n/a"
        if growth is not None:
            shown = f"{growth:+} MiB " + ("✅" if growth <= bound else "❌")
        lines.append(
            f"| {role} | {f['pid']} | {f['start_mib']} MiB | {f['after_warmup_mib']} MiB | "
            f"{f['end_mib']} MiB | {f['peak_mib']} MiB | {shown} | "
            f"{f['fds_start']} → {f['fds_end']} | {f['threads_end']} |"
        )
    return lines


def markdown(result: SoakResult) -> str:
    cfg = result.config
    verdict = "PASSED" if result.passed else "FAILED"
    total = sum(r["ok"] + r["errors"] for r in result.requests.values())
    errors = sum(r["errors"] for r in result.requests.values())
    lines = [
        f"# Soak: {verdict}",
        "",
        f"{result.started}: {cfg['seconds']:g} s of mixed REST and gRPC load "
        f"({cfg['rest_connections']} REST + {cfg['grpc_connections']} gRPC connections, "
        + (f"{cfg['rate']:g} req/s per protocol" if cfg["rate"] else "closed loop, no rate limit")
        + f") on 127.0.0.1 against `unitserve serve {cfg['model']} --workers {cfg['workers']}`; "
        f"memory of every server process sampled from /proc every {cfg['sample_every']:g} s. "
        f"Host: {result.host.get('cpus')} CPUs, load average "
        f"{', '.join(f'{x:.2f}' for x in result.host.get('loadavg_at_start', []))} at the start "
        f"(other work shares the machine), Python {result.host.get('python')}. "
        f"Wall time {result.wall_seconds:g} s.",
        "",
        f"**{total:,} requests, {errors} errors.**",
        "",
    ]
    if result.failures:
        lines += ["## Failures", "", *(f"- {f}" for f in result.failures), ""]
    lines += ["## Requests", "", *_requests_table(result), ""]
    if result.server_counts:
        counted = ", ".join(f"{k}: {v:,.0f}" for k, v in sorted(result.server_counts.items()))
        lines += [f"Counted by the server (`unitserve_requests_total`): {counted}.", ""]
    for protocol, r in sorted(result.requests.items()):
        if r["errors"]:
            lines += [f"{protocol} errors by kind: {r['error_kinds']}", ""]
    lines += [
        "## Memory",
        "",
        *_rss_table(result),
        "",
        f"Bound: at most **{cfg['rss_growth_mib']:g} MiB** of RSS growth per process between "
        f"the end of the warm-up ({result_warmup(result):g} s) and the end of the load. "
        + RSS_BOUND_WHY
        + _detectable(result),
        "",
    ]
    if result.plot_path:
        lines += [f"![RSS over time]({Path(result.plot_path).name})", ""]
    else:
        lines += ["(No plot: matplotlib is not installed.)", ""]
    lines += [
        "Raw data (not kept in git): `raw/samples.jsonl` (one line per sample), "
        "`raw/server.log`, `raw/load-*.log`.",
        "",
    ]
    return "\n".join(lines)


def _detectable(result: SoakResult) -> str:
    """The smallest leak per request that the bound catches in this very run."""
    workers = max(1, result.config["workers"])
    total = sum(r["ok"] + r["errors"] for r in result.requests.values())
    measured = total * max(0.0, 1 - result_warmup(result) / result.config["seconds"])
    per_worker = measured / workers
    if per_worker < 1:
        return ""
    bytes_per_request = result.config["rss_growth_mib"] * MIB * 1024 / per_worker
    return (
        f" In this run each worker served about {per_worker:,.0f} requests after the "
        f"warm-up, so a leak of {bytes_per_request:,.0f} bytes or more per request "
        "would have failed it."
    )


def result_warmup(result: SoakResult) -> float:
    cfg = result.config
    return cfg["warmup"] if cfg["warmup"] is not None else min(60.0, cfg["seconds"] / 4)


def _plot(result: SoakResult, path: Path) -> bool:
    """RSS of each process over time, and throughput per protocol below it."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    roles = sorted({role for s in result.samples for role in s.processes})
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 7), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
    )
    for role in roles:
        points = [(s.t, s.processes[role]) for s in result.samples if role in s.processes]
        pids = sorted({p["pid"] for _, p in points})
        top.plot(
            [t / 60 for t, _ in points],
            [p["rss_kib"] / MIB for _, p in points],
            marker=".",
            label=f"{role} (pid {', '.join(map(str, pids))})",
        )
    warmup = result_warmup(result) / 60
    for axis in (top, bottom):
        axis.axvline(warmup, color="grey", linestyle="--", linewidth=1)
    top.text(warmup, top.get_ylim()[1], " end of warm-up", va="top", fontsize=8, color="grey")
    top.set_ylabel("RSS (MiB)")
    top.set_ylim(bottom=0)
    top.legend(loc="lower right", fontsize=8)
    top.grid(alpha=0.3)
    verdict = "passed" if result.passed else "FAILED"
    total = sum(r["ok"] + r["errors"] for r in result.requests.values())
    errors = sum(r["errors"] for r in result.requests.values())
    top.set_title(
        f"unitserve soak ({verdict}): {total:,} requests, {errors} errors, "
        f"{result.config['workers']} workers"
    )
    for protocol, ticks in sorted(result.ticks.items()):
        xs, ys = _rates(ticks)
        bottom.plot(xs, ys, marker=".", label=protocol)
    bottom.set_ylabel("requests/s")
    bottom.set_xlabel("minutes since the load started")
    bottom.set_ylim(bottom=0)
    bottom.legend(loc="lower right", fontsize=8)
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _rates(ticks: list[Any]) -> tuple[list[float], list[float]]:
    xs, ys, last_t, last_n = [], [], 0.0, 0
    for t, ok, errors in ticks:
        n = ok + errors
        if t > last_t:
            xs.append(t / 60)
            ys.append((n - last_n) / (t - last_t))
        last_t, last_n = t, n
    return xs, ys
