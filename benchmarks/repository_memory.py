"""Where the memory of a repository model goes: tracemalloc over loading many tiny
scikit-learn models in one process, through the real registry and models-folder
source, as `unitserve start`'s worker builds them (shared user threads, one worker).

A few models are loaded first (imports and first-use caches are not per model), then
a snapshot, then N more, then another: the difference, grouped by the line that
allocated it and divided by N, is what each model costs in Python objects, with the
lines that cost most first. Resident memory (RSS) is printed beside it; with
``--rss-only`` tracemalloc stays off, so that RSS is the model's alone, and with
``--own-threads`` each model gets a thread of its own (as before the shared pool), to
compare.

    .venv/bin/python benchmarks/repository_memory.py --models 200
    .venv/bin/python benchmarks/repository_memory.py --models 200 --rss-only [--own-threads]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from unitserve.calls import Offloader
from unitserve.engine import MetricsRecorder
from unitserve.models.model_settings import ModelSettings
from unitserve.models.registry import ModelRegistry
from unitserve.models.served_model import ServedModel
from unitserve.runtime.control import LocalChannel
from unitserve.runtime.repository_source import RepositorySource

WARM = 10


def write_models(root: Path, count: int) -> None:
    import joblib  # the test extra's scikit-learn
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(7)
    for i in range(count):
        x = rng.normal(size=(30, 4))
        y = (x[:, 0] + x[:, i % 4] > 0).astype(int)
        folder = root / f"m{i:04d}"
        folder.mkdir(parents=True)
        joblib.dump(LogisticRegression().fit(x, y), folder / "model.joblib")
        settings = {
            "name": folder.name,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib"},
        }
        (folder / "model-settings.json").write_text(json.dumps(settings))


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def measure(args: argparse.Namespace, root: Path) -> None:
    count, top, frames = args.models, args.top, args.frames
    pool = Offloader(asyncio.get_running_loop(), 6, "user", start=1)
    recorder = MetricsRecorder()

    def make(settings: ModelSettings, factory: Callable[[], Any]) -> ServedModel:
        return ServedModel(
            settings,
            factory=factory,
            recorder=recorder,
            pool=None if args.own_threads else pool,
            label=f"model {settings.served_name!r}",
        )

    registry = ModelRegistry(LocalChannel())
    registry.source = RepositorySource(root, make, env={})
    names = [f"m{i:04d}" for i in range(WARM + count)]
    for name in names[:WARM]:
        await registry.load(name)
    await registry.index()
    gc.collect()
    if args.rss_only:
        rss_before = rss_kib()
        for name in names[WARM:]:
            await registry.load(name)
        await registry.index()
        gc.collect()
        print(f"{count} models: RSS {(rss_kib() - rss_before) / count:.1f} KiB per model")
        registry.close()
        pool.close()
        return
    tracemalloc.start(frames)
    before, rss_before = tracemalloc.take_snapshot(), rss_kib()
    for name in names[WARM:]:
        await registry.load(name)
    await registry.index()
    gc.collect()
    after, rss_after = tracemalloc.take_snapshot(), rss_kib()
    tracemalloc.stop()
    stats = after.compare_to(before, "traceback" if frames > 1 else "lineno")
    total = sum(s.size_diff for s in stats)
    print(f"{count} models: Python objects {total / count / 1024:.1f} KiB per model, ", end="")
    print(f"RSS {(rss_after - rss_before) / count:.1f} KiB per model (tracing included)")
    here = str(Path(__file__).resolve().parent.parent)
    for stat in stats[:top]:
        frame = stat.traceback[0]
        where = frame.filename.replace(here + os.sep, "")
        print(
            f"{stat.size_diff / count:9.0f} B/model {stat.count_diff / count:6.1f} blocks/model  "
            f"{where}:{frame.lineno}"
        )
        for older in list(stat.traceback)[1:]:
            print(f"{'':40}{older.filename.replace(here + os.sep, '')}:{older.lineno}")
    registry.close()
    pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=int, default=200, help="models loaded and measured")
    parser.add_argument("--top", type=int, default=25, help="allocation sites printed")
    parser.add_argument("--frames", type=int, default=1, help="frames kept per allocation")
    parser.add_argument("--rss-only", action="store_true", help="no tracemalloc: RSS alone")
    parser.add_argument(
        "--own-threads", action="store_true", help="a thread per model (no shared pool)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        write_models(root, WARM + args.models)
        asyncio.run(measure(args, root))


if __name__ == "__main__":
    main()
