"""What goes wrong when fetching a model, each as one line naming the URI.

Every error is a `StorageError`; the two a caller most often tells apart are also the
built-in exceptions they mean, so ``except FileNotFoundError`` works as a user expects.
"""

from __future__ import annotations


class StorageError(RuntimeError):
    """A model URI could not be turned into a local path; the message says why."""


class NotFound(StorageError, FileNotFoundError):
    """The URI names nothing: no such file, object, prefix or bucket."""


class AccessDenied(StorageError, PermissionError):
    """The storage refused the credentials (wrong, expired or lacking a permission)."""


class UnsafeArchive(StorageError):
    """An archive has a member that would land outside the folder it is unpacked to."""


class MissingExtra(StorageError, ImportError):
    """The scheme needs an optional extra that is not installed."""

    def __init__(self, uri: str, library: str, extra: str) -> None:
        super().__init__(
            f"{uri}: needs the {library} library, which is not installed: "
            f"pip install 'unitserve[{extra}]'"
        )
