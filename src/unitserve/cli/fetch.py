"""``unitserve fetch URI [DEST]``: download a model as the servers would, print its path."""

from __future__ import annotations

import argparse
import logging
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fetch",
        help="download a model URI (s3://, gs://, Azure blob, http(s)://) and print its path",
        description="Download the model a URI names, as the prepackaged servers and "
        "unitserve.storage.download() do, and print the local path: the file for a URI "
        "naming one plain file, else the folder (a prefix of objects, or an unpacked "
        ".tar, .tar.gz, .tgz or .zip). Credentials and endpoints come from the "
        "environment (AWS_*, S3_ENDPOINT, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_*; "
        "see docs/storage.md). A model already there at the same version is not fetched "
        "again, and the cache's older versions of the URI that no running process uses "
        "are removed.",
    )
    p.add_argument(
        "uri",
        metavar="URI",
        help="the model: a local path, file://, http(s)://, "
        "s3://, gs://, https://<account>.blob.core.windows.net/…, az:// or abfs://",
    )
    p.add_argument(
        "dest",
        metavar="DEST",
        nargs="?",
        default=None,
        help="the folder to put the model in (default: the cache, UNITSERVE_MODEL_CACHE or "
        "~/.cache/unitserve/models; a local path is then printed as it is)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only the path")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from unitserve.storage import StorageError, download

    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    try:
        path = download(args.uri, args.dest)
    except StorageError as exc:
        print(f"unitserve fetch: error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0
