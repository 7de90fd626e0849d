"""A headless Firefox ESR page driven over WebDriver BiDi (test helper).

Firefox speaks WebDriver BiDi itself on ``--remote-debugging-port``, so no
geckodriver is needed.  A fresh profile's ``user.js`` gives it fake media
devices without a permission prompt and ICE candidates on loopback (the only
interface a test machine may have).
"""

from __future__ import annotations

import itertools
import json

import websockets

from tests.browsers.firefox import start_firefox
from tests.browsers.protocol import request
from tests.conftest import stop_process

PREFS = {
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    "media.navigator.permission.fake": True,
    "media.peerconnection.ice.loopback": True,
    # Keep a test browser quiet: no updates, telemetry or studies.
    "app.update.enabled": False,
    "app.normandy.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.enabled": False,
    "browser.shell.checkDefaultBrowser": False,
}


class Firefox:
    """``Firefox(path)`` starts it; ``async with firefox.page() as page``."""

    def __init__(self, executable: str) -> None:
        self.process, self._profile, self.port = start_firefox(executable, PREFS)

    def page(self) -> FirefoxPage:
        return FirefoxPage(self.port)

    def close(self) -> None:
        stop_process(self.process)
        self._profile.cleanup()


class FirefoxPage:
    """One BiDi session and its top-level browsing context."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._ids = itertools.count(1)

    async def __aenter__(self) -> FirefoxPage:
        self._ws = await websockets.connect(
            f"ws://127.0.0.1:{self._port}/session", max_size=None
        )
        await self._command("session.new", {"capabilities": {}})
        tree = await self._command("browsingContext.getTree", {})
        self._context = tree["contexts"][0]["context"]
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._command("session.end", {})
        finally:
            await self._ws.close()

    async def _command(self, method: str, params: dict) -> dict:
        reply = await request(self._ws, next(self._ids), method, params)
        if reply.get("type") == "error":
            raise RuntimeError(
                f"BiDi {method}: {reply.get('error')}: {reply.get('message')}"
            )
        return reply["result"]

    async def navigate(self, url: str) -> None:
        await self._command(
            "browsingContext.navigate",
            {"context": self._context, "url": url, "wait": "complete"},
        )

    async def eval(self, expression: str) -> object:
        """Evaluate ``expression`` (awaiting a promise); its value through JSON."""
        result = await self._command(
            "script.evaluate",
            {
                "expression": f"Promise.resolve({expression}).then(v => JSON.stringify(v))",
                "target": {"context": self._context},
                "awaitPromise": True,
                "resultOwnership": "none",
            },
        )
        if result.get("type") == "exception":
            details = result.get("exceptionDetails", {})
            raise RuntimeError(json.dumps(details)[:2000])
        value = result["result"]
        if value.get("type") != "string":
            return None
        return json.loads(value["value"])
