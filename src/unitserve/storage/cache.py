"""Where a fetched model lives, and how it gets there whole.

A model is written into a staging folder beside its final place and renamed into place
only once every file is complete. A download that is interrupted (a crash, a kill, a
network error) leaves at most a staging folder, which is never taken for a model and
is removed by the next download of the same URI. Renaming a folder is atomic on one
file system, so a reader sees either no model or the whole model.

Without a destination, models go to the cache folder (``UNITSERVE_MODEL_CACHE``, else
``~/.cache/unitserve/models``), one folder per URI and version: a second download of an
unchanged model finds its folder and fetches nothing, and older versions no process
uses are removed (leases.py). With a destination, the model is put exactly there, and a
marker file records which URI and version it holds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from unitserve.storage.errors import StorageError

CACHE_VARIABLE = "UNITSERVE_MODEL_CACHE"
MARKER = ".unitserve-download.json"
_STAGING = ".partial-"
_OWNER = ".owner-pid"


def cache_root() -> Path:
    configured = os.environ.get(CACHE_VARIABLE)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "unitserve" / "models"


def digest_of(uri: str, version: str) -> str:
    return hashlib.sha256(f"{uri}\n{version}".encode()).hexdigest()


def family_name(uri: str) -> str:
    """The start of the folder name of every cached version of `uri`: readable, and
    unique to the URI. (A query, which may hold a token, is left out of the readable
    part.)"""
    segments = uri.split("?", 1)[0].rstrip("/").split("/")[-3:]
    tail = re.sub(r"[^A-Za-z0-9._-]+", "-", "-".join(segments))[-48:]
    return f"{tail.strip('-.') or 'model'}-{hashlib.sha256(uri.encode()).hexdigest()[:12]}"


def entry_name(uri: str, version: str) -> str:
    """A folder name for (uri, version): its URI's family name, then a part unique to
    the version."""
    return f"{family_name(uri)}-{digest_of(uri, version)[:12]}"


def version_of(parts: list[tuple[str, str, int]]) -> str:
    """One version string for a model made of (name, version, size) parts."""
    text = "\n".join(f"{name}\t{version}\t{size}" for name, version, size in sorted(parts))
    return hashlib.sha256(text.encode()).hexdigest()


class Target:
    """The folder a model goes to, and what is there already."""

    def __init__(self, uri: str, version: str, dest: str | Path | None) -> None:
        self.uri, self.version = uri, version
        self.chosen = dest is not None
        self.family = family_name(uri)
        if dest is None:
            self.folder = cache_root() / entry_name(uri, version)
        else:
            self.folder = Path(dest).expanduser().absolute()

    def holds_it(self) -> bool:
        """True if the folder already holds this URI at this version, complete."""
        if not self.chosen:
            # In the cache, a folder exists only once it was renamed into place.
            return self.folder.is_dir()
        try:
            marker = json.loads((self.folder / MARKER).read_text())
        except (OSError, ValueError):
            return False
        return bool(marker == self._marker())

    @contextlib.contextmanager
    def staged(self) -> Iterator[Path]:
        """A staging folder to write the model into; put in place if the block succeeds,
        removed if it fails."""
        in_place = self.chosen and self.folder.exists()
        if in_place:
            self._check_replaceable()
        # An existing destination may be a mount point (renaming onto it fails): stage
        # inside it. Otherwise stage beside the final folder, on the same file system.
        parent = self.folder if in_place else self.folder.parent
        parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_staging(parent, self.folder.name)
        staging = Path(tempfile.mkdtemp(prefix=f"{_STAGING}{self.folder.name}-", dir=parent))
        owner = staging / _OWNER
        owner.write_text(str(os.getpid()))
        try:
            yield staging
            owner.unlink()
            if in_place:
                self._move_into_existing(staging)
            else:
                self._write_marker(staging)
                self._rename(staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _check_replaceable(self) -> None:
        if not self.folder.is_dir():
            raise StorageError(f"{self.folder}: the destination exists and is not a folder")
        others = [p for p in self.folder.iterdir() if not p.name.startswith(_STAGING)]
        if others and not (self.folder / MARKER).exists():
            raise StorageError(
                f"{self.folder}: the destination holds other files; give an empty or new "
                "folder (unitserve replaces only a folder it downloaded itself)"
            )

    def _rename(self, staging: Path) -> None:
        try:
            staging.rename(self.folder)
        except OSError:
            if not self.folder.is_dir():
                raise
            # Another process put the same model there first: keep theirs.

    def _move_into_existing(self, staging: Path) -> None:
        """Replace the contents of an existing destination folder: the marker goes
        first (so a half-replaced folder is not taken for the new model) and is written
        in full last."""
        (self.folder / MARKER).unlink(missing_ok=True)
        for entry in self.folder.iterdir():
            if entry.name == staging.name or entry.name.startswith(_STAGING):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        for entry in staging.iterdir():
            if entry.name != MARKER:
                entry.rename(self.folder / entry.name)
        self._write_marker(self.folder)

    def _marker(self) -> dict[str, str]:
        return {"uri": self.uri.split("?", 1)[0], "digest": digest_of(self.uri, self.version)}

    def _write_marker(self, folder: Path) -> None:
        if self.chosen:
            (folder / MARKER).write_text(json.dumps(self._marker()))


def _remove_stale_staging(parent: Path, name: str) -> None:
    """Remove what interrupted downloads into the same folder left behind: staging
    folders whose writing process has ended."""
    for stale in parent.glob(f"{_STAGING}{_glob_escape(name)}-*"):
        if not _in_use(stale):
            shutil.rmtree(stale, ignore_errors=True)


def _in_use(staging: Path) -> bool:
    """Whether a staging folder may still be written: the process named in its owner
    file still runs (or the folder is too new to have one yet)."""
    try:
        pid = int((staging / _OWNER).read_text())
    except (OSError, ValueError):
        try:
            return time.time() - staging.stat().st_mtime < 60
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)
