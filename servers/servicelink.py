"""A service link's client side: a WebSocket to netcore-signal's ``/v1/service``, kept up.

The recording worker holds one (``?role=recorder``, docs/signaling.md):
bearer secret in ``Authorization``, reconnect with back-off from
``RECONNECT_DELAY[0]`` doubling to ``RECONNECT_DELAY[1]`` seconds, one JSON
log line when it comes up and when it drops. (The call server's link does
more on each connection, its name and load reports, and has its own loop.)
"""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import Any, Callable

__all__ = ["bearer_authorized", "RECONNECT_DELAY", "keep_linked", "send_message"]

RECONNECT_DELAY = (0.2, 5.0)  # seconds: first and largest wait before reconnecting


async def keep_linked(url: str, secret: str | None, on_link: Callable[[Any], None],
                      on_message: Callable[[str | bytes], None], log: Callable[..., None],
                      running: Callable[[], bool] = lambda: True) -> None:
    """Connect to ``url`` while ``running()``; ``on_link(ws)`` when up and ``on_link(None)`` when down,
    ``on_message`` for each message. Runs until cancelled."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import WebSocketException

    delay = RECONNECT_DELAY[0]
    headers = {"Authorization": f"Bearer {secret}"}
    while running():
        try:
            async with connect(url, additional_headers=headers, max_size=2**20) as ws:
                on_link(ws)
                delay = RECONNECT_DELAY[0]
                log("service.linked", signal=url)
                async for text in ws:
                    on_message(text)
        except (OSError, WebSocketException, asyncio.TimeoutError) as exc:
            log("service.unlinked", reason=str(exc) or type(exc).__name__)
        finally:
            on_link(None)
        await asyncio.sleep(delay)
        delay = min(delay * 2, RECONNECT_DELAY[1])


def send_message(link: Any, kind: str, payload: dict) -> None:
    """Send ``{"v": 1, "type": kind, "payload": payload}`` on ``link`` in the background (None: not
    linked, dropped); a link that dropped meanwhile is left to its reconnecting (or closing) loop."""
    if link is not None:
        asyncio.ensure_future(_send_text(link, json.dumps({"v": 1, "type": kind, "payload": payload})))


async def _send_text(link: Any, text: str) -> None:
    try:
        await link.send(text)
    except Exception:  # the link dropped: whoever holds it notices and reconnects or forgets it
        pass


def bearer_authorized(ws: Any, secret: str | None) -> bool:
    """A WebSocket server connection's ``Authorization: Bearer`` is ``secret`` (compared in constant time);
    no secret: anyone."""
    if not secret:
        return True
    given = ws.request.headers.get("Authorization", "") if ws.request is not None else ""
    return hmac.compare_digest(given.encode(), f"Bearer {secret}".encode())
