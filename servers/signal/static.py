"""The web client's files, served by ``netcore-signal`` on its one port.

The page (``servers/signal/web/``) is plain HTML, CSS and JavaScript modules
with no build step. Only the files found under that directory at start, with
a known type, are served: the request path is looked up in that index, never
joined onto the file system, so ``..`` and friends cannot reach anything
else. A WebSocket upgrade is never answered here (``/`` is also a client
WebSocket path of the daemon).

Only GET and HEAD are served (HEAD with the headers of GET and no body,
RFC 9110 section 9.3.2); any other method gets 405 with ``Allow``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

__all__ = ["WEB_ROOT", "allowed_methods", "content_security_policy", "method_not_allowed", "static_response"]

WEB_ROOT = Path(__file__).with_name("web")

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}

# The page loads only its own files and talks only to its own origin's WebSocket
# (named as ws:// and wss:// explicitly: browsers before CSP Level 3 do not let
# 'self' match WebSocket schemes).  Its forms are handled by script, never posted.
_POLICY = (
    "default-src 'self'; connect-src {connect}; media-src 'self' blob: mediastream:; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$")
READ_METHODS = ("GET", "HEAD")


def content_security_policy(host: str | None) -> str:
    """The policy for a page served to ``Host: host`` (a host that is not plainly one gives 'self' only)."""
    connect = "'self'"
    if host and _HOST.match(host):
        connect += f" ws://{host} wss://{host}"
    return _POLICY.format(connect=connect)


def allowed_methods(request: Request) -> tuple[str, ...]:
    """GET and HEAD for everything served over plain HTTP (a WebSocket upgrade is a GET)."""
    return READ_METHODS


def method_not_allowed(request: Request) -> Response:
    body = b"method not allowed\n"
    headers = Headers([
        ("Allow", ", ".join(allowed_methods(request))),
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
    ])
    status = HTTPStatus.METHOD_NOT_ALLOWED
    return Response(status.value, status.phrase, headers, body)


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
        ("Content-Security-Policy", content_security_policy(request.headers.get("Host"))),
        ("Connection", "close"),
    ])
    if request.method == "HEAD":
        body = b""  # the headers of GET, Content-Length included, and no body
    return Response(HTTPStatus.OK, HTTPStatus.OK.phrase, headers, body)
