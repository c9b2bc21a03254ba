"""The request id a graph gives a request that came without one."""

from __future__ import annotations

import uuid

from unitserve.message import new_request_id as new_puid


def test_new_puids_are_random_version_4_uuids_as_uuid4_writes_them() -> None:
    seen = set()
    for _ in range(2000):
        puid = new_puid()
        parsed = uuid.UUID(puid)
        assert str(parsed) == puid
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        seen.add(puid)
    assert len(seen) == 2000
