"""REPORT.md from the JSON lines of one harness run."""

import json
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from unitbench.servers import SERVERS

US = "unitserve"
SELDON = "seldon"
MLSERVERS = ("mlserver", "mlserver-pw0")
CEILINGS = {
    "rest": ("asgi-echo", "raw-fixed", "raw-codec"),
    "grpc": ("grpc-aio-echo", "grpc-aio-proto", "grpc-sync-proto"),
}
PROTO_NAMES = {"rest": "REST", "grpc": "gRPC"}


def median(values: Iterable[float]) -> float:
    vals = list(values)
    return statistics.median(vals) if vals else 0.0


@dataclass
class Cell:
    """All repeats of one (server, proto, payload, concurrency)."""

    runs: list[dict]

    @property
    def rps(self) -> float:
        return median(r["rps"] for r in self.runs)

    @property
    def rps_range(self) -> tuple[float, float]:
        vals = [r["rps"] for r in self.runs]
        return min(vals), max(vals)

    @property
    def spread(self) -> float:
        lo, hi = self.rps_range
        return (hi - lo) / self.rps if self.rps else 0.0

    def ms(self, key: str) -> float:
        return median(r[key] for r in self.runs)

    @property
    def p99_range(self) -> tuple[float, float]:
        vals = [r["p99_ms"] for r in self.runs]
        return min(vals), max(vals)

    @property
    def cpu_us(self) -> float | None:
        vals = [r["cpu_us_per_req"] for r in self.runs if r.get("cpu_us_per_req")]
        return median(vals) if vals else None

    @property
    def busy(self) -> float | None:
        vals = [r["server_core_busy"] for r in self.runs if r.get("server_core_busy") is not None]
        return median(vals) if vals else None

    @property
    def errors(self) -> int:
        return sum(r["error_total"] for r in self.runs)

    @property
    def requests(self) -> int:
        return sum(r["requests"] for r in self.runs)

    @property
    def other_cpu(self) -> float:
        """CPU share of one core used by everything but the server and the load tool."""
        return median(r.get("other_cpu_s", 0.0) / r["seconds"] for r in self.runs if r["seconds"])

    @property
    def rss_peak(self) -> float:
        return max(r.get("rss_peak_mib", 0.0) for r in self.runs)


# ---------------------------------------------------------------- formatting
def fnum(x: float | None) -> str:
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fratio(x: float | None) -> str:
    return "-" if x is None else (f"{x:.1f}x" if x >= 10 else f"{x:.2f}x")


def bold(text: str) -> str:
    return text if text == "-" else f"**{text}**"


