"""One request over a browser's JSON protocol socket (DevTools or WebDriver BiDi)."""

from __future__ import annotations

import json
from typing import Any


async def request(ws: Any, ident: int, method: str, params: dict) -> dict:
    """Send command ``ident`` and return its reply, passing over the events that come first."""
    await ws.send(json.dumps({"id": ident, "method": method, "params": params}))
    while True:
        reply = json.loads(await ws.recv())
        if reply.get("id") == ident:
            return reply
