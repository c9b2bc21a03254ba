"""The prepackaged servers' section of REPORT.md: each unitserve row of `make bench-servers`
against its reference in the same run, and the targets those pairs are judged on.

Beside each pair, its ceiling: a server doing nothing but the JSON, the array and the
library's call (benchmarks/ceilings/library_replies.py). Its ratio against the same
reference is the best any Python server could reach on this stack, so a target above
it cannot be met by cutting the server's own work."""

from dataclasses import dataclass

from unitbench.report import Cell, Results, fnum, fratio, table


@dataclass(frozen=True)
class Pair:
    ours: str
    reference: str
    payload: str
    conc: int
    target: float  # the per-core ratio to reach
    what: str
    ceiling: str = ""  # the library ceiling for the same body ("" if none)


PAIRS = (
    Pair(
        "unitserve-sklearn",
        "seldon-sklearn",
        "small",
        8,
        8.0,
        "iris predict_proba, Seldon protocol: vs seldon-core 1.19 + stand-in SKLearnServer",
        "ceiling-sklearn",
    ),
    Pair(
        "unitserve-sklearn-v2",
        "mlserver-sklearn",
        "v2-small",
        8,
        3.0,
        "iris scikit-learn, Open Inference Protocol: vs MLServer's sklearn runtime",
        "ceiling-sklearn-v2",
    ),
    Pair(
        "unitserve-xgboost-v2",
        "mlserver-xgboost",
        "v2-small",
        8,
        3.0,
        "iris XGBoost, Open Inference Protocol: vs MLServer's xgboost runtime",
        "ceiling-xgboost-v2",
    ),
    Pair(
        "unitserve-sklearn-v2-batch",
        "mlserver-sklearn-batch",
        "v2-small",
        64,
        3.0,
        "iris scikit-learn, adaptive batching in both: vs MLServer's sklearn runtime",
        # no batching ceiling: its one-request cell (above) bounds a request, not a batch
    ),
)


def _per_core(ours: Cell, reference: Cell) -> float | None:
    """The reference's server CPU per request over ours: the req/s ratio one fully
    available core would give (the figure least disturbed by other load)."""
    if ours.cpu_us and reference.cpu_us:
        return reference.cpu_us / ours.cpu_us
    return None


def _ceiling_columns(res: Results, pair: Pair, ours: Cell, reference: Cell) -> list[str]:
    """The ceiling's CPU per request, its per-core ratio against the same reference (the
    best ratio reachable), and ours over it (what the server adds to the library)."""
    ceiling = res.cell(pair.ceiling, "rest", pair.payload, pair.conc) if pair.ceiling else None
    if not ceiling or not ceiling.cpu_us:
        return ["-", "-", "-"]
    best = _per_core(ceiling, reference)
    overhead = ours.cpu_us / ceiling.cpu_us if ours.cpu_us else None
    return [fnum(ceiling.cpu_us), fratio(best), fratio(overhead)]


def section_servers(res: Results) -> str:
    rows = []
    for pair in PAIRS:
        ours = res.cell(pair.ours, "rest", pair.payload, pair.conc)
        reference = res.cell(pair.reference, "rest", pair.payload, pair.conc)
        if not ours or not reference:
            continue
        per_core = _per_core(ours, reference)
        met = per_core is not None and per_core >= pair.target
        rows.append(
            [
                pair.what,
                f"REST {pair.payload} c={pair.conc}",
                f"{fnum(ours.rps)} / {fnum(reference.rps)}",
                fratio(ours.rps / reference.rps if reference.rps else None),
                f"{fnum(ours.cpu_us)} / {fnum(reference.cpu_us)}",
                f"**{fratio(per_core)}**",
                f"{fnum(ours.ms('p99_ms'))} / {fnum(reference.ms('p99_ms'))}",
                f">= {pair.target:g}x: {'met' if met else 'not met'}",
                *_ceiling_columns(res, pair, ours, reference),
            ]
        )
    if not rows:
        return ""
    head = [
        "pair",
        "cell",
        "req/s: unitserve / reference",
        "req/s ratio",
        "CPU us/req: unitserve / reference",
        "per-core ratio",
        "p99 ms: unitserve / reference",
        "target (per core)",
        "ceiling CPU us/req",
        "ceiling's per-core ratio (best reachable)",
        "unitserve / ceiling CPU",
    ]
    return "\n".join(
        [
            "## Prepackaged servers, measured in the same run",
            "",
            "Each unitserve row against its reference, same model file, same body. The"
            " per-core ratio is the reference's server CPU per request over unitserve's."
            " The ceiling (uvloop + httptools, orjson, NumPy and the library's call, nothing"
            " else) is measured in the same run: its per-core ratio against the same"
            " reference is the best a server costing nothing beyond the library could reach,"
            " and unitserve / ceiling is what unitserve adds.",
            "",
            table(head, rows, right_from=2),
        ]
    )
