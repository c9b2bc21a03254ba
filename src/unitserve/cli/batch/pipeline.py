"""The batch tool's run: the input read as it is sent, a pool of workers sending the
requests, and one writer putting the answer lines out in input order. At most a few
requests per worker wait to be written, so memory stays flat on any file."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from unitserve.cli.batch.progress import Progress, Stats
from unitserve.cli.batch.sending import (
    Job,
    failure,
    line_tags,
    predict_many,
    predict_one,
    time_uuid,
)
from unitserve.client import AsyncClient

log = logging.getLogger("unitserve.batch")


def read_jobs(
    stream: IO[bytes], skip: int, size: int, stats: Stats
) -> Iterator[tuple[int, list[str]]]:
    """(first line's index, lines) for each request, after the `skip` lines kept."""
    index = 0
    chunk: list[str] = []
    first = skip
    for raw in stream:
        stats.read_bytes += len(raw)
        if index < skip:
            index += 1
            continue
        if not chunk:
            first = index
        chunk.append(raw.decode("utf-8").rstrip("\r\n"))
        index += 1
        if len(chunk) == size:
            yield first, chunk
            chunk = []
    if chunk:
        yield first, chunk


def kept_lines(path: Path) -> int:
    """The complete lines an interrupted run wrote (a cut-off last line is removed)."""
    if not path.exists():
        return 0
    count = 0
    end = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            count += block.count(b"\n")
            last = block.rfind(b"\n")
            if last >= 0:
                end = f.tell() - len(block) + last + 1
    if end != path.stat().st_size:
        os.truncate(path, end)
    return count


async def process(args: argparse.Namespace, client: AsyncClient, out: IO[str], skip: int) -> Stats:
    path = Path(args.input_data_path)
    stats = Stats(path.stat().st_size, 0)
    progress = Progress(args.progress, stats)
    workers = max(1, args.workers)
    todo: asyncio.Queue[Job | None] = asyncio.Queue(workers * 2)
    ordered: asyncio.Queue[Job | None] = asyncio.Queue(workers * 4)
    send = predict_many if args.batch_size > 1 and args.protocol == "seldon" else predict_one

    async def worker() -> None:
        while (job := await todo.get()) is not None:
            started = time.monotonic()
            try:
                lines = await send(client, args, job)
            except Exception as exc:  # a line the code did not foresee
                # The writer waits for every job in order: a job left unanswered would
                # stop the whole run, so whatever went wrong becomes its failure lines.
                log.exception("batch: line %d could not be sent", job.first)
                instance = time_uuid()
                lines = [
                    failure(
                        f"{type(exc).__name__}: {exc}", line_tags(args, job.first + n, instance)
                    )
                    for n in range(len(job.lines))
                ]
            took = time.monotonic() - started
            stats.sent += 1
            stats.latency(took)
            job.done.set_result(lines)
            if args.batch_interval > 0 and took < args.batch_interval:
                await asyncio.sleep(args.batch_interval - took)

    async def writer() -> None:
        while (job := await ordered.get()) is not None:
            for line in await job.done:
                out.write(line + "\n")
                stats.lines += 1
                if line.startswith('{"status": {"info": "FAILURE"'):
                    stats.failed += 1
                else:
                    stats.ok += 1
            progress.tick()

    loop = asyncio.get_running_loop()
    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    write_task = asyncio.create_task(writer())
    with open(path, "rb") as stream:
        if skip:
            stats.start_byte = -1  # set once the kept lines are skipped
        for first, lines in read_jobs(stream, skip, args.batch_size, stats):
            if stats.start_byte < 0:
                stats.start_byte = stats.read_bytes - sum(len(x) + 1 for x in lines)
            job = Job(first, lines, loop.create_future())
            # The writer's queue first: it bounds how far reading runs ahead of writing.
            await ordered.put(job)
            await todo.put(job)
        stats.start_byte = max(stats.start_byte, 0)
    for _ in tasks:
        await todo.put(None)
    await ordered.put(None)
    await asyncio.gather(*tasks)
    await write_task
    progress.tick(final=True)
    return stats
