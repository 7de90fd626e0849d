"""The asyncio adapter of the ICE agent: sockets and one timer, nothing else.

One :class:`~netcore.aio.DatagramSocket` per local socket wraps every
datagram in a :class:`~netcore.net.Receive` whose ``destination`` is the
socket's own address and hands it to one :class:`~netcore.driver.Driver`,
which runs the agent at ``loop.time()`` and keeps its single timer. The
driver's send function picks the socket (or TURN stream) by the
``Transmit.source`` the agent names. Application data
(:class:`~netcore.ice.events.DataReceived`) goes to ``on_data(payload, pair)``
when given, every other event to ``on_event``. :meth:`IceConnection.send`
sends on the agent's current sending pair.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from typing import Any, Callable

import ifaddr

from netcore.aio import DatagramSocket
from netcore.driver import Driver
from netcore.ice.agent import Agent, CandidatePair, TurnServerConfig
from netcore.ice.events import ComponentFailed, DataReceived, GatheringCompleted, IceEvent, PathSelected
from netcore.net import Address, Event, Receive, Transmit
from netcore.turn.wire import StreamFramer, TurnParseError

__all__ = ["IceConnection", "host_addresses"]

log = logging.getLogger(__name__)


def host_addresses(loopback: bool = False, ipv6: bool = True) -> list[str]:
    """The machine's interface addresses (loopback only when asked; IPv6 link-local skipped)."""
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                if loopback or not ip.ip.startswith("127."):
                    found.append(ip.ip)
            elif ipv6 and ip.ip[2] == 0 and (loopback or ip.ip[0] != "::1") and not ip.ip[0].startswith("fe80"):
                found.append(ip.ip[0])
    return found


class _TurnStream(asyncio.Protocol):
    """A TCP or TLS connection to a TURN server: frames in, bytes out (RFC 8656 section 3.1)."""

    def __init__(self, connection: IceConnection, server: Address) -> None:
        self.connection = connection
        self.server = server
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.local: Address = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.local = transport.get_extra_info("sockname")[:2]

    def data_received(self, data: bytes) -> None:
        try:
            for frame in self.framer.feed(data):
                self.connection._received(frame, self.server, self.local)
        except TurnParseError as exc:
            log.debug("TURN stream to %s broken: %s", self.server, exc)
            if self.transport is not None:
                self.transport.close()  # the stream cannot be resynchronised


class IceConnection:
    """An :class:`Agent` behind real UDP sockets (and TCP/TLS streams to TURN servers),
    run by one :class:`~netcore.driver.Driver`."""

    def __init__(self, agent: Agent, *, on_data: Callable[[bytes, CandidatePair | None], None] | None = None,
                 on_event: Callable[[IceEvent], None] | None = None,
                 ssl: ssl_module.SSLContext | None = None) -> None:
        self.agent = agent
        self.on_data = on_data
        self.on_event = on_event
        self._loop = asyncio.get_running_loop()
        self.driver = Driver(agent, self._loop, self._send, self._event)
        self.ssl = ssl  # for TURN servers reached over TLS
        self._sockets: dict[Address, DatagramSocket] = {}
        self._streams: dict[Address, _TurnStream] = {}
        self._gathered = self._loop.create_future()
        self._connected = self._loop.create_future()

    async def bind(self, hosts: list[str] | None = None, component: int = 1, port: int = 0,
                   loopback: bool = False) -> None:
        """Open one UDP socket per host address (default: every interface's, see
        :func:`host_addresses`) and register it with the agent."""
        for host in hosts if hosts is not None else host_addresses(loopback):
            _, protocol = await self._loop.create_datagram_endpoint(
                lambda: DatagramSocket(self.driver.receive), local_addr=(host, port))
            self._sockets[protocol.local] = protocol
            self.agent.add_local_address(protocol.local, component)

    async def gather(self, timeout: float = 10.0) -> None:
        """Gather and wait for GatheringCompleted (candidates also reach ``on_event`` as they come)."""
        await self.start_gathering()
        await asyncio.wait_for(asyncio.shield(self._gathered), timeout)

    async def start_gathering(self, component: int = 1) -> None:
        """Open the TCP/TLS connections to TURN servers, then gather without waiting (trickle ICE)."""
        for server in self.agent.turn_servers:
            if server.transport in ("tcp", "tls"):
                await self._open_stream(server, component)
        self.agent.gather(self._loop.time())
        self.flush()

    async def _open_stream(self, server: TurnServerConfig, component: int) -> None:
        if server.transport == "tls":
            context = self.ssl or ssl_module.create_default_context()
        else:
            context = None
        _, stream = await self._loop.create_connection(
            lambda: _TurnStream(self, server.address), server.address[0], server.address[1], ssl=context)
        self._streams[stream.local] = stream
        self.agent.add_turn_stream(stream.local, server, component)

    async def connect(self, timeout: float = 30.0) -> CandidatePair:
        """Wait until every component has a sending pair; the one of component 1 is returned."""
        self.flush()
        await asyncio.wait_for(asyncio.shield(self._connected), timeout)
        pair = self.agent.sending_pair(1)
        assert pair is not None
        return pair

    def call(self, method: Callable[..., Any], *args: Any) -> Any:
        """Run an agent method that takes ``now`` last, then flush."""
        result = method(*args, self._loop.time())
        self.flush()
        return result

    def send(self, data: bytes, component: int = 1) -> bool:
        sent = self.agent.send(data, self._loop.time(), component)
        self.flush()
        return sent

    def _received(self, data: bytes, addr: Any, local: Address) -> None:
        self.driver.receive(Receive(data, (addr[0], addr[1]), local))

    def flush(self) -> None:
        """Send what the agent queued after an API call, deliver its events, re-arm the timer."""
        self.driver.flush()

    def _send(self, transmit: Transmit) -> None:
        local = transmit.source
        sock = self._sockets.get(local)  # type: ignore[arg-type]
        if sock is not None:
            if sock.transport is not None and not sock.transport.is_closing():
                sock.transport.sendto(transmit.data, transmit.destination)
            return
        stream = self._streams.get(local)  # type: ignore[arg-type]
        if stream is not None and stream.transport is not None and not stream.transport.is_closing():
            stream.transport.write(transmit.data)

    def _event(self, event: Event) -> None:
        if isinstance(event, DataReceived):
            if self.on_data is not None:
                self.on_data(event.data, event.pair)
                return
        elif isinstance(event, GatheringCompleted) and not self._gathered.done():
            self._gathered.set_result(None)
        elif isinstance(event, PathSelected) and self.agent.connected and not self._connected.done():
            self._connected.set_result(None)
        elif isinstance(event, ComponentFailed) and not self._connected.done():
            self._connected.set_exception(ConnectionError(f"ICE failed for component {event.component}"))
        if self.on_event is not None:
            self.on_event(event)  # type: ignore[arg-type]

    def close(self) -> None:
        self.driver.close()
        for endpoint in [*self._sockets.values(), *self._streams.values()]:
            if endpoint.transport is not None:
                endpoint.transport.close()
        for future in (self._gathered, self._connected):
            if not future.done():
                future.cancel()
