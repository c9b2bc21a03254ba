"""A minimal HTTP/1.1 server: uvloop + httptools, one asyncio.Protocol, no framework.

--mode fixed  parse the request (request line, headers, body) and answer a fixed small body
--mode codec  the Seldon JSON round trip an identity model needs and nothing else:
              orjson.loads -> numpy array (`ndarray` or `tensor`) -> orjson.dumps(numpy)
--mode seldon-sklearn | v2-sklearn | v2-xgboost  (with --model FILE)
              that round trip around the library's call on a prepackaged server's model
              (see library_replies.py): the least any Python server must do for it
Keep-alive as the client asks; any path and method are accepted.
"""

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import httptools
import numpy as np
import orjson
import uvloop

from ceilings.library_replies import MAKERS

FIXED = b'{"data":{"names":[],"ndarray":[[1.0]]},"meta":{}}'
OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def fixed_reply(body: bytes) -> bytes:
    return FIXED


def codec_reply(body: bytes) -> bytes:
    data = orjson.loads(body)["data"]
    if "tensor" in data:
        tensor = data["tensor"]
        array = np.asarray(tensor["values"], dtype=np.float64).reshape(tensor["shape"])
        out: dict[str, Any] = {"tensor": {"shape": list(array.shape), "values": array.ravel()}}
    else:
        array = np.asarray(data["ndarray"], dtype=np.float64)
        out = {"ndarray": array}
    return orjson.dumps({"data": {"names": [], **out}, "meta": {}}, option=OPTIONS)


class HttpProtocol(asyncio.Protocol):
    def __init__(self, reply: Callable[[bytes], bytes]) -> None:
        self.reply = reply
        self.parser = httptools.HttpRequestParser(self)
        self.chunks: list[bytes] = []
        self.transport: asyncio.Transport  # set by connection_made, before any data

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a TCP server's transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            self.transport.close()

    def on_message_begin(self) -> None:
        self.chunks = []

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        try:
            status, reply = b"200 OK", self.reply(b"".join(self.chunks))
        except Exception as exc:  # a ceiling answers 500, it does not crash
            status, reply = b"500 Internal Server Error", str(exc).encode()
        keep_alive = self.parser.should_keep_alive()
        head = b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n" % (
            status,
            len(reply),
            b"" if keep_alive else b"connection: close\r\n",
        )
        self.transport.writelines((head, reply))
        if not keep_alive:
            self.transport.close()


async def serve(port: int, reply: Callable[[bytes], bytes]) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: HttpProtocol(reply), "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("fixed", "codec", *MAKERS), default="codec")
    parser.add_argument("--model", type=Path, help="the model file of the library modes")
    args = parser.parse_args()
    reply: Callable[[bytes], bytes]
    if args.mode in MAKERS:
        if args.model is None:
            parser.error(f"--mode {args.mode} needs --model")
        reply = MAKERS[args.mode](args.model)
    else:
        reply = codec_reply if args.mode == "codec" else fixed_reply
    uvloop.run(serve(args.port, reply))


if __name__ == "__main__":
    main()
