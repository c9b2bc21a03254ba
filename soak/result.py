"""What a soak run found: the result the runner fills in and the report reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MIB = 1024

RSS_BOUND_WHY = (
    "Why this bound: a worker's memory settles once every code path, buffer pool and "
    "allocator arena has been used, which is what the warm-up is for; after it, a "
    "server that does not leak stays flat to within a few MiB (allocator "
    "fragmentation, buffers of the connections the clients replace). The bound sits "
    "well above that noise, and low enough that a leak of a few tens of bytes per "
    "request, over the hundreds of thousands of requests each worker serves in a "
    "10-minute run, exceeds it."
)


@dataclass
class Sample:
    t: float  # seconds since the load started (negative: before it)
    processes: dict[str, dict[str, int]]  # role → {pid, rss_kib, threads, fds}


@dataclass
class SoakResult:
    config: dict[str, Any]
    passed: bool = False
    failures: list[str] = field(default_factory=list)
    requests: dict[str, Any] = field(default_factory=dict)  # protocol → load summary
    server_counts: dict[str, float] = field(default_factory=dict)  # code → requests
    samples: list[Sample] = field(default_factory=list)
    ticks: dict[str, list[tuple[float, int, int]]] = field(default_factory=dict)
    rss: dict[str, dict[str, Any]] = field(default_factory=dict)  # role → figures
    exit_code: int | None = None
    wall_seconds: float = 0.0
    started: str = ""
    host: dict[str, Any] = field(default_factory=dict)
    report_path: str = ""
    plot_path: str = ""
