"""Servers under fuzz: the real `unitserve serve` (shared with the other tests through
`serve`), wrapped in a `Target` that checks every answer."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from .harness import Target

#: Fixture models and what each one exercises.
MODELS = {
    "Identity": "predict answers the input (every payload kind goes back out)",
    "Inspector": "every method, reports what it received (decoding and meta)",
    "Transformer": "transform_input/output doing arithmetic on any input (raises on odd ones)",
    "Router": "route and send_feedback",
    "Combiner": "aggregate over arrays or dicts (raises on odd ones)",
    "Failing": "predict, transform_input and aggregate always raise",
    "Tagged": "static tags() and metrics() merged into every answer",
    "Raw": "*_raw methods get the wire request (dict, list or protobuf)",
    "Asyncy": "async def predict, run on the event loop",
}


@pytest.fixture(scope="session")
def target(serve: Callable[..., object]) -> Iterator[Callable[..., Target]]:
    """target(model, *flags, env=None) → a Target around the shared server."""
    targets: dict[tuple, Target] = {}

    def get(model: str, *flags: str, env: dict[str, str] | None = None) -> Target:
        key = (model, flags, tuple(sorted((env or {}).items())))
        if key not in targets:
            server = serve(model, *flags, env=env)
            passthrough = (env or {}).get("PAYLOAD_PASSTHROUGH") == "true"
            targets[key] = Target(server, json_answers=not passthrough)  # type: ignore[arg-type]
        return targets[key]

    yield get
    for t in targets.values():
        t.close()
