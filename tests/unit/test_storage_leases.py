"""Who holds a cached version in this process: a claim (a served model's load) for as
long as it is not released, counted per folder, or the process itself until it ends;
and what pruning may remove once the last holder lets go."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from unitserve.storage import leases
from unitserve.storage.cache import Target

URI = "s3://b/model"


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("UNITSERVE_MODEL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def version(name: str) -> Path:
    """The cache folder of version `name` of URI, with a file in it."""
    folder = Target(URI, name, None).folder
    folder.mkdir(parents=True)
    (folder / "model.joblib").write_bytes(name.encode())
    return folder


def prune(current: Path) -> list[Path]:
    """What a download that found `current` in place removes."""
    return leases.prune(current, Target(URI, "any", None).family, URI)


def test_a_claim_holds_until_released_then_pruning_removes_the_version(cache: Path) -> None:
    old, new = version("v1"), version("v2")
    claim = leases.Claim("model 'a'")
    with claim.collecting():
        assert leases.hold(old) is claim
        assert leases.hold(old) is None  # asked twice, held once
    assert leases.holders(old) == {claim} and claim.folders == {old}
    assert prune(new) == [] and old.is_dir()  # in use
    claim.release()
    assert leases.holders(old) == set() and claim.folders == set()
    assert not (cache / leases.LEASES / old.name).exists()  # no lease file left behind
    assert prune(new) == [old] and not old.exists()


def test_a_version_two_claims_hold_stays_until_both_let_go(cache: Path) -> None:
    old, new = version("v1"), version("v2")
    first, second = leases.Claim("model 'a'"), leases.Claim("model 'b'")
    for claim in (first, second):
        with claim.collecting():
            leases.hold(old)
    first.release()
    assert leases.holders(old) == {second}
    assert prune(new) == [] and old.is_dir()
    first.release()  # again: nothing more to let go of
    second.release()
    assert prune(new) == [old]


def test_a_download_outside_any_claim_is_held_until_the_process_ends(cache: Path) -> None:
    old, new = version("v1"), version("v2")
    claim = leases.Claim("model 'a'")
    leases.hold(old)  # a user's own script, say
    with claim.collecting():
        leases.hold(old)
    claim.release()
    assert leases.holders(old) == {leases.PROCESS}
    assert prune(new) == [] and old.is_dir()


def test_a_failed_download_lets_go_of_its_own_hold_only(cache: Path) -> None:
    old = version("v1")
    loaded, failing = leases.Claim("model 'a'"), leases.Claim("model 'b'")
    with loaded.collecting():
        leases.hold(old)
    with failing.collecting():
        added = leases.hold(old)
    leases.release(old, added)  # what download() does when its fetch fails
    assert leases.holders(old) == {loaded} and failing.folders == set()
    loaded.release()


def test_the_claim_reaches_the_threads_a_load_runs_on(cache: Path) -> None:
    by_task, by_pool, outside = version("v1"), version("v2"), version("v3")
    claim = leases.Claim("model 'a'")

    async def load() -> None:
        with claim.collecting():
            # asyncio.to_thread copies the context: the claim goes along.
            await asyncio.to_thread(leases.hold, by_task)
        # A pool's thread does not: run() sets it there.
        done = threading.Thread(target=claim.run, args=(lambda: leases.hold(by_pool),))
        done.start()
        done.join(timeout=30)
        leases.hold(outside)  # after the block: the process's

    asyncio.run(load())
    assert claim.folders == {by_task, by_pool}
    assert leases.holders(outside) == {leases.PROCESS}
    claim.release()
    assert leases.holders(by_task) == leases.holders(by_pool) == set()
