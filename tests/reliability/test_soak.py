"""The 60-second soak in `make test`: the code of `make soak`
(soak/runner.py) with a modest, rate-limited load, so that it stays sound on a 2-core
CI machine. The bound on memory growth is looser than the 10-minute run's, since a
short run has less time to settle; errors are judged exactly as there: none allowed.
"""

from __future__ import annotations

from pathlib import Path

from soak.runner import SoakConfig, run

CI_SOAK = SoakConfig(
    seconds=60,
    warmup=20,
    sample_every=10,
    rest_connections=8,
    grpc_connections=8,
    rate=150,  # requests/s per protocol: about a tenth of what this server can take
    rss_growth_mib=32,
)


def test_soak_60_seconds(tmp_path: Path):
    result = run(CI_SOAK, tmp_path)
    requests = {p: (r["ok"], r["errors"]) for p, r in result.requests.items()}
    rss = {role: (f["start_mib"], f["end_mib"], f["growth_mib"]) for role, f in result.rss.items()}
    assert result.passed, (
        f"{result.failures}\nrequests (ok, errors): {requests}\n"
        f"RSS MiB (start, end, growth after warm-up): {rss}\nreport: {result.report_path}"
    )
    # The run did what it says: both protocols, every process sampled all along.
    assert all(r["ok"] > 1000 for r in result.requests.values()), result.requests
    assert set(result.requests) == {"rest", "grpc"}
    assert {"supervisor", "worker 0", "worker 1"} <= set(result.rss)
    assert len(result.samples) >= 7  # before the load, every 10 s, at its end
    assert (tmp_path / "REPORT.md").exists() and (tmp_path / "summary.json").exists()
