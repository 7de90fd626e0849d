"""The asyncio adapter shared by the sans-IO cores.

:class:`DatagramEndpoint` is the whole contract of docs/architecture.md in a
few lines: it owns one UDP socket and one :class:`~netcore.driver.Driver`;
``datagram_received`` wraps the bytes in a :class:`~netcore.net.Receive`
(classified once, here) and hands it to the driver, which passes
``loop.time()`` to the core, sends what the core queued, hands its events to
a callback and keeps the single timer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Coroutine, TypeVar

from netcore.driver import Driver
from netcore.net import Address, Core, Event, Receive, Transmit

__all__ = ["DatagramBatch", "DatagramEndpoint", "DatagramSocket", "open_endpoint", "run"]

log = logging.getLogger(__name__)


class DatagramEndpoint(asyncio.DatagramProtocol):
    """Connects one sans-IO core to one datagram socket, by composition."""

    def __init__(self, core: Core, on_event: Callable[[Event], None] | None = None) -> None:
        self.core = core
        self._loop = asyncio.get_running_loop()
        self.driver = Driver(core, self._loop, self._send, on_event)
        self.transport: asyncio.DatagramTransport | None = None
        self.local: Address | None = None
        self.closed = self._loop.create_future()

    @property
    def on_event(self) -> Callable[[Event], None] | None:
        return self.driver.on_event

    @on_event.setter
    def on_event(self, callback: Callable[[Event], None] | None) -> None:
        self.driver.on_event = callback

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sockname = transport.get_extra_info("sockname")
        self.local = (sockname[0], sockname[1]) if sockname else None

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.driver.receive(Receive(data, (addr[0], addr[1]), self.local))

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable ...) surface here on connected or
        # unconnected UDP sockets; the cores' own timers handle the loss.
        log.debug("socket error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.driver.close()
        if not self.closed.done():
            self.closed.set_result(None)

    def flush(self) -> None:
        """Send what the core queued after an API call, deliver events, re-arm the timer."""
        self.driver.flush()

    def _send(self, transmit: Transmit) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.sendto(transmit.data, transmit.destination)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class DatagramSocket(asyncio.DatagramProtocol):
    """One of several sockets of a core: wraps what arrives in a :class:`Receive`
    naming this socket's address and hands it to ``deliver`` (a driver's
    ``receive``). The adapter that owns the core sends through ``transport``."""

    def __init__(self, deliver: Callable[[Receive], None]) -> None:
        self.deliver = deliver
        self.transport: asyncio.DatagramTransport | None = None
        self.local: Address = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.local = transport.get_extra_info("sockname")[:2]

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.deliver(Receive(data, (addr[0], addr[1]), self.local))

    def error_received(self, exc: Exception) -> None:
        log.debug("socket %s: %s", self.local, exc)  # the core's own timers deal with loss


class DatagramBatch:
    """Collects the datagrams the loop reads in one pass over its sockets and hands them over together.

    ``add`` is a :class:`DatagramSocket`'s ``deliver``. The first datagram
    of a batch schedules ``deliver(batch)`` with ``call_soon``, which runs
    once the loop has run the read callbacks it is in: uvloop (libuv) reads
    up to 32 datagrams from a readable socket per wake-up, asyncio's own
    loop one per socket, so the batch is everything read in that pass. What
    the receiver gains is the choice of order (``media_first``) and work
    done once per batch instead of per datagram (the driver's deadline).
    """

    __slots__ = ("_loop", "_deliver", "_pending")

    def __init__(self, loop: asyncio.AbstractEventLoop, deliver: Callable[[list[Receive]], None]) -> None:
        self._loop = loop
        self._deliver = deliver
        self._pending: list[Receive] = []

    def add(self, datagram: Receive) -> None:
        pending = self._pending
        pending.append(datagram)
        if len(pending) == 1:
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        self._deliver(batch)


async def open_endpoint(core: Core, local_addr: Address,
                        on_event: Callable[[Event], None] | None = None) -> DatagramEndpoint:
    """Bind a UDP socket on ``local_addr`` and run ``core`` on it."""
    loop = asyncio.get_running_loop()
    _, endpoint = await loop.create_datagram_endpoint(lambda: DatagramEndpoint(core, on_event),
                                                      local_addr=local_addr)
    return endpoint


T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop when it is installed (it reads several datagrams per
    wake-up, about 4x stock asyncio on a relay path), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
