"""The web client's files, served by ``netcore-signal`` on its one port.

The page (``servers/signal/web/``) is plain HTML, CSS and JavaScript modules
with no build step. Only the files found under that directory at start, with
a known type, are served: the request path is looked up in that index, never
joined onto the file system, so ``..`` and friends cannot reach anything
else. A WebSocket upgrade is never answered here (``/`` is also a client
WebSocket path of the daemon).
"""

from __future__ import annotations

from functools import lru_cache
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

__all__ = ["WEB_ROOT", "static_response"]

WEB_ROOT = Path(__file__).with_name("web")

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}

# The page loads only its own files and talks only to its own origin's WebSocket.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; connect-src 'self' ws: wss:; media-src 'self' blob: mediastream:; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


@lru_cache(maxsize=4)
def _index(root: Path) -> dict[str, Path]:
    """URL path -> file, for every servable file under ``root``."""
    files = {"/" + p.relative_to(root).as_posix(): p
             for p in root.rglob("*") if p.is_file() and p.suffix in CONTENT_TYPES}
    if "/index.html" in files:
        files["/"] = files["/index.html"]
    return files


def static_response(request: Request, root: Path = WEB_ROOT) -> Response | None:
    """The HTTP answer for a page file, or None (a WebSocket upgrade, or not a page file)."""
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return None
    path = _index(root).get(urlsplit(request.path).path)
    if path is None:
        return None
    body = path.read_bytes()  # small files, read each time so an edited page shows on reload
    headers = Headers([
        ("Content-Type", CONTENT_TYPES[path.suffix]),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-cache"),
        ("X-Content-Type-Options", "nosniff"),
        ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
        ("Connection", "close"),
    ])
    return Response(HTTPStatus.OK, HTTPStatus.OK.phrase, headers, body)
