"""Reading a Prometheus exposition in tests."""

from __future__ import annotations

from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.append((sample.name, dict(sample.labels), sample.value))
    return out


def total(text: str, name: str, **match: str) -> float:
    return sum(
        v
        for n, labels, v in samples(text)
        if n == name and all(labels.get(k) == x for k, x in match.items())
    )


def by_label(text: str, name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for n, labels, v in samples(text):
        if n == name:
            out[labels.get(label, "")] += v
    return dict(out)
