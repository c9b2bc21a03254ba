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


@dataclass(frozen=True, slots=True)
class _Listing:
    """What a folder holds, as far as finding models goes: its subfolders that are
    walked (not hidden, not links: as `os.walk` goes), its links to folders, and its
    settings file if it has one. Paths are plain text: a look handles thousands."""

    stamp: Stamp | None  # None: changed too recently to be trusted next time
    subfolders: tuple[str, ...]
    linked_folders: tuple[str, ...]
    settings: str | None  # the path of its model-settings.json
    walk_next: tuple[str, ...]  # the subfolders' paths, last first (a stack's order)

    @property
    def all_folders(self) -> tuple[str, ...]:
        return self.subfolders + self.linked_folders


@dataclass(frozen=True, slots=True)
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
        self._listings: dict[str, _Listing] = {}
        self._reads: dict[str, _Read] = {}
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
        before = self._listings
        listings: dict[str, _Listing] = {}
        settings: list[tuple[str, _Listing]] = []
        changed = not self._looked
        # The folders top down in name order, as `os.walk` goes (which `scan` uses).
        pending = [str(self.root)]
        while pending:
            here = pending.pop()
            try:
                stat = os.stat(here)
            except OSError:  # gone, or not readable: os.walk passes over it too
                continue
            stamp = (stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_ino)
            listing = before.get(here)
            if listing is None or listing.stamp != stamp:
                changed = True
                listing = _list(here, stamp, recent)
                if listing is None:
                    continue
            listings[here] = listing
            if listing.settings is not None:
                settings.append((listing.settings, listing))
            pending.extend(listing.walk_next)
        changed |= len(listings) != len(before)
        self._listings = listings
        reads: dict[str, _Read] = {}
        self.files_read = 0
        for path, folder in settings:
            read = self._read(path, folder, recent)
            changed |= read is not self._reads.get(path)
            reads[path] = read
        changed |= len(reads) != len(self._reads)
        self._reads = reads
        self._looked = True
        if not changed:
            return
        files = [Path(path) for path, _ in settings]
        root_listing = listings.get(str(self.root))
        models = completed(
            self.root,
            files,
            [reads[path].model for path, _ in settings],
            lambda: () if root_listing is None else root_listing.all_folders,
            self.env,
        )
        by_name: dict[str, list[RepositoryModel]] = {}
        for model in models:
            by_name.setdefault(model.name, []).append(model)
        self._models, self._by_name = models, by_name

    def _read(self, path: str, folder: _Listing, recent: int) -> _Read:
        before = self._reads.get(path)
        try:
            stat = os.stat(path)
            stamp: Stamp | None = (
                stat.st_mtime_ns,
                stat.st_ctime_ns,
                stat.st_size,
                stat.st_ino,
            )
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
        model = read_model_settings(Path(path), self.env)
        trusted = stamp is not None and model.available and not _recent(stamp, recent)
        return _Read(stamp if trusted else None, folder.stamp, model)


def _recent(stamp: Stamp, recent: int) -> bool:
    return max(stamp[0], stamp[1]) >= recent


def _list(folder: str, stamp: Stamp, recent: int) -> _Listing | None:
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
    subfolders.sort()
    linked.sort()
    return _Listing(
        None if _recent(stamp, recent) else stamp,
        tuple(subfolders),
        tuple(linked),
        os.path.join(folder, MODEL_SETTINGS_FILE) if has_settings else None,
        tuple(os.path.join(folder, name) for name in reversed(subfolders)),
    )
