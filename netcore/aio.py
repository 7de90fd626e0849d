"""The asyncio adapter shared by the sans-IO cores.

:class:`DatagramEndpoint` is the whole contract of docs/architecture.md in a
few lines: it owns one UDP socket and one :class:`~netcore.driver.Driver`;
``datagram_received`` wraps the bytes in a :class:`~netcore.net.Receive`
(classified once, here) and hands it to the driver, which passes
``loop.time()`` to the core, sends what the core queued, hands its events to
a callback and keeps the single timer.

:func:`open_udp_socket` and :func:`open_stream_socket` are how every daemon
binds: IPv6 sockets IPv6 only (so ``0.0.0.0:P`` and ``[::]:P`` both bind),
UDP ones with a few MiB of kernel buffer each way.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any, Callable, Coroutine, TypeVar

from netcore.driver import Driver
from netcore.net import Address, Core, Event, Receive, Transmit

__all__ = ["DatagramBatch", "DatagramEndpoint", "DatagramSocket", "SOCKET_BUFFER", "open_endpoint",
           "open_stream_socket", "open_udp_socket", "run", "set_receive_buffer"]

log = logging.getLogger(__name__)

SOCKET_BUFFER = 4 * 1024 * 1024  # bytes of a UDP socket's kernel buffer each way

# Each way, the FORCE variant (None where the socket module does not name it) and the plain option.
# Looked up once: a getattr that misses raises and catches an AttributeError, and ran for every relay socket.
_BUFFER_OPTIONS = ((getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF),
                   (getattr(socket, "SO_SNDBUFFORCE", None), socket.SO_SNDBUF))


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


# -- sockets ---------------------------------------------------------------------------


def open_udp_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A non-blocking UDP socket bound to ``(host, port)`` with large kernel buffers."""
    return _bound_socket(host, port, socket.SOCK_DGRAM, reuse_port)


def open_stream_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket on ``(host, port)``."""
    return _bound_socket(host, port, socket.SOCK_STREAM, reuse_port)


def set_receive_buffer(sock: socket.socket, size: int) -> None:
    """Set SO_RCVBUF to ``size`` (a spare relay's few KiB, and back), as the large buffers are set."""
    _buffer(sock, _BUFFER_OPTIONS[0], size)


def _bound_socket(host: str, port: int, kind: int, reuse_port: bool) -> socket.socket:
    """A non-blocking socket of ``kind`` bound to ``(host, port)``; IPv6 sockets are IPv6 only."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        else:
            _large_buffers(sock)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(1024)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _large_buffers(sock: socket.socket) -> None:
    """:data:`SOCKET_BUFFER` each way, so that a stall of the process loses nothing.

    SO_RCVBUF is capped by net.core.rmem_max (often 208 KiB); as root the
    FORCE variants lift the cap.
    """
    for options in _BUFFER_OPTIONS:
        _buffer(sock, options, SOCKET_BUFFER)


def _buffer(sock: socket.socket, options: tuple[int | None, int], size: int) -> None:
    """One buffer option: its FORCE variant if the socket module names it and we may, else the plain one."""
    for option in options:
        if option is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, size)
            return
        except OSError:
            continue
