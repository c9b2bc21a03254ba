"""docs/metrics.md names every value the request metrics' `operation` and `protocol`
labels take, from the tables the transports count requests with."""

from __future__ import annotations

import re

from tests.docs_blocks import ROOT
from unitserve.operations import OPERATIONS, V2_PROTOCOL
from unitserve.transport.rest.routes import MEMBER_PREFIXES

PAGE = ROOT / "docs" / "metrics.md"


def _bullet(label: str) -> str:
    """The list item of docs/metrics.md that says what `label` holds."""
    found = re.search(rf"^- `{label}`:(.*?)(?=^- |^\n)", PAGE.read_text(), re.M | re.S)
    assert found, f"docs/metrics.md has no list item for the `{label}` label"
    return found.group(1)


def test_every_operation_label_is_named() -> None:
    text = _bullet("operation")
    names = {*OPERATIONS, *(route.kind for route in MEMBER_PREFIXES.values()), "unknown"}
    missing = sorted(name for name in names if f"`{name}`" not in text)
    assert not missing, f"docs/metrics.md does not name the operations {missing}"


def test_every_protocol_label_is_named() -> None:
    text = _bullet("protocol")
    for value in ("rest", "grpc", V2_PROTOCOL):
        assert f"`{value}`" in text, value
