"""In-process fixtures: a user object served without sockets (see engine_harness)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .engine_harness import Harness, fixture_model


@pytest.fixture
def model() -> Iterator[Callable[..., Harness]]:
    """model(name_or_object, env=None, parameters=None, **options) → a Harness.

    A string names a class in tests/fixtures (built with `parameters`, as
    ``--parameters`` would); anything else is served as it is. Each harness is this
    test's own and is closed after it."""
    made: list[Harness] = []

    def make(
        user: Any,
        env: dict[str, str] | None = None,
        parameters: dict[str, Any] | None = None,
        **options: Any,
    ) -> Harness:
        if isinstance(user, str):
            user = fixture_model(user, **(parameters or {}))
        harness = Harness(user, env, **options)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.close()
