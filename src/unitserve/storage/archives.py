"""Unpacking a model archive (.tar, .tar.gz, .tgz, .zip) without trusting it.

An archive comes from wherever the URI points. A member named ``../x`` or ``/etc/x``,
or a link pointing outside, would write outside the model folder, so each member is
checked before anything is written and the whole archive is refused on the first bad
one. Device files and FIFOs are refused too: a model has no use for them.
"""

from __future__ import annotations

import posixpath
import tarfile
import zipfile
from pathlib import Path

from unitserve.storage.errors import StorageError, UnsafeArchive

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def unpack(archive: Path, dest: Path, shown: str) -> None:
    """Unpack `archive` into the folder `dest`; `shown` names it in errors."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if archive.name.lower().endswith(".zip"):
            _unpack_zip(archive, dest, shown)
        else:
            _unpack_tar(archive, dest, shown)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        if isinstance(exc, StorageError):
            raise
        # tarfile lists each compression it tried on a line of its own: one line here
        detail = " ".join(str(exc).split())
        raise StorageError(f"{shown}: not a readable archive: {detail}") from exc


def escapes(name: str) -> bool:
    """True if the member path `name` is absolute or climbs out of the folder."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return True
    normal = posixpath.normpath(name.replace("\\", "/"))
    return normal == ".." or normal.startswith("../")


def _unpack_tar(archive: Path, dest: Path, shown: str) -> None:
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for member in members:
            if escapes(member.name):
                raise UnsafeArchive(f"{shown}: refused: the member {member.name!r} escapes")
            if member.issym() or member.islnk():
                # A symbolic link resolves from its own folder, a hard link from the root.
                base = posixpath.dirname(member.name) if member.issym() else ""
                target = posixpath.join(base, member.linkname)
                if member.linkname.startswith("/") or escapes(target):
                    raise UnsafeArchive(
                        f"{shown}: refused: the link {member.name!r} points outside "
                        f"({member.linkname!r})"
                    )
            elif not (member.isfile() or member.isdir()):
                raise UnsafeArchive(f"{shown}: refused: {member.name!r} is a device file or FIFO")
        # The standard library's own "data" filter checks the same again (and drops
        # modes a model file has no use for, such as set-user-ID).
        tar.extractall(dest, members=members, filter="data")


def _unpack_zip(archive: Path, dest: Path, shown: str) -> None:
    with zipfile.ZipFile(archive) as zipped:
        for name in zipped.namelist():
            if escapes(name):
                raise UnsafeArchive(f"{shown}: refused: the member {name!r} escapes")
        zipped.extractall(dest)
