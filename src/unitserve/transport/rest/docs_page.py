"""``GET /docs``: an interactive page (Swagger UI) over the served OpenAPI document.

The page and its assets come from the installed package (``docs_assets/``), never
from another host, so the page works where the server cannot reach the internet.
Only the files listed here are served, read once on first use. ``--no-docs`` turns
the page off (its paths then answer 404 like any unknown path).
"""

from __future__ import annotations

from importlib import resources

PREFIX = "/docs"

_ASSETS = {
    "swagger-ui-bundle.js": b"application/javascript; charset=utf-8",
    "swagger-ui.css": b"text/css; charset=utf-8",
    "favicon-32x32.png": b"image/png",
    "LICENSE": b"text/plain; charset=utf-8",
    "NOTICE": b"text/plain; charset=utf-8",
    "swagger-ui-bundle.js.LICENSE.txt": b"text/plain; charset=utf-8",
}

# Relative asset paths: the page also works behind a proxy that serves it under a
# prefix. The document's own URL is made relative to the page for the same reason.
_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - API</title>
<link rel="icon" type="image/png" href="docs/favicon-32x32.png">
<link rel="stylesheet" href="docs/swagger-ui.css">
<style>body {{ margin: 0; }}</style>
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: new URL("seldon.json", window.location.href).href,
  dom_id: "#swagger-ui",
  deepLinking: true,
  tryItOutEnabled: false,
  validatorUrl: null
}});
</script>
</body>
</html>
"""

HTML_TYPE = b"text/html; charset=utf-8"
#: ``/docs/`` is sent to ``/docs`` (the page's relative links are relative to the
#: latter). Relative, so that it also holds behind a proxy serving under a prefix.
REDIRECT_PATH = PREFIX + "/"
REDIRECT_LOCATION = b"../docs"


class DocsPage:
    """The page's answers: (content type, body) for a path under /docs, or None."""

    def __init__(self, title: str) -> None:
        self.page = _PAGE.format(title=_escape(title)).encode()
        self._cache: dict[str, bytes] = {}

    def find(self, path: str) -> tuple[bytes, bytes] | None:
        if path == PREFIX:  # not "/docs/" (redirected): its relative links are relative to it
            return HTML_TYPE, self.page
        name = path[len(PREFIX) + 1 :] if path.startswith(PREFIX + "/") else None
        if name is None or name not in _ASSETS:
            return None
        body = self._cache.get(name)
        if body is None:
            body = (resources.files(__package__) / "docs_assets" / name).read_bytes()
            self._cache[name] = body
        return _ASSETS[name], body


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
