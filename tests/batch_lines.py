"""The answer lines of a batch run, as two runs (or two batch tools) can be compared."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def comparable(path: Path, keep_tags: bool = True) -> list[dict[str, Any]]:
    """Output lines without what differs by design: the request ids, and the batch's
    own ids (a new one per run); without the tags at all unless `keep_tags`."""
    out = []
    for line in path.read_text().splitlines():
        answer = json.loads(line)
        meta = answer.get("meta") or {}
        meta.pop("puid", None)
        tags = meta.get("tags") or {}
        for key in ("batch_id", "batch_instance_id"):
            tags.pop(key, None)
        if not keep_tags:
            meta.pop("tags", None)
        out.append(answer)
    return out
