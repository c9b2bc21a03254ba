"""``Access-Control-*`` headers for every REST answer."""

from __future__ import annotations

_CORS_METHODS = b"DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"


class Cors:
    """Seldon's flask-cors defaults (any origin) unless `--cors-origins` restricts them."""

    def __init__(self, origins: str) -> None:
        items = [o.strip() for o in origins.split(",") if o.strip()]
        self.any = items == ["*"]
        self.allowed = frozenset(items)

    def headers(self, origin: bytes | None) -> list[tuple[bytes, bytes]]:
        """For every answer: the request's Origin echoed when allowed, ``*`` when the
        request has none and any origin is allowed."""
        if origin is None:
            return [(b"access-control-allow-origin", b"*")] if self.any else []
        if self.any or origin.decode("latin-1") in self.allowed:
            return [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]
        return []

    def preflight(
        self, origin: bytes | None, requested_headers: bytes | None
    ) -> list[tuple[bytes, bytes]]:
        """A preflight answer: the methods, and the headers the browser asked to send
        (echoed, as flask-cors does: a JSON POST needs ``Content-Type``)."""
        allowed = self.headers(origin)
        if origin is None or not allowed:
            return allowed
        out = [*allowed, (b"access-control-allow-methods", _CORS_METHODS)]
        if requested_headers:
            out.append((b"access-control-allow-headers", requested_headers))
        return out
