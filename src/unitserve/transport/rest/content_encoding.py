"""Compressed request bodies (``Content-Encoding: gzip`` or ``deflate``) on the Open
Inference Protocol's inference route, where clients such as tritonclient may compress
large JSON requests.

The decompressed size is bounded by the same --max-body-size as a plain body, checked
while decompressing: a few kilobytes of zeros can expand to gigabytes, and the limit must
hold before that memory is taken, not after.
"""

from __future__ import annotations

import zlib

from unitserve.errors import BadRequest, PayloadTooLarge, ServingError

# wbits for zlib: 32 + 15 reads a gzip or a zlib header, whichever is there; -15 reads
# a bare deflate stream (some clients send "deflate" without the zlib header).
_GZIP_OR_ZLIB = 32 + zlib.MAX_WBITS
_RAW_DEFLATE = -zlib.MAX_WBITS


class UnsupportedEncoding(ServingError):
    http_status = 415
    reason = "MICROSERVICE_BAD_DATA"


def decoded(body: bytes, encoding: bytes | None, limit: int) -> bytes:
    """`body` as sent before the client compressed it (unchanged without an encoding)."""
    if encoding is None:
        return body
    name = encoding.decode("latin-1").strip().lower()
    if name in ("", "identity"):
        return body
    if name not in ("gzip", "x-gzip", "deflate"):
        raise UnsupportedEncoding(
            f"Content-Encoding {name[:40]!r} is not supported: send gzip, deflate or none"
        )
    try:
        return _inflate(body, _GZIP_OR_ZLIB, limit, name)
    except zlib.error:
        if name != "deflate":
            raise BadRequest(f"the body is not valid {name} data") from None
    try:
        return _inflate(body, _RAW_DEFLATE, limit, name)
    except zlib.error:
        raise BadRequest("the body is not valid deflate data") from None


def _inflate(body: bytes, wbits: int, limit: int, name: str) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(body, limit + 1)
    if len(out) > limit:
        raise PayloadTooLarge(
            f"the {name} body expands to more than the limit of {limit} bytes (--max-body-size)"
        )
    if not inflater.eof:
        raise BadRequest(f"the {name} body is cut short")
    return out
