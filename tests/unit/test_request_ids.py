"""Ids made for requests that come without one: version-4 UUIDs as `str(uuid.uuid4())`
writes them, all different, and different in a forked worker from its parent's."""

from __future__ import annotations

import os
import uuid

from unitserve.message import new_request_id


def test_ids_are_version_4_uuids_all_different() -> None:
    ids = [new_request_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:500]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_a_forked_worker_draws_ids_of_its_own() -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, to the parent
        try:
            os.write(write_end, new_request_id().encode())
        finally:
            os._exit(0)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    child = os.read(read_end, 100).decode()
    os.close(read_end)
    assert status == 0 and uuid.UUID(child).version == 4
    # Without drawing again after the fork, the child's next id would be the parent's.
    assert child != new_request_id()
