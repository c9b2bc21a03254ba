"""A models folder's models by name, kept up to date without reading it all again.

`scan` reads and validates every ``model-settings.json`` of the folder; in a folder of
a thousand models that is most of a second, far more than loading one small model. A
`RepositoryIndex` gives what `scan` and `find` give (the same models, in the same
order, duplicates and broken files included) but remembers what it read. Bringing it
up to date costs one ``stat`` per folder and per settings file: a folder is listed
again only when its entries changed (a folder's modification time moves when an entry
is added, removed or renamed in it), and a settings file is read again only when it,
or the folder holding it, changed.

Seldon Core 2's agent writes a model's files just before it asks for the load, so a
change must be seen by the very next look, even when it lands within the same tick of
the file system's clock as the previous look. Whatever was modified in the last
`RECENT_SECONDS` is therefore never trusted to be unchanged: it is read again until it
has been quiet that long (the cost is a few reads of the files just written). A model
that could not be served is read again on every look too, as its reason may lie
outside its folder (a ``parameters.uri`` that does not exist yet, say).

An index is safe to use from several threads (one look at a time); its looks read
files, so a server makes them off its event loop.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from unitserve.repository.model_settings import (
    MODEL_SETTINGS_FILE,
    RepositoryModel,
    read_model_settings,
)
from unitserve.repository.scan import completed, is_hidden

#: How long after its last change a folder or file is read again at every look,
#: whatever its modification time says (see the module doc).
RECENT_SECONDS = 2.0

# What says a folder's entries or a file's contents are unchanged: modification and
# change times, size and inode (a file replaced by a rename has a new inode).
Stamp = tuple[int, int, int, int]


def _stamp(stat: os.stat_result) -> Stamp:
    return (stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_ino)


@dataclass(frozen=True)
class _Listing:
    """What a folder holds, as far as finding models goes: its subfolders that are
    walked (not hidden, not links: as `os.walk` goes), its links to folders, and
    whether it holds a settings file."""

    stamp: Stamp | None  # None: changed too recently to be trusted next time
    subfolders: tuple[str, ...]
    linked_folders: tuple[str, ...]
    has_settings: bool

    @property
    def all_folders(self) -> tuple[str, ...]:
        return self.subfolders + self.linked_folders


@dataclass(frozen=True)
class _Read:
    """A settings file as last read."""

    stamp: Stamp | None  # None: read again next time (recent, or not servable)
    folder_stamp: Stamp | None
    model: RepositoryModel


class RepositoryIndex:
    """The models of the models folder `root` by name (see the module doc)."""

    def __init__(self, root: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> None:
        self.root = Path(root)
        self.env = dict(os.environ if env is None else env)
        self._lock = threading.Lock()
        self._listings: dict[Path, _Listing] = {}
        self._reads: dict[Path, _Read] = {}
        self._models: list[RepositoryModel] = []
        self._by_name: dict[str, list[RepositoryModel]] = {}
        self._looked = False
        # How many settings files the last look read (the rest were remembered).
        self.files_read = 0

    def models(self) -> list[RepositoryModel]:
        """Every model of the folder now, as `scan` gives them."""
        with self._lock:
            self._look()
            return list(self._models)

    def find(self, name: str, version: str | None = None) -> list[RepositoryModel]:
        """The models named `name` now (and of `version`, when given), as `find`
        gives them: empty if there is none."""
        with self._lock:
            self._look()
            found = self._by_name.get(name, [])
        return [m for m in found if version is None or m.version == version]

    # ------------------------------------------------------------------ looking

    def _look(self) -> None:
        recent = time.time_ns() - int(RECENT_SECONDS * 1e9)
        listings: dict[Path, _Listing] = {}
        changed = not self._looked
        files: list[Path] = []
        for folder, listing in self._walk(self.root, recent, listings):
            changed |= listing is not self._listings.get(folder)
            if listing.has_settings:
                files.append(folder / MODEL_SETTINGS_FILE)
        changed |= listings.keys() != self._listings.keys()
        self._listings = listings
        reads: dict[Path, _Read] = {}
        self.files_read = 0
        for path in files:
            read = self._read(path, listings[path.parent], recent)
            changed |= read is not self._reads.get(path)
            reads[path] = read
        changed |= reads.keys() != self._reads.keys()
        self._reads = reads
        self._looked = True
        if not changed:
            return
        root_listing = listings.get(self.root)
        models = completed(
            self.root,
            files,
            [reads[path].model for path in files],
            lambda: () if root_listing is None else root_listing.all_folders,
            self.env,
        )
        by_name: dict[str, list[RepositoryModel]] = {}
        for model in models:
            by_name.setdefault(model.name, []).append(model)
        self._models, self._by_name = models, by_name

    def _walk(
        self, folder: Path, recent: int, listings: dict[Path, _Listing]
    ) -> list[tuple[Path, _Listing]]:
        """`folder` and the folders below it, top down in name order (as `os.walk`
        goes, which `scan` uses), each with its listing: remembered if unchanged."""
        out: list[tuple[Path, _Listing]] = []
        pending = [folder]
        while pending:
            here = pending.pop()
            try:
                stamp = _stamp(os.stat(here))
            except OSError:  # gone, or not readable: os.walk passes over it too
                continue
            listing = self._listings.get(here)
            if listing is None or listing.stamp is None or listing.stamp != stamp:
                listing = _list(here, stamp, recent)
                if listing is None:
                    continue
            listings[here] = listing
            out.append((here, listing))
            pending.extend(here / name for name in reversed(listing.subfolders))
        return out

    def _read(self, path: Path, folder: _Listing, recent: int) -> _Read:
        before = self._reads.get(path)
        try:
            stamp: Stamp | None = _stamp(os.stat(path))
        except OSError:
            stamp = None  # read_model_settings says why it cannot be read
        if (
            before is not None
            and before.stamp is not None
            and before.stamp == stamp
            and before.folder_stamp is not None
            and before.folder_stamp == folder.stamp
        ):
            return before
        self.files_read += 1
        model = read_model_settings(path, self.env)
        trusted = stamp is not None and model.available and not _recent(stamp, recent)
        return _Read(stamp if trusted else None, folder.stamp, model)


def _recent(stamp: Stamp, recent: int) -> bool:
    return max(stamp[0], stamp[1]) >= recent


def _list(folder: Path, stamp: Stamp, recent: int) -> _Listing | None:
    """What `folder` holds now (None if it cannot be listed)."""
    subfolders: list[str] = []
    linked: list[str] = []
    has_settings = False
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    is_folder = entry.is_dir()
                except OSError:
                    is_folder = False
                if not is_folder:
                    has_settings |= entry.name == MODEL_SETTINGS_FILE
                elif entry.is_symlink():
                    linked.append(entry.name)
                elif not is_hidden(entry.name):
                    subfolders.append(entry.name)
    except OSError:
        return None
    return _Listing(
        None if _recent(stamp, recent) else stamp,
        tuple(sorted(subfolders)),
        tuple(sorted(linked)),
        has_settings,
    )
