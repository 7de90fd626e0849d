"""A headless Chromium page driven over the DevTools protocol (test helper).

Only what the SDP tests need: start the browser on loopback with fake media,
open one page, and evaluate JavaScript (awaiting promises) in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import pathlib
import signal
import subprocess
import tempfile
import time
import urllib.request

import websockets

from tests.browsers.protocol import request
from tests.conftest import stop_process

FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--disable-dev-shm-usage",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]


class Browser:
    def __init__(self, executable: str) -> None:
        # Chromium's helper processes may still write into the profile just
        # after the browser exits: ignore what cleanup cannot remove then.
        self._profile = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)
        self.process = subprocess.Popen(
            [
                executable,
                *FLAGS,
                f"--user-data-dir={self._profile.name}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so close() ends its helpers too
        )
        port_file = pathlib.Path(self._profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + 20
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not start")
            time.sleep(0.05)
        self.port = int(port_file.read_text().split()[0])

    def new_page(self) -> dict:
        """Open a fresh about:blank tab; its DevTools target description."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT"
        )
        # DevToolsActivePort can appear a moment before the endpoint accepts.
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(request, timeout=5) as reply:
                    return json.load(reply)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def close_page(self, target_id: str) -> None:
        url = f"http://127.0.0.1:{self.port}/json/close/{target_id}"
        with urllib.request.urlopen(url, timeout=5):
            pass

    def close(self) -> None:
        stop_process(self.process)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # helpers left behind by the browser
        self._profile.cleanup()


class Page:
    """``async with Page(browser) as page: await page.eval("1 + 1")``"""

    def __init__(self, browser: Browser) -> None:
        self._browser = browser
        self._target = browser.new_page()
        self._ids = itertools.count(1)

    async def __aenter__(self) -> Page:
        url = self._target["webSocketDebuggerUrl"]
        self._ws = await websockets.connect(url, max_size=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._ws.close()
        self._browser.close_page(self._target["id"])

    async def _command(self, method: str, params: dict) -> dict:
        reply = await request(self._ws, next(self._ids), method, params)
        if "error" in reply:
            raise RuntimeError(f"DevTools error: {reply['error']}")
        return reply["result"]

    async def navigate(self, url: str) -> None:
        """Load ``url`` and wait until its document is complete."""
        await self._command("Page.navigate", {"url": url})
        while await self.eval("location.href + ' ' + document.readyState") != (
            f"{url} complete"
        ):
            await asyncio.sleep(0.05)

    async def eval(self, expression: str) -> object:
        """Evaluate ``expression`` (awaiting a promise) and return its JSON value."""
        result = await self._command(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
        )
        if "exceptionDetails" in result:
            raise RuntimeError(json.dumps(result["exceptionDetails"])[:2000])
        return result["result"].get("value")
