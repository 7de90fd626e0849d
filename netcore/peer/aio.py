"""The asyncio adapter of :class:`~netcore.peer.transport.MediaTransport`: sockets and one timer.

One UDP socket per host address the caller names, each registered with the
transport's ICE agent as a host candidate base; every datagram becomes a
:class:`~netcore.net.Receive` whose ``destination`` is that socket's
address, handed to one :class:`~netcore.driver.Driver` that runs the
transport at ``loop.time()``; the driver's send function picks the socket
named by ``Transmit.source`` (as :class:`netcore.ice.aio.IceConnection`
does). Every event goes to ``on_event``; :meth:`TransportConnection.connected`
waits for :class:`~netcore.peer.events.TransportConnected`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from netcore.aio import DatagramSocket
from netcore.driver import Driver
from netcore.net import Address, Event, Transmit
from netcore.peer.events import TransportClosed, TransportConnected, TransportEvent, TransportFailed
from netcore.peer.transport import MediaTransport
from netcore.rtp.packet import RtpPacket

__all__ = ["TransportConnection"]

log = logging.getLogger(__name__)


class TransportConnection:
    """A :class:`MediaTransport` behind real UDP sockets, run by one :class:`Driver`."""

    def __init__(self, transport: MediaTransport, *,
                 on_event: Callable[[TransportEvent], None] | None = None) -> None:
        self.transport = transport
        self.on_event = on_event
        self._loop = asyncio.get_running_loop()
        self.driver = Driver(transport, self._loop, self._send, self._event)
        self._sockets: dict[Address, DatagramSocket] = {}
        self._connected: asyncio.Future[None] = self._loop.create_future()

    @property
    def addresses(self) -> list[Address]:
        return list(self._sockets)

    async def bind(self, hosts: list[str], port: int = 0) -> None:
        """Open one UDP socket per host address and register it with the ICE agent."""
        for host in hosts:
            _, protocol = await self._loop.create_datagram_endpoint(lambda: DatagramSocket(self.driver.receive), local_addr=(host, port))
            self._sockets[protocol.local] = protocol
            self.transport.ice.add_local_address(protocol.local)

    def start(self) -> None:
        """Gather and start ICE (candidates come as events to ``on_event``)."""
        self.call(self.transport.start)

    def call(self, method: Callable[..., Any], *args: Any) -> Any:
        """Run a transport method that takes ``now`` last (``add_remote_candidate`` ...), then flush."""
        result = method(*args, self._loop.time())
        self.driver.flush()
        return result

    def send_rtp(self, packet: RtpPacket) -> bool:
        return self.call(self.transport.send_rtp, packet)

    async def connected(self, timeout: float = 10.0) -> None:
        """Wait for ICE, DTLS and SRTP (:class:`TransportConnected`); raises on :class:`TransportFailed`."""
        self.driver.flush()
        await asyncio.wait_for(asyncio.shield(self._connected), timeout)

    def _send(self, transmit: Transmit) -> None:
        sock = self._sockets.get(transmit.source)  # type: ignore[arg-type]
        if sock is not None and sock.transport is not None and not sock.transport.is_closing():
            sock.transport.sendto(transmit.data, transmit.destination)

    def _event(self, event: Event) -> None:
        if not self._connected.done():
            if isinstance(event, TransportConnected):
                self._connected.set_result(None)
            elif isinstance(event, (TransportFailed, TransportClosed)):
                self._connected.set_exception(ConnectionError(getattr(event, "reason", "failed")))
        if self.on_event is not None:
            self.on_event(event)  # type: ignore[arg-type]

    def close(self) -> None:
        """BYE and close_notify out, then the timer and the sockets."""
        self.call(self.transport.close)
        self.driver.close()
        for sock in self._sockets.values():
            if sock.transport is not None:
                sock.transport.close()
        if not self._connected.done():
            self._connected.cancel()
