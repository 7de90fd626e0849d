"""The page's files on netcore-signal's port, next to the WebSocket and HTTP paths."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
from websockets.datastructures import Headers
from websockets.http11 import Request
from websockets.sync.client import connect

from servers.signal.static import WEB_ROOT, static_response


def get(url: str) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_page_and_modules_are_served_with_types_and_policy(up):
    status, headers, body = get(up.url)
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert b'<script type="module" src="/app.js">' in body
    for name in ("app.js", "signal.js", "peer.js", "stats.js", "media.js", "devices.js", "friends.js", "room.js", "ui.js", "watch.js"):
        status, headers, body = get(up.url + name)
        assert status == 200 and headers["Content-Type"] == "text/javascript; charset=utf-8", name
        assert body == (WEB_ROOT / name).read_bytes()
    assert get(up.url + "style.css")[1]["Content-Type"] == "text/css; charset=utf-8"


@pytest.mark.parametrize("path", ["nope.js", "../static.py", "%2e%2e/server.py", "..%2fserver.py",
                                  "static.py", "index.html/..", "web/index.html"])
def test_anything_else_is_not_found(up, path):
    assert get(up.url + path)[0] == 404


def test_websocket_paths_and_health_still_answer(up):
    assert get(up.url + "health")[0] == 200
    for path in ("v1/ws", ""):  # "/" is a client WebSocket path too: an upgrade is never a page
        with connect(up.url.replace("http://", "ws://") + path) as ws:
            ws.send('{"v":1,"type":"ping","id":"p1","payload":{}}')
            assert '"pong":true' in ws.recv(timeout=5)


def request(path: str, upgrade: bool = False) -> Request:
    headers = Headers([("Host", "localhost")])
    if upgrade:
        headers["Upgrade"] = "websocket"
    return Request(path, headers)


def test_only_files_under_the_root_with_a_known_type(tmp_path: Path):
    root = tmp_path / "web"
    (root / "js").mkdir(parents=True)
    (root / "index.html").write_text("<p>hi</p>")
    (root / "js" / "a.js").write_text("export const a = 1;")
    (root / "notes.txt").write_text("secret")
    (tmp_path / "outside.js").write_text("no")
    assert static_response(request("/"), root).body == b"<p>hi</p>"
    assert static_response(request("/js/a.js?x=1"), root).headers["Content-Type"].startswith("text/javascript")
    for path in ("/notes.txt", "/../outside.js", "/js/../../outside.js", "//outside.js", "/js"):
        assert static_response(request(path), root) is None, path
    assert static_response(request("/", upgrade=True), root) is None
