"""`python -m soak`: one soak run; exit status 0 if it passed, 1 if not.

    python -m soak --seconds 600 --out soak/results

SOAK_SECONDS in the environment sets the default duration (what `make soak` passes).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .runner import SoakConfig, run


def main(argv: list[str] | None = None) -> int:
    defaults = SoakConfig()
    parser = argparse.ArgumentParser(prog="python -m soak", description=__doc__)
    parser.add_argument(
        "--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", defaults.seconds))
    )
    parser.add_argument("--warmup", type=float, default=None, help="default: seconds/4, <= 60")
    parser.add_argument("--sample-every", type=float, default=defaults.sample_every)
    parser.add_argument("--rest-connections", type=int, default=defaults.rest_connections)
    parser.add_argument("--grpc-connections", type=int, default=defaults.grpc_connections)
    parser.add_argument("--rate", type=float, default=defaults.rate, help="req/s per protocol")
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--rss-growth-mib", type=float, default=defaults.rss_growth_mib)
    parser.add_argument("--model", default=defaults.model, help="the class to serve")
    parser.add_argument("--model-dir", default=defaults.model_dir, help="where it is")
    parser.add_argument(
        "--require-plot",
        action="store_true",
        help="refuse to start without matplotlib (make soak: the plot is part of the result)",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    if args.require_plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print(
                "soak: matplotlib is needed for the plot: pip install matplotlib "
                "(it is in unitserve's test extras)",
                file=sys.stderr,
            )
            return 2
    config = SoakConfig(
        seconds=args.seconds,
        warmup=args.warmup,
        sample_every=args.sample_every,
        rest_connections=args.rest_connections,
        grpc_connections=args.grpc_connections,
        rate=args.rate,
        workers=args.workers,
        rss_growth_mib=args.rss_growth_mib,
        model=args.model,
        model_dir=args.model_dir,
    )
    print(f"soak: {config.seconds:g} s, report in {args.out}/REPORT.md", flush=True)
    result = run(config, args.out)
    total = sum(r["ok"] + r["errors"] for r in result.requests.values())
    errors = sum(r["errors"] for r in result.requests.values())
    print(f"soak {'passed' if result.passed else 'FAILED'}: {total:,} requests, {errors} errors")
    for role, f in result.rss.items():
        print(
            f"  {role} (pid {f['pid']}): RSS {f['start_mib']} → {f['end_mib']} MiB, "
            f"{f['growth_mib']:+} MiB after the warm-up"
        )
    for failure in result.failures:
        print(f"  failure: {failure}")
    print(f"report: {result.report_path}\nplot: {result.plot_path or '(matplotlib missing)'}")
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
