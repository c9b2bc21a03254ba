"""Kubernetes pod annotations from the downward API file (``/etc/podinfo/annotations``,
or ``UNITSERVE_ANNOTATIONS_PATH``: `Settings.annotations_path`), read as Seldon does:
one ``key="value"`` per line."""

from __future__ import annotations

import logging

log = logging.getLogger("unitserve")

GRPC_MAX_MESSAGE_SIZE = "seldon.io/grpc-max-message-size"


def read(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in lines:
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep:
            log.warning("bad annotation line in %s: %r", path, line)
            continue
        value = value.strip()
        out[key.strip()] = value[1:-1] if len(value) >= 2 else value
    return out


def grpc_max_message_size(path: str) -> int | None:
    text = read(path).get(GRPC_MAX_MESSAGE_SIZE)
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        log.warning("annotation %s=%r is not an integer: ignored", GRPC_MAX_MESSAGE_SIZE, text)
        return None
    return value if value > 0 else None
