"""`unitserve serve` whose workers take part in control operations, for the control
channel's end-to-end test (the registry's handler replaced by one that only logs).

Each worker logs every operation its handler runs; SIGUSR1 makes a worker broadcast
``load 'x'`` and log the answer. Usage: ``python control_launcher.py serve MODEL ...``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Any

from unitserve.cli.main import main
from unitserve.engine import MetricsRecorder
from unitserve.runtime import supervisor
from unitserve.runtime.worker import Worker

log = logging.getLogger("unitserve")


class ControlWorker(Worker):
    def _add_models(self, recorder: MetricsRecorder) -> None:
        # Before the replay, which runs once load() is done; in place of the registry's
        # own handler, which the registry set when it was made.
        super()._add_models(recorder)
        self.control.set_handler(self._handle)
        self._asking: set[asyncio.Task[None]] = set()
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, self._ask)

    async def _handle(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        log.info("worker %d (pid %d) ran %s %s", self.slot, os.getpid(), op, args["name"])
        return {"pid": os.getpid()}

    def _ask(self) -> None:
        task = asyncio.create_task(self._broadcast())
        self._asking.add(task)
        task.add_done_callback(self._asking.discard)

    async def _broadcast(self) -> None:
        result = await self.control.broadcast("load", {"name": "x"}, timeout=30)
        log.info("worker %d: the broadcast was answered with %s", self.slot, result)


if __name__ == "__main__":
    supervisor.Worker = ControlWorker  # type: ignore[misc]
    sys.exit(main(sys.argv[1:]))
