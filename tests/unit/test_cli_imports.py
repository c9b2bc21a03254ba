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
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY})))
"""
# Loaded by serving, packaging and the HTTP tools, none of which a fetch from S3 uses
# before its store's own library.
HEAVY = {"grpc", "yaml", "httpx", "numpy", "orjson", "jsonschema", "google"}


def test_fetch_starts_without_the_other_commands_libraries() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FETCH_START.replace("{HEAVY}", repr(HEAVY))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []


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
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in {ASYNC_STACK})))
"""
# s3fs's asynchronous stack: half a second of CPU to import, about what rclone takes to
# fetch a 200 MB object.
ASYNC_STACK = {"asyncio", "aiohttp", "aiobotocore", "s3fs", "fsspec", "httpx"}


def test_an_s3_fetch_loads_no_asynchronous_http_stack() -> None:
    done = subprocess.run(
        [sys.executable, "-c", S3_FETCH.replace("{ASYNC_STACK}", repr(ASYNC_STACK))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []
