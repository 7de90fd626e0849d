"""Many TURN clients and their peers on one thread: the scale test's and the benchmark's driver.

:class:`Fleet` runs ``count`` sans-IO :class:`~netcore.turn.client.TurnClient`
objects, each on its own UDP socket connected to the server, and ``count``
echo peers, each on its own socket, under one selector (epoll). Client ``i``
binds a channel to peer ``i`` only, so a datagram that reaches the wrong
peer, or an echo that comes back to the wrong client, is seen (the peers
record who sent them what; payloads carry the client's index).

Nothing here is asyncio: the clients are driven the sans-IO way (datagram
and ``now`` in, datagrams and events out, ``handle_timeout`` at their
deadlines), so a thousand allocations cost a thousand objects and two
thousand sockets, not a thousand tasks.
"""

from __future__ import annotations

import selectors
import socket
import struct
import time
from collections import Counter
from typing import Callable

from netcore.net import Address, Receive
from netcore.turn.client import (
    AllocationClosed, AllocationCreated, AllocationRefreshed, ChannelBound, DataReceived, TurnClient,
    TurnClientState,
)

_TAG = struct.Struct("!II")  # client index, sequence number: the start of every payload


def client_host(index: int, per_address: int = 32) -> str:
    """Where client ``index`` lives: ``per_address`` clients per loopback address (127.10.x.y).

    As many clients behind one NAT would, but few enough per address that
    the server's limit on 401 answers per source IP (a burst of 40) lets a
    whole fleet in at once.
    """
    group = index // per_address
    return f"127.10.{group // 250}.{group % 250 + 1}"


