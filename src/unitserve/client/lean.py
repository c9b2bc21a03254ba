"""`LeanAsyncClient`: `AsyncClient` with its REST calls on the lean HTTP/1.1 pool.

The batch tool sends one small request per input line, where httpx's own work per
request costs several times the rest of the line's; this client sends them through the
lean pool (`unitserve.client._http1`) instead. Everything else (how calls are built,
which failures are tried again and how long to wait, the errors raised, gRPC) is
`AsyncClient`'s.
"""

from __future__ import annotations

from typing import Any

from unitserve.client._async import AsyncClient
from unitserve.client._calls import Call, rest_result
from unitserve.client._failures import no_answer, timed_out
from unitserve.client._http1 import AnswerTimeout, NoAnswer, Pool


class LeanAsyncClient(AsyncClient):
    """As `AsyncClient` (same arguments and methods); REST goes through the lean `Pool`."""

    def __init__(self, url_or_host: str = "localhost", *args: Any, **kwargs: Any) -> None:
        super().__init__(url_or_host, *args, **kwargs)
        self._pool: Pool | None = None

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        await super().close()

    async def _rest(self, call: Call) -> Any:
        if self._pool is None:
            self._pool = Pool(
                self.host,
                self.port,
                tls=self.scheme == "https",
                timeout=self.timeout,
                headers=self.headers,
            )
        try:
            resp = await self._pool.request(
                call.http, self.prefix + call.path, call.body, call.headers
            )
        except NoAnswer as exc:
            raise no_answer(call.name, exc) from None
        except AnswerTimeout as exc:
            raise timed_out(call.name) from exc
        return rest_result(call, resp)
