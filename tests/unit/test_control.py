"""The control channel in one process: the supervisor's hub and fake workers (the real
worker-side channels, each on its own socketpair) share one event loop, which drives
the hub's selector as the supervisor's loop would."""

from __future__ import annotations

import asyncio
import selectors
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from unitserve.runtime.control import ControlError, LocalChannel, SupervisedChannel
from unitserve.runtime.control_hub import ControlHub
from unitserve.runtime.control_wire import FramingError, LineBuffer, encode

Args = dict[str, Any]
T = TypeVar("T")


@dataclass
class Recorder:
    """A handler that notes each operation it runs; `gates` hold an operation until set."""

    name: str
    calls: list[tuple[str, Args]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    gates: dict[str, asyncio.Event] = field(default_factory=dict)
    arrived: dict[str, asyncio.Event] = field(default_factory=dict)
    fail: dict[str, Exception] = field(default_factory=dict)

    async def __call__(self, op: str, args: Args) -> Args:
        what = f"{op} {args.get('name')}"
        self.calls.append((op, args))
        self.events.append(f"start {what}")
        self.arrived.setdefault(what, asyncio.Event()).set()
        if what in self.gates:
            await self.gates[what].wait()
        self.events.append(f"end {what}")
        if what in self.fail:
            raise self.fail[what]
        return {"worker": self.name, "op": op}

    async def reached(self, what: str) -> None:
        await asyncio.wait_for(self.arrived.setdefault(what, asyncio.Event()).wait(), 5)


@dataclass
class Fake:
    pid: int
    channel: SupervisedChannel
    handler: Recorder


class Rig:
    """A ControlHub with fake workers; the loop watches the selector's own descriptor
    (epoll's is readable whenever a socket it watches has an event)."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.hub = ControlHub(self.selector)
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self.selector.fileno(), self._drive)
        self.ticker = self.loop.create_task(self._tick())
        self.workers: list[Fake] = []

    def _drive(self) -> None:
        for key, _ in self.selector.select(0):
            key.data(key.fileobj)

    async def _tick(self) -> None:  # the supervisor's loop wakes up at least this often
        while True:
            await asyncio.sleep(0.05)
            self.hub.expire(time.monotonic())

    async def worker(self, replay: bool = True) -> Fake:
        ours, theirs = socket.socketpair()
        slot = len(self.workers)
        pid = 100 + slot
        self.hub.attach(pid, ours, f"worker {slot} (pid {pid})")
        channel = SupervisedChannel(theirs, f"worker {slot}")
        handler = Recorder(f"w{slot}")
        channel.set_handler(handler)
        await channel.start()
        if replay:
            await channel.replay()
        fake = Fake(pid, channel, handler)
        self.workers.append(fake)
        return fake

    async def close(self) -> None:
        self.ticker.cancel()
        for fake in self.workers:
            await fake.channel.close()
        self.hub.close()
        self.loop.remove_reader(self.selector.fileno())
        self.selector.close()


def run(test: Callable[[Rig], Awaitable[None]]) -> None:
    async def main() -> None:
        rig = Rig()
        try:
            await asyncio.wait_for(test(rig), 20)
        finally:
            await rig.close()

    asyncio.run(main())


def spawn(coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    return asyncio.get_running_loop().create_task(coroutine)


# ---------------------------------------------------------------------- fan-out


def test_broadcast_runs_in_every_worker_and_answers_with_the_askers_result() -> None:
    async def test(rig: Rig) -> None:
        a, b, c = [await rig.worker() for _ in range(3)]
        result = await b.channel.broadcast("load", {"name": "x", "uri": "/m/x"})
        assert result == {"worker": "w1", "op": "load"}
        for fake in (a, b, c):
            assert fake.handler.calls == [("load", {"name": "x", "uri": "/m/x"})]

    run(test)


def test_a_failure_names_each_failing_worker_and_why() -> None:
    async def test(rig: Rig) -> None:
        a, b, c = [await rig.worker() for _ in range(3)]
        b.handler.fail["load x"] = FileNotFoundError("no model.joblib in /m/x")
        c.handler.fail["load x"] = MemoryError()
        with pytest.raises(ControlError) as caught:
            await a.channel.broadcast("load", {"name": "x"})
        assert str(caught.value) == (
            "load 'x' failed in worker 1 (pid 101): FileNotFoundError: no model.joblib in /m/x;"
            " in worker 2 (pid 102): MemoryError"
        )
        assert a.handler.calls == [("load", {"name": "x"})]  # the others still ran it

    run(test)


@pytest.mark.parametrize("death", ["socket closes", "reaped"])
def test_a_worker_dying_mid_operation_does_not_hold_it(death: str) -> None:
    async def test(rig: Rig) -> None:
        a, b, c = [await rig.worker() for _ in range(3)]
        b.handler.gates["load x"] = asyncio.Event()  # never set: b is stuck in it
        asking = spawn(a.channel.broadcast("load", {"name": "x"}))
        await b.handler.reached("load x")
        if death == "socket closes":
            await b.channel.close()
        else:
            rig.hub.detach(b.pid)
        assert await asking == {"worker": "w0", "op": "load"}
        assert c.handler.calls == [("load", {"name": "x"})]
        assert "x" in rig.hub.replay_log  # the workers still alive all succeeded

    run(test)


def test_the_asker_dying_lets_the_others_finish() -> None:
    async def test(rig: Rig) -> None:
        a, b = await rig.worker(), await rig.worker()
        b.handler.gates["load x"] = asyncio.Event()
        spawn(a.channel.broadcast("load", {"name": "x"}))
        await b.handler.reached("load x")
        await a.channel.close()
        b.handler.gates["load x"].set()
        assert await b.channel.broadcast("load", {"name": "y"}) == {"worker": "w1", "op": "load"}

    run(test)


# ---------------------------------------------------------------------- ordering


def test_one_name_runs_one_operation_at_a_time_and_other_names_pass() -> None:
    async def test(rig: Rig) -> None:
        a, b = await rig.worker(), await rig.worker()
        a.handler.gates["load x"] = asyncio.Event()
        first = spawn(a.channel.broadcast("load", {"name": "x"}))
        await a.handler.reached("load x")
        second = spawn(b.channel.broadcast("unload", {"name": "x"}))
        # Sent after the unload on the same socket: once y is done, the hub has the
        # unload too, and has held it back while x's load runs.
        await b.channel.broadcast("load", {"name": "y"})
        assert "start unload x" not in a.handler.events + b.handler.events
        a.handler.gates["load x"].set()
        await first
        await second
        for fake in (a, b):
            order = [event for event in fake.handler.events if event.endswith(" x")]
            assert order == ["start load x", "end load x", "start unload x", "end unload x"]

    run(test)


def test_timeout_names_the_silent_worker_and_frees_the_name() -> None:
    async def test(rig: Rig) -> None:
        a, b = await rig.worker(), await rig.worker()
        b.handler.gates["load x"] = asyncio.Event()
        with pytest.raises(ControlError, match=r"in worker 1 \(pid 101\): no answer within 0.2 s"):
            await a.channel.broadcast("load", {"name": "x"}, timeout=0.2)
        b.handler.gates["load x"].set()  # its late answer is ignored
        assert await a.channel.broadcast("unload", {"name": "x"}, timeout=5) == {
            "worker": "w0",
            "op": "unload",
        }
        assert rig.hub.replay_log == {"x": ("unload", {"name": "x"})}

    run(test)


def test_an_operation_queued_past_its_timeout_never_runs() -> None:
    async def test(rig: Rig) -> None:
        a = await rig.worker()
        a.handler.gates["load x"] = asyncio.Event()
        first = spawn(a.channel.broadcast("load", {"name": "x"}))
        await a.handler.reached("load x")
        with pytest.raises(ControlError, match=r"did not start within 0.1 s: an earlier operation"):
            await a.channel.broadcast("unload", {"name": "x"}, timeout=0.1)
        a.handler.gates["load x"].set()
        await first
        assert [op for op, _ in a.handler.calls] == ["load"]

    run(test)


# ---------------------------------------------------------------------- replay


def test_a_new_worker_replays_the_last_success_per_name_before_anything_else() -> None:
    async def test(rig: Rig) -> None:
        a = await rig.worker()
        await a.channel.broadcast("load", {"name": "x", "uri": "/m/x"})
        await a.channel.broadcast("load", {"name": "y"})
        await a.channel.broadcast("unload", {"name": "x"})
        a.handler.fail["load z"] = OSError("disk full")
        with pytest.raises(ControlError):
            await a.channel.broadcast("load", {"name": "z"})

        late = await rig.worker(replay=False)
        pending = spawn(a.channel.broadcast("load", {"name": "w"}))
        assert await late.channel.replay() == 2
        assert late.handler.calls[:2] == [("load", {"name": "y"}), ("unload", {"name": "x"})]
        await pending  # waited for the late worker's answer too
        assert late.handler.calls[2:] == [("load", {"name": "w"})]

    run(test)


def test_a_worker_started_during_an_operation_gets_it_after_its_replay() -> None:
    async def test(rig: Rig) -> None:
        a = await rig.worker()
        await a.channel.broadcast("load", {"name": "x"})
        a.handler.gates["load y"] = asyncio.Event()
        pending = spawn(a.channel.broadcast("load", {"name": "y"}))
        await a.handler.reached("load y")
        late = await rig.worker(replay=False)
        late.handler.gates["load x"] = asyncio.Event()
        replaying = spawn(late.channel.replay())
        await late.handler.reached("load x")
        # The operation in flight came in the same write as the replay log: it waits.
        assert late.handler.events == ["start load x"]
        late.handler.gates["load y"] = asyncio.Event()
        late.handler.gates["load x"].set()
        await late.handler.reached("load y")
        assert not replaying.done()  # the worker is not ready before it has run both
        late.handler.gates["load y"].set()
        assert await replaying == 1
        assert late.handler.events == ["start load x", "end load x", "start load y", "end load y"]
        a.handler.gates["load y"].set()
        await pending

    run(test)


def test_a_replay_log_larger_than_the_socket_buffer_arrives_whole() -> None:
    async def test(rig: Rig) -> None:
        a = await rig.worker()
        padding = "p" * 8192
        names = [f"m{n}" for n in range(300)]  # 2.4 MB: the hub must wait to write it all
        await asyncio.gather(
            *(a.channel.broadcast("load", {"name": name, "pad": padding}) for name in names)
        )
        late = await rig.worker()
        assert [args["name"] for _, args in late.handler.calls] == names

    run(test)


# ---------------------------------------------------------------------- worker side


def test_a_malformed_broadcast_is_answered_with_what_is_wrong() -> None:
    async def test(rig: Rig) -> None:
        ours, theirs = socket.socketpair()
        with theirs:
            rig.hub.attach(7, ours, "worker 9 (pid 7)")
            theirs.setblocking(False)
            await rig.loop.sock_sendall(theirs, encode({"kind": "broadcast", "id": 3, "op": 1}))
            lines = LineBuffer()
            answers: list[Args] = []
            while not any(answer["kind"] == "done" for answer in answers):
                answers += lines.feed(await rig.loop.sock_recv(theirs, 65536))
        assert answers[-1] == {
            "kind": "done",
            "id": 3,
            "ok": False,
            "error": "a malformed broadcast from worker 9 (pid 7):"
            " no op name, or args not an object",
        }

    run(test)


def test_a_worker_without_a_handler_says_so() -> None:
    async def test(rig: Rig) -> None:
        a, b = await rig.worker(), await rig.worker()
        b.channel._handler = None
        with pytest.raises(ControlError, match=r"worker 1 .*no handler for control operations"):
            await a.channel.broadcast("load", {"name": "x"})

    run(test)


def test_a_result_json_cannot_carry_is_a_failure_not_a_hang() -> None:
    async def test(rig: Rig) -> None:
        a = await rig.worker()

        async def odd(op: str, args: Args) -> Args:
            return {"model": object()}

        a.channel.set_handler(odd)
        with pytest.raises(ControlError, match="TypeError"):
            await a.channel.broadcast("load", {"name": "x"})

    run(test)


def test_arguments_json_cannot_carry_are_refused_at_once() -> None:
    async def test(rig: Rig) -> None:
        a = await rig.worker()
        with pytest.raises(TypeError):
            await a.channel.broadcast("load", {"name": "x", "model": object()})

    run(test)


def test_a_gone_supervisor_fails_waiting_and_later_broadcasts() -> None:
    async def test(rig: Rig) -> None:
        a, b = await rig.worker(), await rig.worker()
        b.handler.gates["load x"] = asyncio.Event()
        pending = spawn(a.channel.broadcast("load", {"name": "x"}))
        await b.handler.reached("load x")
        rig.hub.close()
        with pytest.raises(ControlError, match="the supervisor closed the control channel"):
            await pending
        with pytest.raises(ControlError, match="cannot reach the other workers"):
            await a.channel.broadcast("unload", {"name": "x"})
        await b.channel.close()
        with pytest.raises(ControlError, match="this worker has closed its control channel"):
            await b.channel.broadcast("unload", {"name": "x"})

    run(test)


# ---------------------------------------------------------------------- no supervisor


def test_local_channel_runs_the_handler_and_wraps_its_failure() -> None:
    async def test() -> None:
        channel = LocalChannel()
        with pytest.raises(ControlError, match="no handler"):
            await channel.broadcast("load", {"name": "x"})
        handler = Recorder("local")
        channel.set_handler(handler)
        assert await channel.broadcast("load", {"name": "x"}) == {"worker": "local", "op": "load"}
        handler.fail["load y"] = ValueError("bad uri")
        with pytest.raises(ControlError, match=r"^load 'y' failed: ValueError: bad uri$") as caught:
            await channel.broadcast("load", {"name": "y"})
        assert isinstance(caught.value.__cause__, ValueError)
        handler.gates["load z"] = asyncio.Event()
        with pytest.raises(ControlError, match=r"load 'z' did not finish within 0.05 s"):
            await channel.broadcast("load", {"name": "z"}, timeout=0.05)
        assert await channel.replay() == 0

    asyncio.run(test())


# ---------------------------------------------------------------------- framing


def test_lines_split_anywhere_make_the_same_messages() -> None:
    messages = [{"kind": "op", "id": n, "args": {"text": "a\nb", "n": n}} for n in range(5)]
    stream = b"".join(encode(message) for message in messages)
    assert stream.count(b"\n") == 5  # a newline in a value is escaped
    for cut in range(1, 7):
        lines = LineBuffer()
        got = []
        for start in range(0, len(stream), cut):
            got += lines.feed(stream[start : start + cut])
        assert got == messages


def test_lines_that_are_not_objects_are_skipped_and_an_endless_one_refused() -> None:
    lines = LineBuffer(limit=64)
    assert lines.feed(b'not json\n[1, 2]\n{"kind": "ack"}\n') == [{"kind": "ack"}]
    with pytest.raises(FramingError, match="longer than 64 bytes"):
        lines.feed(b"x" * 65)
