"""asyncio adapter for the TURN client: a datagram endpoint on the relayed address.

    endpoint = await open_turn_endpoint(("turn.example", 3478), "user", "pass")
    endpoint.relayed_address          # what peers send to
    endpoint.sendto(b"hi", peer)      # Send indication, or ChannelData once bound
    data, peer = await endpoint.recvfrom()
    await endpoint.close()

UDP, TCP and TLS (pass ``ssl``) to the server; the relay itself is UDP.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections import deque
from typing import Any, Callable

from netcore.driver import Driver
from netcore.errors import NetcoreError
from netcore.net import Address, Receive, Transmit, Transport
from netcore.turn.client import (
    AllocationClosed,
    AllocationCreated,
    AllocationFailed,
    AllocationLost,
    ChannelBindFailed,
    ChannelBound,
    DataReceived,
    PermissionCreated,
    PermissionFailed,
    TurnClient,
    TurnClientEvent,
    TurnClientState,
)
from netcore.turn.errors import TurnParseError
from netcore.turn.wire import StreamFramer

__all__ = ["TurnEndpoint", "open_turn_endpoint", "TurnError"]


class TurnError(NetcoreError):
    """An allocation, permission or channel request was refused or timed out."""


class TurnEndpoint(asyncio.DatagramProtocol, asyncio.Protocol):
    """Runs one :class:`TurnClient` over UDP, TCP or TLS to the server, through a :class:`Driver`."""

    def __init__(self, client: TurnClient, *, queue_size: int = 1024,
                 on_datagram: Callable[[bytes, Address], None] | None = None) -> None:
        self.client = client
        self.on_datagram = on_datagram
        self.transport: Any = None
        self._loop = asyncio.get_running_loop()
        self._stream = client.reliable
        self._framer = StreamFramer() if self._stream else None
        self._received: deque[tuple[bytes, Address]] = deque(maxlen=queue_size)
        self._readable = asyncio.Event()
        self._transport_kind = Transport.TCP if self._stream else Transport.UDP
        self._driver = Driver(client, self._loop, self._send, self._on_event)
        self._waiters: dict[object, asyncio.Future[Any]] = {}
        self.lost: asyncio.Future[None] = self._loop.create_future()

    # -- asyncio callbacks -------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self._driver.receive(Receive(data, (addr[0], addr[1])))

    def data_received(self, data: bytes) -> None:
        client = self.client
        try:
            for frame in self._framer.feed(data):  # type: ignore[union-attr]
                client.handle_datagram(Receive(frame, client.server, None, self._transport_kind), self._loop.time())
        except TurnParseError:
            self.transport.close()  # a broken stream cannot be resynchronised
        self._driver.flush()

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors: the transactions' own timers handle the loss

    def connection_lost(self, exc: Exception | None) -> None:
        self._driver.close()
        for future in self._waiters.values():
            if not future.done():
                future.set_exception(TurnError("connection to the TURN server lost"))
        if not self.lost.done():
            self.lost.set_result(None)

    # -- the core's outputs ---------------------------------------------------------------

    def _send(self, transmit: Transmit) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._stream:
            transport.write(transmit.data)
        else:
            transport.sendto(transmit.data)

    def _on_event(self, event: TurnClientEvent) -> None:
        if isinstance(event, DataReceived):
            if self.on_datagram is not None:
                self.on_datagram(event.data, event.peer)
            else:
                self._received.append((event.data, event.peer))
                self._readable.set()
        elif isinstance(event, AllocationCreated):
            self._resolve("allocate", event)
        elif isinstance(event, AllocationFailed):
            self._reject("allocate", f"allocation refused: {event.code} {event.reason}")
        elif isinstance(event, AllocationClosed):
            self._resolve("close", event)
        elif isinstance(event, AllocationLost):
            self._reject("close", f"allocation lost: {event.code} {event.reason}")
        elif isinstance(event, PermissionCreated):
            self._resolve(("permission", event.peer_host), event)
        elif isinstance(event, PermissionFailed):
            self._reject(("permission", event.peer_host), f"permission refused: {event.code} {event.reason}")
        elif isinstance(event, ChannelBound):
            self._resolve(("channel", event.peer), event)
        elif isinstance(event, ChannelBindFailed):
            self._reject(("channel", event.peer), f"channel bind refused: {event.code} {event.reason}")

    def _resolve(self, key: object, value: Any) -> None:
        future = self._waiters.pop(key, None)
        if future is not None and not future.done():
            future.set_result(value)

    def _reject(self, key: object, reason: str) -> None:
        future = self._waiters.pop(key, None)
        if future is not None and not future.done():
            future.set_exception(TurnError(reason))

    async def _wait(self, key: object, start: Callable[[], Any], timeout: float) -> Any:
        future = self._waiters.get(key)
        if future is None:
            future = self._waiters[key] = self._loop.create_future()
            start()
            self._driver.flush()
        return await asyncio.wait_for(asyncio.shield(future), timeout)

    # -- the endpoint ---------------------------------------------------------------

    @property
    def relayed_address(self) -> Address | None:
        return self.client.relayed_address

    @property
    def mapped_address(self) -> Address | None:
        return self.client.mapped_address

    async def allocate(self, timeout: float = 40.0) -> AllocationCreated:
        return await self._wait("allocate", lambda: self.client.allocate(self._loop.time()), timeout)

    async def create_permission(self, host: str, timeout: float = 40.0) -> None:
        if self.client._permissions.get(host) is not None and self.client._permissions[host].installed:
            return
        await self._wait(("permission", host),
                         lambda: self.client.create_permission([host], self._loop.time()), timeout)

    async def bind_channel(self, peer: Address, timeout: float = 40.0) -> int:
        peer = (peer[0], peer[1])
        number = self.client.channel_for(peer)
        if number is not None:
            return number
        event = await self._wait(("channel", peer), lambda: self.client.bind_channel(peer, self._loop.time()), timeout)
        return event.channel_number

    def sendto(self, data: bytes, peer: Address) -> None:
        self.client.send_to(data, (peer[0], peer[1]), self._loop.time())
        self._driver.flush()

    async def recvfrom(self) -> tuple[bytes, Address]:
        while not self._received:
            self._readable.clear()
            await self._readable.wait()
        return self._received.popleft()

    async def close(self, timeout: float = 5.0) -> None:
        """Delete the allocation (Refresh with lifetime 0) and close the socket."""
        try:
            if self.client.state is TurnClientState.ALLOCATED:
                await self._wait("close", lambda: self.client.close(self._loop.time()), timeout)
        except (TurnError, asyncio.TimeoutError):
            pass
        finally:
            if self.transport is not None:
                self.transport.close()


async def open_turn_endpoint(
    server: Address,
    username: str,
    password: str,
    *,
    transport: str = "udp",
    ssl: ssl_module.SSLContext | None = None,
    local_addr: Address | None = None,
    server_hostname: str | None = None,
    timeout: float = 40.0,
    **client_options: Any,
) -> TurnEndpoint:
    """Connect to ``server`` and allocate a UDP relay; return the ready endpoint."""
    loop = asyncio.get_running_loop()
    reliable = transport in ("tcp", "tls")
    client = TurnClient(server, username, password, reliable=reliable, **client_options)
    if reliable:
        _, endpoint = await loop.create_connection(
            lambda: TurnEndpoint(client), server[0], server[1],
            ssl=(ssl or ssl_module.create_default_context()) if transport == "tls" else None,
            server_hostname=server_hostname if transport == "tls" else None,
            local_addr=local_addr,
        )
    else:
        _, endpoint = await loop.create_datagram_endpoint(
            lambda: TurnEndpoint(client), remote_addr=server, local_addr=local_addr
        )
    try:
        await endpoint.allocate(timeout)
    except BaseException:
        endpoint.transport.close()
        raise
    return endpoint
