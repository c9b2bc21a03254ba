"""Which versions in the model cache are in use, and removing the older ones that are not.

The cache holds one folder per URI and version, so every new version of a model would
add a folder for good. Instead, once a download has the store's current version of a
URI in place, the folders of that URI's other versions are removed, except those a
running process still uses.

A process uses a cached version from the moment its ``download()`` asks for it until
the process ends: it holds a lease, a shared lock (``flock``) on a small file named
after the version's folder in the cache's ``.leases`` folder. Being loaded into memory
is not enough to let go of the files: some libraries (MLflow's, for one) read a model's
files lazily, long after loading. The kernel drops a lock when its process ends however
it ends, so a killed server never pins a version, and there is no process id to go
stale. Removing a version takes the exclusive lock without waiting; it is refused while
any process holds the shared one.

A removed folder is first renamed (``.old-…``) under the exclusive lock, then deleted:
nobody takes a half-deleted folder for a model, and one a killed process was deleting
is finished by the next removal.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import threading
import uuid
from pathlib import Path

log = logging.getLogger("unitserve.storage")

LEASES = ".leases"  # the cache's folder of lease files, one per cached version
_OLD = ".old-"  # a version's folder being removed

# The lease files this process holds open (so locked), by the version's folder.
_held: dict[Path, int] = {}
_holding = threading.Lock()  # downloads in several threads of one process


def _lease_path(folder: Path) -> Path:
    return folder.parent / LEASES / folder.name


def _open_locked(path: Path, operation: int) -> int | None:
    """A descriptor of the file at `path` locked with `operation`; None when the lock is
    held elsewhere (for a non-blocking one). A lock is kept only on the file still found
    at `path`: one removed meanwhile is replaced by a fresh one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, operation)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the removing process unlinked it while we waited: again


def hold(folder: Path) -> None:
    """Lease the cached version in `folder` until this process ends (waits only while
    another process is removing that version)."""
    folder = folder.absolute()
    with _holding:
        if folder in _held:
            return
        try:
            fd = _open_locked(_lease_path(folder), fcntl.LOCK_SH)
        except OSError as exc:
            # A cache this process cannot write (one baked read-only into an image, say)
            # cannot have versions removed from it either: nothing to guard against.
            log.debug("no lease on %s (%s): the cache is read-only to this process", folder, exc)
            return
        assert fd is not None  # a blocking lock is always had in the end
        _held[folder] = fd


def release(folder: Path) -> None:
    """Let go of this process' lease on `folder` (a download of it that failed), and
    remove the lease file unless another process holds it too."""
    folder = folder.absolute()
    with _holding:
        fd = _held.pop(folder, None)
    if fd is None:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with contextlib.suppress(FileNotFoundError):
            _lease_path(folder).unlink()
    except OSError:
        pass  # held elsewhere as well: theirs to keep
    finally:
        os.close(fd)


def prune(folder: Path, family: str, shown: str) -> list[Path]:
    """Remove the folders of the cache's other versions of the URI whose folder names
    start with ``family-``, keeping `folder` and every version some process holds; the
    folders removed. Trouble removing is logged, never raised: the download it follows
    did succeed."""
    parent = folder.parent
    version = re.compile(re.escape(family) + r"-[0-9a-f]{12}")
    removed = []
    try:
        entries = sorted(parent.iterdir())
    except OSError as exc:
        log.warning("cannot list the model cache %s to remove old versions: %s", parent, exc)
        return []
    for entry in entries:
        if entry.name.startswith(_OLD):
            shutil.rmtree(entry, ignore_errors=True)  # a removal cut short
            continue
        if entry == folder or not version.fullmatch(entry.name) or not entry.is_dir():
            continue
        try:
            if _remove_unused(entry):
                removed.append(entry)
                log.info("removed %s from the cache: an older version of %s", entry, shown)
            else:
                log.info("kept %s in the cache: an older version of %s, still in use", entry, shown)
        except OSError as exc:
            log.warning("cannot remove the older version %s of %s: %s", entry, shown, exc)
    _remove_orphan_leases(parent / LEASES, version)
    return removed


def _remove_orphan_leases(leases: Path, version: re.Pattern[str]) -> None:
    """Remove the URI's lease files left by downloads that never put their folder in
    place (they failed), unless a process holds one (it may be fetching right now)."""
    with contextlib.suppress(OSError):
        for lease in leases.iterdir():
            if not version.fullmatch(lease.name) or (leases.parent / lease.name).exists():
                continue
            fd = _open_locked(lease, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if fd is not None:
                with contextlib.suppress(FileNotFoundError):
                    lease.unlink()
                os.close(fd)


def _remove_unused(entry: Path) -> bool:
    """Remove the version folder `entry` unless a process holds its lease."""
    lease = _lease_path(entry)
    fd = _open_locked(lease, fcntl.LOCK_EX | fcntl.LOCK_NB)
    if fd is None:
        return False
    try:
        doomed = entry.parent / f"{_OLD}{entry.name}-{uuid.uuid4().hex[:8]}"
        try:
            entry.rename(doomed)
        except FileNotFoundError:
            return False  # another process removed it first
        with contextlib.suppress(FileNotFoundError):
            lease.unlink()
    finally:
        os.close(fd)
    shutil.rmtree(doomed, ignore_errors=True)
    return True