def table(header: list[str], rows: list[list[str]], right_from: int = 1) -> str:
    align = ["---" if i < right_from else "--:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- the data of one run
class Results:
    def __init__(self, records: list[dict]):
        self.meta = next((r for r in records if r["kind"] == "meta"), {})
        self.end = next((r for r in records if r["kind"] == "end"), {})
        self.sessions = [r for r in records if r["kind"] == "session"]
        self.tools = [r for r in records if r["kind"] == "tool"]
        self.cells: dict[tuple[str, str, str, int], Cell] = {}
        for r in records:
            if r["kind"] == "run":
                key = (r["server"], r["proto"], r["payload"], r["conc"])
                self.cells.setdefault(key, Cell([])).runs.append(r)

    @classmethod
    def load(cls, path: Path) -> "Results":
        return cls([json.loads(line) for line in path.read_text().splitlines() if line.strip()])

    def cell(self, server: str, proto: str, payload: str, conc: int) -> Cell | None:
        if server in MLSERVERS and payload == "medium-tensor":
            payload = "medium"  # V2 has one form: MLServer's medium stands for both
        return self.cells.get((server, proto, payload, conc))

    def mlserver_best(self, proto: str, payload: str, conc: int) -> tuple[str, Cell] | None:
        found = [(n, c) for n in MLSERVERS if (c := self.cell(n, proto, payload, conc))]
        return max(found, key=lambda nc: nc[1].rps) if found else None

    def matrix_keys(self) -> list[tuple[str, str, int]]:
        """(proto, payload, conc) in matrix order."""
        order = {p: i for i, p in enumerate(("small", "medium", "medium-tensor", "large"))}
        keys = {(p, pl, c) for (_, p, pl, c) in self.cells}
        return sorted(keys, key=lambda k: (k[0] != "rest", order.get(k[1], 9), k[2]))

    def servers(self) -> list[str]:
        names = {k[0] for k in self.cells} | {s["server"] for s in self.sessions}
        return [n for n in SERVERS if n in names] + sorted(names - set(SERVERS))

    def ratio(self, a: Cell | None, b: Cell | None) -> float | None:
        return a.rps / b.rps if a and b and b.rps else None


# ---------------------------------------------------------------- sections
def section_header(res: Results) -> str:
    m, o = res.meta, res.meta.get("options", {})
    wall = res.end.get("wall_s")
    runs = sum(len(c.runs) for c in res.cells.values())
    lines = [
        "# unitserve benchmark report",
        "",
        f"Run `{m.get('run_id', '?')}` started {m.get('started', '?')}: "
        + (f"`{m['invoked_by']}`, i.e. " if m.get("invoked_by") else "")
        + f"`{m.get('command', '?')}`"
        + (f", wall time {wall / 60:.1f} min" if wall else "")
        + f"; {runs} load runs in {len(res.sessions)} server sessions.",
        "",
        "Matrix: servers "
        + ", ".join(m.get("servers", []))
        + "; "
        + ", ".join(PROTO_NAMES.get(p, p) for p in o.get("protos", []))
        + "; payloads "
        + ", ".join(o.get("payloads", []))
        + "; concurrency "
        + ", ".join(map(str, o.get("concs", [])))
        + " (large: "
        + ", ".join(map(str, o.get("large_concs", [])))
        + ")"
        + (f"; tools {m['tools']['tools']}." if (m.get("tools") or {}).get("tools") else "."),
        "",
        f"Server pinned with `taskset -c {o.get('server_cpus', '?')}`; wrk / h2load (one thread)"
        f" and the harness on `{o.get('load_cpus', '?')}`. All traffic on 127.0.0.1"
        + (
            " inside a private network namespace (`unshare -n`, loopback only)."
            if m.get("netns")
            else "."
        )
        + (f" Harness, servers and load tools ran at nice {m['nice']}." if m.get("nice") else "")
        + f" Every cell: the median of {o.get('repeats', '?')} runs of {o.get('duration', '?')} s"
        f" (large payload: {o.get('large_duration', '?')} s), repeat-major, after a"
        f" {o.get('warmup', '?')} s warm-up; one server session per server, protocol and payload."
        " How the numbers are taken: `benchmarks/README.md`. Raw data: `results.jsonl` next to"
        " this file.",
    ]
    noise = median(c.other_cpu for c in res.cells.values())
    if noise > 0.1:
        lines += [
            "",
            f"**The machine was not quiet:** during a median run, processes other than"
            f' the server and the load tool used {noise:.0%} of a core (column "other CPU"'
            " below). Throughput and latency suffer from that; CPU per request much less.",
        ]
    if res.cells and US not in {k[0] for k in res.cells}:
        why = next(
            (s.get("error") or s.get("verify") for s in res.sessions if s["server"] == US),
            "not selected",
        )
        lines += [
            "",
            f"**unitserve was not measured in this run** ({why}); the ratio columns are empty.",
        ]
    return "\n".join(lines)


def section_machine(res: Results) -> str:
    rows = [[k, str(v)] for k, v in res.meta.get("machine", {}).items()]
    out = ["## Machine", "", table(["item", "value"], rows, right_from=9)]
    versions = res.meta.get("versions", {})
    if versions:
        grouped: dict[str, list[str]] = {}
        for name, v in versions.items():
            grouped.setdefault(json.dumps(v, sort_keys=True), []).append(name)
        vrows = []
        for key, names in grouped.items():
            v = json.loads(key)
            packages = ", ".join(f"{k} {val}" for k, val in sorted(v.items()) if k != "python")
            vrows.append([", ".join(names), v.get("python", "?"), packages])
        out += [
            "",
            "Interpreters and packages of the servers (ceilings run on the harness'"
            " interpreter, the project's `.venv`):",
            "",
            table(["server", "python", "packages"], vrows, right_from=9),
        ]
    srows = [[f"`{n}`", SERVERS[n].role, SERVERS[n].title] for n in res.servers() if n in SERVERS]
    out += ["", "## Servers", "", table(["server", "role", "what runs"], srows, right_from=9)]
    return "\n".join(out)


def section_ratios(res: Results) -> str:
    rows = []
    for proto, payload, conc in res.matrix_keys():
        us, sel = res.cell(US, proto, payload, conc), res.cell(SELDON, proto, payload, conc)
        best = res.mlserver_best(proto, payload, conc)
        ml = best[1] if best else None
        p99 = " / ".join(fnum(c.ms("p99_ms")) if c else "-" for c in (us, sel, ml))
        cpu = " / ".join(fnum(c.cpu_us) if c else "-" for c in (us, sel, ml))
        if not (us or sel or ml):
            continue
        per_core = [
            b.cpu_us / us.cpu_us if us and b and us.cpu_us and b.cpu_us else None for b in (sel, ml)
        ]
        rows.append(
            [
                PROTO_NAMES[proto],
                payload,
                str(conc),
                fnum(us.rps) if us else "-",
                fnum(sel.rps) if sel else "-",
                bold(fratio(res.ratio(us, sel))),
                f"{fnum(best[1].rps)} ({best[0]})" if best else "-",
                bold(fratio(res.ratio(us, ml))),
                p99,
                cpu,
                " / ".join(fratio(x) for x in per_core),
            ]
        )
    head = [
        "proto",
        "payload",
        "conc",
        "unitserve req/s",
        "Seldon req/s",
        "unitserve / Seldon",
        "MLServer best req/s",
        "unitserve / MLServer",
        "p99 ms: unitserve / Seldon / MLServer",
        "CPU us/req: unitserve / Seldon / MLServer",
        "per-core ratio vs Seldon / MLServer",
    ]
    return "\n".join(
        [
            "## Ratios, measured in the same run",
            "",
            'req/s are medians over the repeats; "MLServer best" is the faster of its'
            " configurations in that cell (V2 protocol, same numbers; its `medium` row also stands"
            " for `medium-tensor`). The per-core ratio is the reference's server CPU per request"
            " over unitserve's: the req/s ratio one fully available core would give, and the"
            " figure least disturbed by other load on the machine.",
            "",
            table(head, rows, right_from=3),
        ]
    )


def section_ceilings(res: Results) -> str:
    out = [
        "## Server CPU per request as a multiple of each ceiling",
        "",
        "Server CPU (all processes of the tree, user + system) per completed request; the"
        " multiple is server / ceiling in the same cell.",
        "",
    ]
    for proto in ("rest", "grpc"):
        ceilings = [c for c in CEILINGS[proto] if any(k[0] == c for k in res.cells)]
        if not ceilings:
            continue
        rows = []
        for p, payload, conc in res.matrix_keys():
            if p != proto:
                continue
            for server in (US, SELDON):
                mine = res.cell(server, proto, payload, conc)
                if not mine or mine.cpu_us is None:
                    continue
                cols = []
                for ceiling in ceilings:
                    c = res.cell(ceiling, proto, payload, conc)
                    cols.append(
                        f"{fnum(c.cpu_us)} ({fratio(mine.cpu_us / c.cpu_us)})"
                        if c and c.cpu_us
                        else "-"
                    )
                rows.append([server, payload, str(conc), fnum(mine.cpu_us), *cols])
        if rows:
            head = [
                "server",
                "payload",
                "conc",
                "CPU us/req",
                *[f"{c} us (multiple)" for c in ceilings],
            ]
            out += [f"### {PROTO_NAMES[proto]}", "", table(head, rows, right_from=3), ""]
    return "\n".join(out).rstrip()


def _rss_rest(res: Results, server: str) -> float | None:
    vals = [
        s["rss_rest_mib"] for s in res.sessions if s["server"] == server and s.get("rss_rest_mib")
    ]
    return median(vals) if vals else None


def section_targets(res: Results) -> str:
    """The Seldon-protocol targets, judged on this run's numbers."""
    rows = []

    def judge(
        label: str,
        proto: str,
        payloads: tuple[str, ...],
        concs: tuple[int, ...] | None,
        threshold: float,
        against: str,
    ) -> None:
        parts, met = [], True
        for payload in payloads:
            for _, pl, conc in (k for k in res.matrix_keys() if k[0] == proto and k[1] == payload):
                if concs and conc not in concs:
                    continue
                us = res.cell(US, proto, pl, conc)
                if against == "mlserver":
                    best = res.mlserver_best(proto, pl, conc)
                    ref = best[1] if best else None
                else:
                    ref = res.cell(against, proto, pl, conc)
                r = res.ratio(us, ref)
                if r is None:
                    continue
                met &= r >= threshold
                parts.append(f"{pl} c={conc}: {fratio(r)}")
        verdict = ("met" if met else "**not met**") if parts else "not measured"
        rows.append([label, "; ".join(parts) or "-", verdict])

    judge("REST small, c=8 and 64: >= 8x Seldon req/s", "rest", ("small",), (8, 64), 8, SELDON)
    judge(
        "REST small, c=8 and 64: >= 3x MLServer's best", "rest", ("small",), (8, 64), 3, "mlserver"
    )
    p99_parts, p99_met = [], True
    for conc in (8, 64):
        us = res.cell(US, "rest", "small", conc)
        others = [
            c
            for c in (
                res.cell(SELDON, "rest", "small", conc),
                *(res.cell(m, "rest", "small", conc) for m in MLSERVERS),
            )
            if c
        ]
        if us and others:
            worst = min(c.ms("p99_ms") for c in others)
            p99_met &= us.ms("p99_ms") < worst
            p99_parts.append(f"c={conc}: {fnum(us.ms('p99_ms'))} ms vs best other {fnum(worst)} ms")
    rows.append(
        [
            "REST small, c=8 and 64: p99 below Seldon's and MLServer's",
            "; ".join(p99_parts) or "-",
            ("met" if p99_met else "**not met**") if p99_parts else "not measured",
        ]
    )
    cpu_parts, cpu_met = [], True
    for proto, payload, conc in res.matrix_keys():
        if (proto, payload) != ("rest", "small"):
            continue
        us, echo = res.cell(US, proto, payload, conc), res.cell("asgi-echo", proto, payload, conc)
        if us and echo and us.cpu_us and echo.cpu_us:
            multiple = us.cpu_us / echo.cpu_us
            cpu_met &= multiple <= 2
            cpu_parts.append(
                f"c={conc}: {fnum(us.cpu_us)} vs {fnum(echo.cpu_us)} us ({fratio(multiple)})"
            )
    rows.append(
        [
            "CPU per small REST request <= 2x the bare ASGI echo",
            "; ".join(cpu_parts) or "-",
            ("met" if cpu_met else "**not met**") if cpu_parts else "not measured",
        ]
    )
    judge(
        "REST medium (ndarray and tensor): >= 8x Seldon",
        "rest",
        ("medium", "medium-tensor"),
        None,
        8,
        SELDON,
    )
    judge("REST large: >= 5x Seldon", "rest", ("large",), None, 5, SELDON)
    judge("gRPC small: >= 2.5x Seldon", "grpc", ("small",), None, 2.5, SELDON)
    judge("gRPC medium ndarray: >= 10x Seldon", "grpc", ("medium",), None, 10, SELDON)
    judge("gRPC medium tensor: >= 4x Seldon", "grpc", ("medium-tensor",), None, 4, SELDON)
    us_rss, sel_rss = _rss_rest(res, US), _rss_rest(res, SELDON)
    rss_verdict = "not measured"
    if us_rss and sel_rss:
        rss_verdict = "met" if us_rss <= sel_rss / 3 else "**not met**"
    rows.append(
        [
            "RSS of the whole tree at rest, defaults: <= 1/3 of Seldon's",
            f"{fnum(us_rss)} vs {fnum(sel_rss)} MiB (median over sessions)"
            if us_rss and sel_rss
            else "-",
            rss_verdict,
        ]
    )
    return "\n".join(
        [
            "## Targets of the Seldon-protocol benchmark (this run)",
            "",
            table(["target", "measured (unitserve / reference)", "verdict"], rows, right_from=9),
        ]
    )


V2_US, GRAPH_US, GRAPH_SELDON = "unitserve-v2", "unitserve-graph", "seldon-graph"
V2_REFS = ("mlserver", "mlserver-pw0", "kserve")


def _cpu_ratio(ours: Cell | None, ref: Cell | None) -> float | None:
    """How many times more requests one core serves for us than for the reference."""
    if ours and ref and ours.cpu_us and ref.cpu_us:
        return ref.cpu_us / ours.cpu_us
    return None


def _best_v2_ref(res: Results, names: tuple[str, ...], proto: str, payload: str, conc: int):
    found = [(n, c) for n in names if (c := res.cell(n, proto, payload, conc)) and c.cpu_us]
    return min(found, key=lambda nc: nc[1].cpu_us or 0.0) if found else None


def section_v2(res: Results) -> str:
    """The Open Inference Protocol rows: per-core ratios (CPU per request), req/s and p99."""
    rows = []
    for proto, payload, conc in res.matrix_keys():
        ours = res.cell(V2_US, proto, payload, conc)
        if not payload.startswith("v2-") or not ours:
            continue
        row = [PROTO_NAMES[proto], payload, str(conc), fnum(ours.rps), fnum(ours.cpu_us)]
        for ref in V2_REFS:
            cell = res.cell(ref, proto, payload, conc)
            row.append(
                f"{fnum(cell.rps)} / {fnum(cell.cpu_us)} / **{fratio(_cpu_ratio(ours, cell))}**"
                if cell
                else "-"
            )
        p99s = [
            fnum(c.ms("p99_ms")) if (c := res.cell(n, proto, payload, conc)) else "-"
            for n in (V2_US, *V2_REFS)
        ]
        rows.append([*row, " / ".join(p99s)])
    if not rows:
        return ""
    head = ["proto", "payload", "conc", "unitserve-v2 req/s", "CPU us/req"]
    head += [f"{n}: req/s / CPU us / per-core ratio" for n in V2_REFS]
    head += ["p99 ms (" + " / ".join((V2_US, *V2_REFS)) + ")"]
    return "\n".join(
        [
            "## Open Inference Protocol (V2), measured in the same run",
            "",
            "Per-core ratio = the reference's server CPU per request / unitserve-v2's: how many"
            " times more requests one core serves. FP32 throughout; gRPC bodies carry"
            " `raw_input_contents`; `v2-large-bin` is the binary tensor data extension both ways.",
            "",
            table(head, rows, right_from=3),
        ]
    )


def section_new_targets(res: Results) -> str:
    """The targets of the Open Inference Protocol, graph and tools work, judged on this run."""
    rows: list[list[str]] = []

    def verdict(parts: list[str], met: bool) -> str:
        return ("met" if met else "**not met**") if parts else "not measured"

    def against(
        label: str, proto: str, payload: str, names: tuple[str, ...], need: float, conc: int = 8
    ) -> None:
        ours = res.cell(V2_US, proto, payload, conc)
        best = _best_v2_ref(res, names, proto, payload, conc)
        r = _cpu_ratio(ours, best[1]) if best else None
        parts = [f"{fratio(r)} per core vs {best[0]}"] if best and r is not None else []
        rows.append([label, "; ".join(parts) or "-", verdict(parts, bool(r and r >= need))])

    against("V2 REST small c=8: >= 4x MLServer's best", "rest", "v2-small", MLSERVERS, 4)
    against("V2 REST small c=8: >= 3x KServe", "rest", "v2-small", ("kserve",), 3)
    ours = res.cell(V2_US, "rest", "v2-small", 8)
    others = [(n, c) for n in V2_REFS if (c := res.cell(n, "rest", "v2-small", 8))]
    parts = (
        [
            f"{fnum(ours.ms('p99_ms'))} ms vs "
            + ", ".join(f"{n} {fnum(c.ms('p99_ms'))}" for n, c in others)
        ]
        if ours and others
        else []
    )
    rows.append(
        [
            "V2 REST small c=8: p99 below MLServer and KServe",
            "; ".join(parts) or "-",
            verdict(
                parts, bool(ours and all(ours.ms("p99_ms") < c.ms("p99_ms") for _, c in others))
            ),
        ]
    )
    against("V2 gRPC small c=8: >= 2x MLServer", "grpc", "v2-small", MLSERVERS, 2)
    binary_parts, binary_met = [], True
    for conc in sorted({k[2] for k in res.matrix_keys() if k[1] == "v2-large-bin"}):
        binary = res.cell(V2_US, "rest", "v2-large-bin", conc)
        own = _cpu_ratio(binary, res.cell(V2_US, "rest", "v2-large", conc))
        best = _best_v2_ref(res, MLSERVERS, "rest", "v2-large", conc)
        ml = _cpu_ratio(binary, best[1]) if best else None
        if own is not None:
            binary_met &= own >= 10
            binary_parts.append(f"c={conc}: {fratio(own)} our JSON")
        if ml is not None:
            binary_met &= ml >= 20
            binary_parts.append(f"c={conc}: {fratio(ml)} MLServer JSON")
    rows.append(
        [
            "V2 REST 1000x1000 binary: >= 10x our JSON large, >= 20x MLServer's",
            "; ".join(binary_parts) or "-",
            verdict(binary_parts, binary_met),
        ]
    )
    v2_rss, seldon_rss = _rss_rest(res, V2_US), _rss_rest(res, US)
    rows.append(
        [
            "Memory at rest per worker (tree RSS: supervisor + 1 worker)",
            f"V2 sessions {fnum(v2_rss)} MiB, Seldon sessions {fnum(seldon_rss)} MiB"
            if v2_rss
            else "-",
            "compare with the report before the V2 work (one binary serves both)",
        ]
    )
    graph_parts, graph_met = [], True
    for proto, payload, conc in res.matrix_keys():
        g, one = res.cell(GRAPH_US, proto, payload, conc), res.cell(US, proto, payload, conc)
        if g and one and g.cpu_us and one.cpu_us:
            multiple = g.cpu_us / one.cpu_us
            graph_met &= multiple <= 1.5
            graph_parts.append(f"{PROTO_NAMES[proto]} {payload} c={conc}: {fratio(multiple)}")
    rows.append(
        [
            "Graph: 3-node local chain <= 1.5x the CPU per request of one node",
            "; ".join(graph_parts) or "-",
            verdict(graph_parts, graph_met),
        ]
    )
    seldon_parts, seldon_met = [], True
    for proto, payload, conc in res.matrix_keys():
        g, sw = (
            res.cell(GRAPH_US, proto, payload, conc),
            res.cell(GRAPH_SELDON, proto, payload, conc),
        )
        r = res.ratio(g, sw)
        if r is not None:
            seldon_met &= r >= 10
            per_core = _cpu_ratio(g, sw)
            seldon_parts.append(
                f"{PROTO_NAMES[proto]} {payload} c={conc}: {fratio(r)}"
                + (f" ({fratio(per_core)} per core)" if per_core else "")
            )
    rows.append(
        [
            "Graph: >= 10x req/s of the chain served the Seldon way",
            "; ".join(seldon_parts) or "-",
            verdict(seldon_parts, seldon_met),
        ]
    )
    batch = {t["who"]: t for t in res.tools if t.get("tool") == "batch" and t.get("status") == "ok"}
    compare = next((t for t in res.tools if t.get("tool") == "batch-compare"), None)
    batch_ours = batch.get("unitserve batch")
    batch_theirs = batch.get("seldon-batch-processor")
    batch_parts, batch_met = [], True
    if batch_ours and batch_theirs and batch_theirs["lines_per_s"]:
        r = batch_ours["lines_per_s"] / batch_theirs["lines_per_s"]
        batch_met = r >= 5 and bool(compare and compare["same"])
        batch_parts.append(
            f"{fnum(batch_ours['lines_per_s'])} vs {fnum(batch_theirs['lines_per_s'])} lines/s"
            f" ({fratio(r)}), {batch_ours['lines']:,} lines, {batch_ours['workers']} workers"
        )
        if compare:
            batch_parts.append(
                "same output lines"
                if compare["same"]
                else f"**{compare['differences']:,} output lines differ**"
            )
    rows.append(
        [
            "unitserve batch: >= 5x seldon-batch-processor lines/s, same output lines",
            "; ".join(batch_parts) or "-",
            verdict(batch_parts, batch_met),
        ]
    )
    client = next(
        (t for t in res.tools if t.get("tool") == "client" and t.get("status") == "ok"), None
    )
    client_parts = (
        [
            f"{fnum(client['client_us_per_call'])} vs {fnum(client['httpx_us_per_call'])} us"
            f" of client CPU per call ({fratio(client['ratio'])}), {client['calls']:,} calls each"
        ]
        if client
        else []
    )
    rows.append(
        [
            "Client REST predict of 1x4: <= 1.5x the CPU per call of a bare httpx post",
            "; ".join(client_parts) or "-",
            verdict(client_parts, bool(client and client["ratio"] <= 1.5)),
        ]
    )
    return "\n".join(
        [
            "## Targets of the Open Inference Protocol, graph and tools work (this run)",
            "",
            table(["target", "measured", "verdict"], rows, right_from=9),
        ]
    )


def section_tools(res: Results) -> str:
    """Every tools measurement of the run, including the ones that failed or were skipped."""
    if not res.tools:
        return ""
    rows = []
    for t in res.tools:
        status = t.get("status", "ok")
        why = " ".join(str(t.get("error", "")).split())[:200]
        if t["tool"] == "batch" and status != "skipped":
            rows.append(
                [
                    f"batch: {t['who']}",
                    f"{fnum(t.get('lines_per_s'))} lines/s; {t['written']:,} of {t['lines']:,}"
                    f" lines in {fnum(t['seconds'])} s, {t['workers']} workers; server CPU"
                    f" {fnum(t.get('server_cpu_us_per_line'))} us/line, the tool's"
                    f" {fnum(t.get('tool_cpu_us_per_line'))} us/line; exit status {t['rc']}",
                    status,
                ]
            )
        elif t["tool"] == "batch-compare":
            rows.append(
                [
                    "batch: outputs compared (puid, batch_id, batch_instance_id dropped;"
                    " the original's lines put in input order)",
                    f"{t['differences']:,} of {t['lines']:,} lines differ",
                    "ok" if t["same"] else "**differ**",
                ]
            )
        elif t["tool"] == "client" and status == "ok":
            rounds = t.get("rounds", {})
            rows.append(
                [
                    "client: unitserve.client.Client.predict vs httpx.Client.post",
                    f"{fnum(t['client_us_per_call'])} vs {fnum(t['httpx_us_per_call'])} us"
                    f" CPU/call ({fratio(t['ratio'])}); rounds: client"
                    f" {', '.join(map(fnum, rounds.get('client', [])))}, httpx"
                    f" {', '.join(map(fnum, rounds.get('httpx', [])))}",
                    status,
                ]
            )
        else:
            rows.append([f"{t['tool']}: {t.get('who', '')}".rstrip(": "), why or "-", status])
    return "\n".join(
        [
            "## Tools",
            "",
            "One `unitserve serve IdentityModel` (defaults) on the server core(s); each tool on"
            " the load core(s). Batch lines/s = input lines / the tool's wall time from start"
            " to exit; client CPU = the client process' CPU time per call, median of 5"
            " interleaved rounds.",
            "",
            table(["measurement", "result", "status"], rows, right_from=9),
        ]
    )


def section_cells(res: Results) -> str:
    rows = []
    for server in res.servers():
        for (proto, payload, conc), cell in sorted(
            ((k[1:], c) for k, c in res.cells.items() if k[0] == server),
            key=lambda kc: res.matrix_keys().index(kc[0]),
        ):
            lo, hi = cell.rps_range
            plo, phi = cell.p99_range
            rows.append(
                [
                    server,
                    PROTO_NAMES[proto],
                    payload,
                    str(conc),
                    str(len(cell.runs)),
                    fnum(cell.rps),
                    f"{fnum(lo)}-{fnum(hi)}",
                    f"{cell.spread:.0%}",
                    fnum(cell.ms("p50_ms")),
                    f"{fnum(cell.ms('p99_ms'))} ({fnum(plo)}-{fnum(phi)})",
                    fnum(cell.cpu_us),
                    f"{cell.busy:.0%}" if cell.busy is not None else "-",
                    f"{cell.other_cpu:.0%}",
                    str(cell.errors),
                    fnum(cell.rss_peak),
                ]
            )
    head = [
        "server",
        "proto",
        "payload",
        "conc",
        "n",
        "req/s",
        "req/s min-max",
        "spread",
        "p50 ms",
        "p99 ms (min-max)",
        "CPU us/req",
        "server core busy",
        "other CPU",
        "errors",
        "peak RSS MiB",
    ]
    return "\n".join(["## Every cell", "", table(head, rows, right_from=3)])


def section_per_server(res: Results) -> str:
    rows = []
    for server in res.servers():
        done = [s for s in res.sessions if s["server"] == server and s.get("startup_s")]
        if not done:
            continue
        startup = [s["startup_s"] for s in done]
        rest = [s["rss_rest_mib"] for s in done if s.get("rss_rest_mib")]
        pss = [s["pss_rest_mib"] for s in done if s.get("pss_rest_mib")]
        peak = [s["rss_peak_mib"] for s in done if s.get("rss_peak_mib")]
        nprocs = sorted({s["nprocs"] for s in done if s.get("nprocs")})
        rows.append(
            [
                server,
                str(len(done)),
                fnum(median(startup)),
                f"{fnum(min(startup))}-{fnum(max(startup))}",
                "-".join(map(str, nprocs[:: max(1, len(nprocs) - 1)])) or "-",
                fnum(median(rest)),
                fnum(median(pss)),
                fnum(max(peak) if peak else None),
            ]
        )
    head = [
        "server",
        "sessions",
        "start to first answer s (median)",
        "min-max",
        "processes",
        "RSS at rest MiB (median)",
        "PSS at rest MiB (median)",
        "peak RSS under load MiB (max)",
    ]
    return "\n".join(
        [
            "## Start-up and memory per server",
            "",
            "Start: from launching the command to the first verified answer to a small"
            " request (polled every 20-50 ms). RSS = sum over the whole process tree;"
            " PSS counts pages shared between forked processes once. At rest = after"
            " the first answer; peak = highest tree RSS sampled every 0.25 s during the"
            " measured runs (the large payload sessions dominate it).",
            "",
            table(head, rows, right_from=1),
        ]
    )


def section_sessions(res: Results) -> str:
    rows, problems = [], []
    for s in res.sessions:
        if s.get("status") != "ok":
            why = s.get("error") or s.get("verify_after") or s.get("verify") or "?"
            why = " ".join(str(why).split())[:300]
            log = f" (server log: `{s['log']}`)" if s.get("log") and s.get("log_tail") else ""
            problems.append(
                f"- `{s['server']}` {PROTO_NAMES.get(s['proto'], s['proto'])}"
                f" {s['payload']}: {s.get('status')}: {why}{log}"
            )
        if s.get("status") == "skipped":
            continue
        stop = (
            "SIGTERM" if s.get("stopped_on_sigterm") else "SIGKILL after grace"
        ) + f", {s.get('stop_s', 0):.1f} s"
        rows.append(
            [
                s["server"],
                PROTO_NAMES.get(s["proto"], s["proto"]),
                s["payload"],
                fnum(s.get("startup_s")),
                str(s.get("nprocs", "-")),
                fnum(s.get("rss_rest_mib")),
                fnum(s.get("pss_rest_mib")),
                fnum(s.get("rss_peak_mib")),
                stop,
            ]
        )
    head = [
        "server",
        "proto",
        "payload",
        "start to first answer s",
        "processes",
        "RSS at rest MiB",
        "PSS at rest MiB",
        "peak RSS under load MiB",
        "stopped by",
    ]
    out = [
        "## Every server session",
        "",
        'One session = one server start for one protocol and payload. "stopped by": whether'
        " the whole tree exited after SIGTERM to the main process within the grace period.",
        "",
        table(head, rows, right_from=3),
    ]
    if problems:
        out += ["", "### Sessions that failed or were skipped", "", *problems]
    return "\n".join(out)


def render(res: Results) -> str:
    # Imported here: that module builds on this one's Results and helpers.
    from unitbench.report_servers import section_servers

    sections = [
        section_header(res),
        section_servers(res),
        section_ratios(res),
        section_targets(res),
        section_v2(res),
        section_new_targets(res),
        section_tools(res),
        section_ceilings(res),
        section_per_server(res),
        section_cells(res),
        section_sessions(res),
        section_machine(res),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def write(jsonl: Path, out: Path) -> None:
    out.write_text(render(Results.load(jsonl)))
