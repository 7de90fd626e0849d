"""The asyncio adapter shared by the sans-IO cores.

:class:`CoreProtocol` is the whole contract of docs/architecture.md in a few
lines: ``datagram_received`` hands the bytes and ``loop.time()`` to the core,
then :meth:`CoreProtocol.flush` sends what the core queued, hands its events
to a callback and re-arms the single timer at the core's next deadline.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Protocol

__all__ = ["SansIOCore", "CoreProtocol"]

log = logging.getLogger(__name__)


class SansIOCore(Protocol):
    def handle_datagram(self, data: bytes, addr: Any, now: float) -> Any: ...
    def handle_timeout(self, now: float) -> None: ...
    def poll_transmit(self) -> tuple[bytes, Any] | None: ...
    def poll_event(self) -> Any: ...
    def next_deadline(self) -> float | None: ...


class CoreProtocol(asyncio.DatagramProtocol):
    """Connects one sans-IO core to one datagram socket."""

    def __init__(self, core: SansIOCore, on_event: Callable[[Any], None] | None = None) -> None:
        self.core = core
        self.on_event = on_event
        self.transport: asyncio.DatagramTransport | None = None
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.closed = self._loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.core.handle_datagram(data, addr, self._loop.time())
        self.flush()

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable ...) surface here on connected or
        # unconnected UDP sockets; the cores' own timers handle the loss.
        log.debug("socket error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if not self.closed.done():
            self.closed.set_result(None)

    def flush(self) -> None:
        """Send what the core queued, deliver its events, re-arm the timer."""
        core = self.core
        transport = self.transport
        while (item := core.poll_transmit()) is not None:
            if transport is not None and not transport.is_closing():
                transport.sendto(item[0], item[1])
        while (event := core.poll_event()) is not None:
            if self.on_event is not None:
                self.on_event(event)
        self._arm(core.next_deadline())

    def _arm(self, deadline: float | None) -> None:
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = None
        self.core.handle_timeout(self._loop.time())
        self.flush()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
