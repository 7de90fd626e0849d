"""The operator view: the report's charts served over HTTP, rebuilt on every request.

``netcore-analytics serve --port 8090 --since 24h`` answers ``GET /`` with the
HTML report of the last ``--since`` (the page reloads itself every
``--refresh`` seconds, so it follows the workers live) and ``GET /report.json``
with its numbers.  Read-only: it opens the aggregates per request and never
writes.  Bind it to loopback or put it behind the operator's proxy: it has
no authentication of its own.
"""

from __future__ import annotations

import json
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from .report import build_report, render_html, report_json
from .store import open_store

__all__ = ["LiveView", "make_server"]


class LiveView:
    """What a request gets: the report of the span ending now."""

    def __init__(self, database: str, since: float, refresh: int, worst: int = 10,
                 clock: Callable[[], float] = time.time) -> None:
        self.database, self.since, self.refresh, self.worst, self.clock = database, since, refresh, worst, clock

    def _report(self):
        store = open_store(self.database)
        try:
            until = self.clock()
            return build_report(store, until - self.since, until, worst=self.worst)
        finally:
            store.close()

    def page(self) -> str:
        return render_html(self._report(), refresh=self.refresh)

    def numbers(self) -> str:
        return json.dumps(report_json(self._report())) + "\n"


def make_server(view: LiveView, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        server_version = "netcore-analytics"
        sys_version = ""

        def do_GET(self) -> None:  # noqa: N802 (the http.server name)
            path = self.path.split("?")[0]
            if path == "/":
                self._answer(HTTPStatus.OK, "text/html; charset=utf-8", view.page())
            elif path == "/report.json":
                self._answer(HTTPStatus.OK, "application/json", view.numbers())
            else:
                self._answer(HTTPStatus.NOT_FOUND, "text/plain", "not found\n")

        def _answer(self, status: HTTPStatus, kind: str, text: str) -> None:
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # one line per request is noise here
            pass

    return ThreadingHTTPServer((host, port), Handler)
