"""The prepackaged servers' section of REPORT.md: each unitserve row of `make bench-servers`
against its reference in the same run, and the targets those pairs are judged on."""

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


PAIRS = (
    Pair(
        "unitserve-sklearn",
        "seldon-sklearn",
        "small",
        8,
        8.0,
        "iris predict_proba, Seldon protocol: vs seldon-core 1.19 + stand-in SKLearnServer",
    ),
    Pair(
        "unitserve-sklearn-v2",
        "mlserver-sklearn",
        "v2-small",
        8,
        3.0,
        "iris scikit-learn, Open Inference Protocol: vs MLServer's sklearn runtime",
    ),
    Pair(
        "unitserve-xgboost-v2",
        "mlserver-xgboost",
        "v2-small",
        8,
        3.0,
        "iris XGBoost, Open Inference Protocol: vs MLServer's xgboost runtime",
    ),
    Pair(
        "unitserve-sklearn-v2-batch",
        "mlserver-sklearn-batch",
        "v2-small",
        64,
        3.0,
        "iris scikit-learn, adaptive batching in both: vs MLServer's sklearn runtime",
    ),
)


def _per_core(ours: Cell, reference: Cell) -> float | None:
    """The reference's server CPU per request over ours: the req/s ratio one fully
    available core would give (the figure least disturbed by other load)."""
    if ours.cpu_us and reference.cpu_us:
        return reference.cpu_us / ours.cpu_us
    return None


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
    ]
    return "\n".join(
        [
            "## Prepackaged servers, measured in the same run",
            "",
            "Each unitserve row against its reference, same model file, same body. The"
            " per-core ratio is the reference's server CPU per request over unitserve's.",
            "",
            table(head, rows, right_from=2),
        ]
    )
