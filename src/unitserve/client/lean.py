"""`LeanAsyncClient`: `AsyncClient` with its REST calls on the lean HTTP/1.1 pool.

The batch tool sends one small request per input line, where httpx's own work per
request costs several times the rest of the line's; this client sends them through
`unitserve.client.http1` instead. Everything else (how calls are built, which failures
are tried again and how long to wait, the errors raised, gRPC) is `AsyncClient`'s.
"""

from __future__ import annotations

from typing import Any

from unitserve.client import AsyncClient, _Call, _no_answer, _rest_result, _timed_out
from unitserve.client.http1 import AnswerTimeout, NoAnswer, Pool


class LeanAsyncClient(AsyncClient):
    """As `AsyncClient` (same arguments and methods); REST goes through `http1.Pool`."""

    def __init__(self, url_or_host: str = "localhost", *args: Any, **kwargs: Any) -> None:
        super().__init__(url_or_host, *args, **kwargs)
        self._pool: Pool | None = None

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        await super().close()

    async def _rest(self, call: _Call) -> Any:
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
            raise _no_answer(call, exc) from None
        except AnswerTimeout as exc:
            raise _timed_out(call) from exc
        return _rest_result(call, resp)
