"""The command line imports what the command it runs needs, and its help stays whole."""

from __future__ import annotations

import subprocess
import sys

from unitserve.cli.main import build_parser

# What `unitserve fetch` loads before its download starts, in a fresh interpreter.
FETCH_START = """
import sys
from unitserve.cli.main import build_parser
build_parser("fetch").parse_args(["fetch", "s3://bucket/model"])
import unitserve.storage
"""
# Loaded by serving, packaging and the HTTP tools, none of which a fetch from S3 uses
# before its store's own library.
HEAVY = {"grpc", "yaml", "httpx", "numpy", "orjson", "jsonschema", "google"}


def loaded_of(packages: set[str], code: str) -> list[str]:
    """The modules of `packages` that `code` leaves loaded, run in a fresh interpreter."""
    report = 'print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in %r)))'
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\n{report % packages}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_fetch_starts_without_the_other_commands_libraries() -> None:
    assert loaded_of(HEAVY, FETCH_START) == []


def test_the_overview_is_the_same_whichever_command_is_declared_in_full() -> None:
    # Undeclared commands show the one-line help kept in the command table: it must
    # stay the line each command's own parser declares.
    overview = build_parser(None).format_help()
    for command in ("", "serve", "graph", "start", "init", "build", "manifest", "fetch"):
        assert build_parser(command).format_help() == overview, command


# What a fetch from S3 loads up to its transfers: botocore's client, created for a
# server that is never called.
S3_FETCH = """
import os, sys
os.environ.update(AWS_ACCESS_KEY_ID="id", AWS_SECRET_ACCESS_KEY="secret",
                  AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_REGION="us-east-1")
from unitserve.storage import objects, s3_transfers
from unitserve.storage.locations import parse
objects.filesystem(parse("s3://bucket/model"))
"""
# s3fs's asynchronous stack: half a second of CPU to import, about what rclone takes to
# fetch a 200 MB object.
ASYNC_STACK = {"asyncio", "aiohttp", "aiobotocore", "s3fs", "fsspec", "httpx"}


def test_an_s3_fetch_loads_no_asynchronous_http_stack() -> None:
    assert loaded_of(ASYNC_STACK, S3_FETCH) == []
