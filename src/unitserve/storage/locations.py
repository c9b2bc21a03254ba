"""Model URIs, parsed: which storage holds the model, and where in it.

The forms are the ones Seldon Core's and KServe's users write in ``modelUri``:
local paths and ``file://``, ``http(s)://``, ``s3://``, ``gs://``, Azure blob URLs
(``https://<account>.blob.core.windows.net/<container>/<path>``, ``az://`` and
``abfs(s)://``), and ``pvc://``, which only Kubernetes can mount.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import unquote, urlsplit

from unitserve.storage.errors import StorageError

_AZURE_BLOB_HOST = ".blob.core.windows.net"
_AZURE_DFS_HOST = ".dfs.core.windows.net"


@dataclass(frozen=True)
class Location:
    """Where a model is. `kind` is one of local, http, s3, gs, azure.

    For the object stores, `bucket` is the bucket or container and `key` the object
    name or prefix inside it (no leading slash, possibly empty). For local paths `key`
    is the path; for http it is the whole URL.
    """

    uri: str
    kind: str
    bucket: str = ""
    key: str = ""
    account: str = ""  # Azure: the storage account, when the URI names it
    query: str = ""  # Azure blob URLs: a shared access signature, when the URL carries one

    @property
    def shown(self) -> str:
        """The URI as it appears in messages: without a query (which may hold a token)."""
        return self.uri.split("?", 1)[0]


def parse(uri: str) -> Location:
    """The `Location` of `uri`; a `StorageError` for a form no storage here serves."""
    if not uri or not uri.strip():
        raise StorageError("empty model URI")
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "" or (len(scheme) == 1 and uri[1:3] in (":\\", ":/")):
        return Location(uri, "local", key=uri)
    if scheme == "file":
        return Location(uri, "local", key=unquote(parts.path))
    if scheme == "pvc":
        raise StorageError(
            f"{uri}: pvc:// names a Kubernetes volume claim, which only Kubernetes can "
            "mount; outside a cluster give the folder it holds as a local path"
        )
    if scheme == "s3":
        return _bucketed(uri, "s3", parts.netloc, parts.path)
    if scheme in ("gs", "gcs"):
        return _bucketed(uri, "gs", parts.netloc, parts.path)
    if scheme in ("az", "abfs", "abfss"):
        container, _, host = parts.netloc.partition("@")
        account = host.split(".", 1)[0] if host else ""
        return _bucketed(uri, "azure", container, parts.path, account)
    if scheme in ("http", "https"):
        host = (parts.hostname or "").lower()
        if host.endswith((_AZURE_BLOB_HOST, _AZURE_DFS_HOST)):
            container, _, key = parts.path.lstrip("/").partition("/")
            location = _bucketed(uri, "azure", container, key, host.split(".", 1)[0])
            return replace(location, query=parts.query)
        if not host:
            raise StorageError(f"{uri}: no host in the URL")
        return Location(uri, "http", key=uri)
    raise StorageError(
        f"{uri}: the scheme {scheme}:// is not supported (local paths, file://, http(s)://, "
        "s3://, gs://, Azure blob URLs, az:// and abfs(s)://)"
    )


def _bucketed(uri: str, kind: str, bucket: str, path: str, account: str = "") -> Location:
    if not bucket:
        raise StorageError(f"{uri}: no bucket or container in the URI")
    return Location(uri, kind, bucket=bucket, key=unquote(path).strip("/"), account=account)