class Fleet:
    """``count`` TURN clients of ``server`` and ``count`` echo peers on ``host``."""

    def __init__(self, server: Address, username: str, password: str, count: int, *,
                 host: str = "127.0.0.1", lifetime: int = 600, per_address: int = 32,
                 peer: Address | None = None, first: int = 0) -> None:
        """With ``peer``, every client binds its channel to that one address (a benchmark's echo
        program) and the fleet opens no peer sockets of its own. Client ``i`` lives where
        :func:`client_host` puts client ``first + i``: fleets with ranges apart never share a 5-tuple."""
        self.server = server
        self.selector = selectors.DefaultSelector()
        self.clients: list[TurnClient] = []
        self.sockets: list[socket.socket] = []
        self.peers: list[socket.socket] = []
        self.peer_addresses: list[Address] = []
        self.events: list[Counter] = [Counter() for _ in range(count)]
        self.echoes = [0] * count  # echoes each client got back, its own only
        self.failures: list = []  # the clients' ...Failed events, for the error message
        self.strays = 0  # datagrams that reached a peer or a client they were not meant for
        self.peer_sources: list[set[Address]] = [set() for _ in range(count)]
        for index in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((client_host(first + index, per_address), 0))
            sock.connect(server)
            sock.setblocking(False)
            self.sockets.append(sock)
            self.clients.append(TurnClient(server, username, password, lifetime=lifetime))
            self.selector.register(sock, selectors.EVENT_READ, ("client", index))
            if peer is not None:
                self.peer_addresses.append(peer)
                continue
            echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            echo.bind((host, 0))
            echo.setblocking(False)
            self.peers.append(echo)
            self.peer_addresses.append(echo.getsockname())
            self.selector.register(echo, selectors.EVENT_READ, ("peer", index))

    def close(self) -> None:
        self.selector.close()
        for sock in self.sockets + self.peers:
            sock.close()

    # -- phases ----------------------------------------------------------------------

    def allocate(self, timeout: float) -> float:
        """Every client allocates (through the 401 exchange); returns the seconds it took."""
        return self._phase(lambda i, c, now: c.allocate(now), AllocationCreated, timeout)

    def bind(self, timeout: float) -> float:
        """Client ``i`` binds a channel to peer ``i``."""
        return self._phase(lambda i, c, now: c.bind_channel(self.peer_addresses[i], now), ChannelBound, timeout)

    def refresh(self, timeout: float) -> float:
        return self._phase(lambda i, c, now: c.refresh(now), AllocationRefreshed, timeout)

    def delete(self, timeout: float) -> float:
        """Every client deletes its allocation (Refresh with LIFETIME 0)."""
        return self._phase(lambda i, c, now: c.close(now), AllocationClosed, timeout)

    def exchange(self, packets: int, size: int, timeout: float) -> None:
        """Each client sends ``packets`` of ``size`` bytes to its peer, which echoes them; wait for the echoes."""
        size = max(size, _TAG.size)
        want = [e + packets for e in self.echoes]
        for sequence in range(packets):
            now = time.monotonic()
            for index, client in enumerate(self.clients):
                payload = _TAG.pack(index, sequence) + bytes(size - _TAG.size)
                client.send_to(payload, self.peer_addresses[index], now)
                self._flush(index)
            self.pump(lambda: False, 0.0)
        self.pump(lambda: all(e >= w for e, w in zip(self.echoes, want)), timeout)

    def _phase(self, start: Callable[[int, TurnClient, float], object], event: type, timeout: float) -> float:
        began = time.monotonic()
        before = [counts[event.__name__] for counts in self.events]
        for index, client in enumerate(self.clients):
            start(index, client, time.monotonic())
            self._flush(index)
            if index % 64 == 63:
                self.pump(lambda: False, 0.0)  # keep reading while sending: answers do not pile up
        self.pump(lambda: all(c[event.__name__] > b for c, b in zip(self.events, before)), timeout)
        return time.monotonic() - began

    # -- the loop ------------------------------------------------------------------------

    def pump(self, done: Callable[[], bool], timeout: float) -> None:
        """Serve sockets and timers until ``done()``; TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        next_timers = 0.0
        while True:
            ready = self.selector.select(0.005 if timeout else 0)
            now = time.monotonic()
            for key, _ in ready:
                role, index = key.data
                if role == "client":
                    self._client_readable(index, key.fileobj, now)
                else:
                    self._peer_readable(index, key.fileobj)
            if now >= next_timers:
                next_timers = now + 0.05
                for index, client in enumerate(self.clients):
                    at = client.next_deadline()
                    if at is not None and at <= now:
                        client.handle_timeout(now)
                        self._flush(index)
            if done():
                return
            if now >= deadline:
                if timeout:
                    seen = sum(self.events, Counter())
                    raise TimeoutError(f"the fleet's phase did not finish in time; events: {dict(seen)}, "
                                       f"first failures: {self.failures[:3]}")
                return

    def _client_readable(self, index: int, sock: socket.socket, now: float) -> None:
        client = self.clients[index]
        local = sock.getsockname()
        while True:
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except ConnectionRefusedError:
                continue
            client.handle_datagram(Receive(data, self.server, local), now)
        self._flush(index)

    def _peer_readable(self, index: int, sock: socket.socket) -> None:
        while True:
            try:
                data, source = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            self.peer_sources[index].add(source)
            if len(data) < _TAG.size or _TAG.unpack_from(data)[0] != index:
                self.strays += 1
            sock.sendto(data, source)

    def _flush(self, index: int) -> None:
        client = self.clients[index]
        sock = self.sockets[index]
        while (transmit := client.poll_transmit()) is not None:
            try:
                sock.send(transmit.data)
            except (BlockingIOError, ConnectionRefusedError):
                pass
        counts = self.events[index]
        while (event := client.poll_event()) is not None:
            counts[type(event).__name__] += 1
            if type(event).__name__.endswith("Failed"):
                self.failures.append(event)
            if isinstance(event, DataReceived):
                if event.peer == self.peer_addresses[index] and _TAG.unpack_from(event.data)[0] == index:
                    self.echoes[index] += 1
                else:
                    self.strays += 1

    def allocated(self) -> int:
        return sum(1 for c in self.clients if c.state is TurnClientState.ALLOCATED)
