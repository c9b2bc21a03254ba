"""Which versions in the model cache are in use, and removing the older ones that are not.

The cache holds one folder per URI and version, so every new version of a model would
add a folder for good. Instead, once a download has the store's current version of a
URI in place, the folders of that URI's other versions are removed, except those a
running process still uses.

A process uses a cached version from the moment its ``download()`` asks for it: it
holds a lease, a shared lock (``flock``) on a small file named after the version's
folder in the cache's ``.leases`` folder. The kernel drops a lock when its process ends
however it ends, so a killed server never pins a version, and there is no process id to
go stale. Removing a version takes the exclusive lock without waiting; it is refused
while any process holds the shared one.

How long the lease lasts depends on who asked. A served model's load (its class's
constructor, its ``load()``, its metadata) downloads inside the model's `Claim`: the
versions it fetched are leased until the model is unloaded, or forgotten after its load
failed, and then only if no other model of the process (another name, or another
version of the same one) claimed the same folder: each folder counts its holders. So a
repository server that loads and unloads models for months lets the cache drop what it
no longer serves. Any other download (a user's script, ``unitserve fetch``, a thread a
model's load started itself) leases the version until the process ends. Being loaded
into memory is not enough to let go of the files: some libraries (MLflow's, for one)
read a model's files lazily, long after loading; the files go only after the model does.

A version whose lease has ended stays in the cache until the next download of its URI
finds a newer one in place, as a version left by an ended process does.

A removed folder is first renamed (``.old-…``) under the exclusive lock, then deleted:
nobody takes a half-deleted folder for a model, and one a killed process was deleting
is finished by the next removal.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import logging
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

log = logging.getLogger("unitserve.storage")

T = TypeVar("T")

LEASES = ".leases"  # the cache's folder of lease files, one per cached version
_OLD = ".old-"  # a version's folder being removed

# The holder of a version downloaded outside any claim: the process itself, which lets
# go of it only by ending.
PROCESS = "this process"


class Claim:
    """The cached versions one user of them leases: a served model, whose load runs
    inside `collecting()` (or `run()`, on another thread). What ``download()`` leases
    meanwhile is the claim's, until `release()`."""

    def __init__(self, owner: str) -> None:
        self.owner = owner  # for log lines: "model 'iris'"
        self.folders: set[Path] = set()

    def __repr__(self) -> str:
        return f"Claim({self.owner!r}, {len(self.folders)} version(s))"

    @contextlib.contextmanager
    def collecting(self) -> Iterator[Claim]:
        """Downloads in this block (this thread or task, and the threads started with
        its context, as ``asyncio.to_thread`` starts them) lease for this claim."""
        token = _collecting.set(self)
        try:
            yield self
        finally:
            _collecting.reset(token)

    def run(self, fn: Callable[[], T]) -> T:
        """`fn()` collecting for this claim (for a pool's thread, which starts with
        no context of the caller's)."""
        with self.collecting():
            return fn()

    def release(self) -> None:
        """Let go of every version the claim holds; a version's lease ends when no
        other holder in the process has it."""
        with _holding:
            folders, self.folders = self.folders, set()
        for folder in sorted(folders):
            release(folder, self)


# The claim the downloads of this thread or task lease for (None: the process's).
_collecting: contextvars.ContextVar[Claim | None] = contextvars.ContextVar(
    "unitserve_lease_claim", default=None
)


class _Lease:
    """This process' lock on one version's lease file, and who in the process uses it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.holders: set[object] = set()  # claims, or PROCESS


# The lease files this process holds open (so locked), by the version's folder.
_held: dict[Path, _Lease] = {}
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


def holder() -> object:
    """Who a download here leases for: the claim collecting now, else the process."""
    return _collecting.get() or PROCESS


def hold(folder: Path) -> object | None:
    """Lease the cached version in `folder` for the claim collecting now, or else until
    the process ends (waits only while another process is removing that version). The
    holder this call added, to `release` should the download fail; None when that
    holder had it already, or the cache is read-only to this process."""
    folder = folder.absolute()
    who = holder()
    with _holding:
        lease = _held.get(folder)
        if lease is None:
            try:
                fd = _open_locked(_lease_path(folder), fcntl.LOCK_SH)
            except OSError as exc:
                # A cache this process cannot write (one baked read-only into an image,
                # say) cannot have versions removed from it either: nothing to guard.
                log.debug(
                    "no lease on %s (%s): the cache is read-only to this process", folder, exc
                )
                return None
            assert fd is not None  # a blocking lock is always had in the end
            lease = _held[folder] = _Lease(fd)
        if who in lease.holders:
            return None
        lease.holders.add(who)
        if isinstance(who, Claim):
            who.folders.add(folder)
    return who


def holders(folder: Path) -> set[object]:
    """Who in this process holds the lease on `folder` (empty: no lease)."""
    with _holding:
        lease = _held.get(folder.absolute())
        return set(lease.holders) if lease is not None else set()


def release(folder: Path, who: object) -> None:
    """`who` (a claim, or PROCESS for a download of its own that failed) lets go of
    `folder`. Once no holder is left, the lease ends: the lock goes, and the lease file
    too unless another process holds it."""
    folder = folder.absolute()
    with _holding:
        lease = _held.get(folder)
        if lease is None or who not in lease.holders:
            return
        lease.holders.discard(who)
        if isinstance(who, Claim):
            who.folders.discard(folder)
        if lease.holders:
            return  # another model of this process uses it too
        del _held[folder]
    if isinstance(who, Claim):
        log.info("%s no longer uses %s: its lease on that cached version ended", who.owner, folder)
    try:
        fcntl.flock(lease.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with contextlib.suppress(FileNotFoundError):
            _lease_path(folder).unlink()
    except OSError:
        pass  # held elsewhere as well (another process, or a new hold here): theirs to keep
    finally:
        os.close(lease.fd)


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
