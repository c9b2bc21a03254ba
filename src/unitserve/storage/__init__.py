"""Model storage: turn a model URI into a local folder.

A leaf of the package: it imports nothing of unitserve's above it, so that the
prepackaged servers, the graph runner and users' own ``load()`` can all call it.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

__all__ = ["download"]


def download(uri: str, dest: str | Path | None = None) -> str:
    """The local path holding `uri`'s files.

    Today only local paths and ``file://`` URIs are handled; `dest` is unused for them
    (a local model is served where it is).
    """
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = Path(parsed.path if parsed.scheme == "file" else uri)
        if not path.exists():
            raise FileNotFoundError(f"{uri}: no such file or folder")
        return str(path)
    raise ValueError(f"{uri}: the scheme {parsed.scheme!r} is not supported")
