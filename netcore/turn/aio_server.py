"""asyncio adapter for the TURN server core, with a fast relay path.

The control plane (STUN requests, Send indications, Data indications, the
timer) goes through :class:`~netcore.turn.server.TurnServer` exactly as
docs/architecture.md describes. The data plane -- ChannelData in both
directions -- is the relay's hot path and is served here without a call into
the core per packet: sockets are read with ``recvfrom_into`` into one
preallocated buffer until EAGAIN (``loop.add_reader``, no transport, no
fresh buffer per datagram), the channel is found with one dict lookup in the
core's own tables, and the payload is sent as a slice of that buffer. The
peer-to-client direction receives at offset 4 of the buffer and writes the
ChannelData header in front, so nothing is copied.

The fast path makes no decision of its own: it reads the route table each
allocation publishes (:mod:`netcore.turn.allocation`; a channel is there
while it is bound and its peer has a permission) and draws on the same
bandwidth tokens; whatever has no route it passes to the core.

When the C extension is built, the endpoint hands its UDP sockets to the
compiled data path instead (:mod:`netcore.turn.aio_native`): the same
decisions, made on a thread of its own without the interpreter. The Python
fast path below remains for ``native=False`` and for builds without a C
compiler.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import struct
from collections import deque
from time import perf_counter as _clock
from typing import Callable

from netcore.aio import SOCKET_BUFFER, open_stream_socket, open_udp_socket, set_receive_buffer
from netcore.net import Address, Receive
from netcore.turn import wire
from netcore.turn.server import TurnServer
from netcore.turn.server_events import ConnectionBound, PeerConnectionClosed, PeerConnectRequested
from netcore.turn.aio_stream import PeerTcpProtocol, StreamLimits, TurnStreamProtocol
from netcore.turn import aio_native
from netcore.turn.faults import FaultLog

__all__ = ["SocketRelays", "TurnServerEndpoint", "open_udp_socket", "open_stream_socket"]

log = logging.getLogger("netcore.turn")

_BUFFER_SIZE = 65536 + 4
_TCP_EVENTS = (PeerConnectRequested, ConnectionBound, PeerConnectionClosed)
_CHANNEL_HEADER = struct.Struct("!HH")
_pack_header = _CHANNEL_HEADER.pack_into
_PADDING = (b"", b"\0\0\0", b"\0\0", b"\0")  # by length & 3: ChannelData over streams ends on 4 bytes
SPARE_MAX = 1024  # relay sockets kept for reuse after their allocation ended, at most
SPARE_IDLE = 60.0  # seconds a spare relay socket is kept unused before it is closed
_SPARE_BUFFER = 4096  # SO_RCVBUF of a spare: unread, it holds a few KiB at most (the kernel's minimum is 2304)


def _drain(sock: socket.socket, scratch: bytearray) -> int:
    """Read and drop whatever waits on a non-blocking UDP socket; how many datagrams."""
    count = 0
    while True:
        try:
            sock.recv_into(scratch)
        except (BlockingIOError, InterruptedError):
            return count
        except OSError:  # an ICMP error queued on the socket: read, go on
            pass
        count += 1


class _Budget:
    """How many datagrams one readable callback reads before returning.

    Reading until EAGAIN batches well under load, but the EAGAIN exception
    costs more than a datagram's whole relay step in Python, and at low rates
    every callback has exactly one datagram. The event loop polls level-
    triggered, so a callback that stops early is simply called again. The
    budget therefore stays at 1 while callbacks are far apart (no EAGAIN
    paid), doubles when a callback comes right after the previous one (the
    queue is building up) and falls back to what was found when EAGAIN ends
    a batch.
    """

    __slots__ = ("limit", "last")

    BACK_TO_BACK = 50e-6  # seconds between callbacks that means "a queue is waiting"
    MAX = 64

    def __init__(self) -> None:
        self.limit = 1
        self.last = 0.0

    def start(self) -> int:
        now = _clock()  # not loop.time(): uvloop's clock has millisecond steps
        if now - self.last < self.BACK_TO_BACK and self.limit < self.MAX:
            self.limit *= 2
        self.last = now
        return self.limit

    def drained(self, count: int) -> None:
        self.limit = count if count > 1 else 1


class SocketRelays:
    """Relayed transport addresses as sockets bound in ``[min_port, max_port]``.

    UDP sockets for UDP allocations, listening TCP sockets for RFC 6062 TCP
    allocations. ``relay_ips`` maps a STUN family (1, 2) to the local address
    to bind; ``external_ips`` to the address clients are told (a server
    behind a 1:1 NAT). The endpoint serves every socket it opens.

    A UDP relay socket whose allocation ended is kept as a *spare* (at most
    ``spare_max``, each for ``SPARE_IDLE`` seconds) and handed to the next
    allocation of its family instead of opening a new one: a socket, its
    buffer options, a bind and a close cost more than an Allocate's whole
    decision in the core (coturn keeps its relay ports too). A spare is not
    read (the data path forgets it, as for a closed socket), its receive
    buffer shrinks to a few KiB, and what it received meanwhile is read and
    dropped before it relays again, so an allocation never sees a datagram
    sent to the one before it. Spares never stand in the way of a new
    socket: when the port range or the descriptors run out they are closed.
    Sockets with DONT-FRAGMENT, EVEN-PORT requests and RFC 6062 TCP relays
    do not take part.
    """

    def __init__(self, relay_ips: dict[int, str], min_port: int = 49152, max_port: int = 65535,
                 external_ips: dict[int, str] | None = None, *, spare_max: int = SPARE_MAX) -> None:
        self.relay_ips = relay_ips
        self.external_ips = external_ips or {}
        self.families = frozenset(relay_ips)
        self.min_port = min_port
        self.max_port = max_port
        self.sockets: dict[Address, socket.socket] = {}  # relayed address (as told) -> socket
        self._in_use: dict[int, set[int]] = {family: set() for family in relay_ips}
        self._cursor = min_port
        self._fatal = False  # the last bind failed for a reason that no other port would avoid
        self.on_open: Callable[[Address, socket.socket, int, int], None] | None = None
        self.on_close: Callable[[Address, socket.socket], None] | None = None
        # A data path that keeps reading a spare and drops what it reads says so (True); else on_close.
        self.on_spare: Callable[[Address, socket.socket], bool] | None = None
        # Why relay sockets could not be opened (each is a 508 to a client), one line per 10 s.
        self.failures = FaultLog(what="relay socket", level=logging.WARNING)
        self.spare_max = spare_max
        # Per family, oldest first: (relayed, socket, when it became spare, whether the data path reads it);
        # their ports stay in _in_use.
        self._spares: dict[int, deque[tuple[Address, socket.socket, float, bool]]] = {
            family: deque() for family in relay_ips}
        self.spare_count = 0
        self._not_spared: set[Address] = set()  # DONT-FRAGMENT and TCP relays: closed when they end
        self._scratch = bytearray(1)  # a spare's stale datagrams are read into it (truncated) and dropped

    def open_relay(self, family: int, *, transport: int = wire.TRANSPORT_UDP, even_port: bool = False,
                   dont_fragment: bool = False, port: int | None = None) -> Address | None:
        host = self.relay_ips.get(family)
        if host is None:
            return None
        self._fatal = False
        if port is not None:
            if not self.min_port <= port <= self.max_port:
                return None
            if port in self._in_use[family]:
                return self._take_spare_port(family, port, dont_fragment) if transport == wire.TRANSPORT_UDP else None
            return self._open(family, host, port, dont_fragment, transport)
        spares = self._spares[family]
        if spares and transport == wire.TRANSPORT_UDP and not even_port:
            return self._reuse(family, spares.popleft(), dont_fragment)
        relayed = self._search(family, host, transport, even_port, dont_fragment)
        if relayed is None and self.spare_count and not self._fatal:
            self.close_spares()  # they held the ports that are missing: give them up
            relayed = self._search(family, host, transport, even_port, dont_fragment)
        if relayed is None and not self._fatal:
            self.failures.record(OSError(errno.EADDRINUSE, f"no free relay port in {self.min_port}-{self.max_port}"),
                                 (host, self._cursor), _clock())
        return relayed

    def _search(self, family: int, host: str, transport: int, even_port: bool, dont_fragment: bool) -> Address | None:
        """A new socket on a free port of the range, from the cursor on; None when none is free."""
        in_use = self._in_use[family]
        # The whole range once at most, from the cursor on: ports that another program
        # holds cost a failed bind each, ports we hold a set lookup.
        for _ in range(self.max_port - self.min_port + 1):
            port = self._cursor
            self._cursor = self.min_port if port >= self.max_port else port + 1
            if port in in_use or (even_port and port & 1):
                continue
            relayed = self._open(family, host, port, dont_fragment, transport)
            if relayed is not None:
                return relayed
            if self._fatal:
                return None  # no descriptor, or not our address: no other port would do
        return None

    def _reuse(self, family: int, spare: tuple[Address, socket.socket, float, bool], dont_fragment: bool) -> Address:
        """A spare relay socket serving again: its full buffer back, what it received meanwhile dropped
        (here, or by the data path that kept reading it when on_open hands it back)."""
        relayed, sock, _, read = spare
        self.spare_count -= 1
        if not read:
            set_receive_buffer(sock, SOCKET_BUFFER)
            _drain(sock, self._scratch)
        if dont_fragment:
            self._set_dont_fragment(sock, family)
            self._not_spared.add(relayed)
        self.sockets[relayed] = sock
        if self.on_open is not None:
            self.on_open(relayed, sock, family, wire.TRANSPORT_UDP)
        return relayed

    def _take_spare_port(self, family: int, port: int, dont_fragment: bool) -> Address | None:
        """The spare on ``port`` (an EVEN-PORT reservation asks for one port), or None if it serves."""
        spares = self._spares[family]
        for index, spare in enumerate(spares):
            if spare[0][1] == port:
                del spares[index]
                return self._reuse(family, spare, dont_fragment)
        return None

    def close_spares(self) -> None:
        """Close every spare relay socket (shutdown, or ports and descriptors ran out)."""
        for family, spares in self._spares.items():
            while spares:
                self._close_spare(family, spares.popleft())

    def sweep_spares(self) -> None:
        """Close the spares unused for ``SPARE_IDLE`` seconds (oldest first)."""
        expired = _clock() - SPARE_IDLE
        for family, spares in self._spares.items():
            while spares and spares[0][2] <= expired:
                self._close_spare(family, spares.popleft())

    def _close_spare(self, family: int, spare: tuple[Address, socket.socket, float, bool]) -> None:
        relayed, sock, _, read = spare
        self.spare_count -= 1
        if read and self.on_close is not None:
            self.on_close(relayed, sock)  # the data path still reads it
        self._release(family, relayed, sock)

    def _release(self, family: int, relayed: Address, sock: socket.socket) -> None:
        """Give the port back to the range and close the socket."""
        in_use = self._in_use.get(family)
        if in_use is not None:
            in_use.discard(relayed[1])
        sock.close()

    def _open(self, family: int, host: str, port: int, dont_fragment: bool, transport: int) -> Address | None:
        try:
            if transport == wire.TRANSPORT_TCP:  # RFC 6062: peers connect here, and we connect from here
                sock = open_stream_socket(host, port, reuse_port=True)
            else:
                sock = open_udp_socket(host, port)
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE) and self.spare_count:
                self.close_spares()  # the spares hold descriptors a new socket needs
                return self._open(family, host, port, dont_fragment, transport)
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):  # out of descriptors, or not our address
                self.failures.record(exc, (host, port), _clock())
                self._fatal = True
            return None
        if dont_fragment:
            self._set_dont_fragment(sock, family)
        self._in_use[family].add(port)
        relayed = (self.external_ips.get(family, host), port)
        self.sockets[relayed] = sock
        if dont_fragment or transport == wire.TRANSPORT_TCP:
            self._not_spared.add(relayed)
        if self.on_open is not None:
            self.on_open(relayed, sock, family, transport)
        return relayed

    @staticmethod
    def _set_dont_fragment(sock: socket.socket, family: int) -> None:
        try:  # RFC 8656 section 7.2: DONT-FRAGMENT asks for DF on relayed packets
            if family == wire.FAMILY_IPV4:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MTU_DISCOVER, socket.IP_PMTUDISC_DO)
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MTU_DISCOVER, socket.IP_PMTUDISC_DO)
        except (OSError, AttributeError):
            pass

    def close_relay(self, relayed: Address) -> None:
        """The allocation holding ``relayed`` ended: keep its socket as a spare, or close it."""
        sock = self.sockets.pop(relayed, None)
        if sock is None:
            return
        family = 2 if ":" in relayed[0] else 1
        spares = self._spares.get(family)
        if spares is not None and self.spare_count < self.spare_max and relayed not in self._not_spared:
            read = self.on_spare is not None and self.on_spare(relayed, sock)
            if not read:
                if self.on_close is not None:
                    self.on_close(relayed, sock)  # the data path forgets it
                set_receive_buffer(sock, _SPARE_BUFFER)
            spares.append((relayed, sock, _clock(), read))
            self.spare_count += 1
            return
        if self.on_close is not None:
            self.on_close(relayed, sock)
        self._not_spared.discard(relayed)
        self._release(family, relayed, sock)


class TurnServerEndpoint:
    """Runs one :class:`TurnServer` on a set of UDP listening sockets.

    ``native`` (the default) relays ChannelData on the compiled data path when
    it was built; ``native=False`` keeps every packet in Python.
    """

    def __init__(self, core: TurnServer, relays: SocketRelays,
                 on_event: Callable[[object], None] | None = None, *, native: bool = True) -> None:
        self.core = core
        self.relays = relays
        self.on_event = on_event
        self.loop = asyncio.get_running_loop()
        self.listeners: dict[Address, socket.socket] = {}
        self.streams: dict[tuple[Address, Address], TurnStreamProtocol] = {}  # (listener, client) ->
        self.stream_servers: list[asyncio.AbstractServer] = []
        self.stream_keys: list[tuple[Address, asyncio.AbstractServer]] = []  # (host, port, "tcp"|"tls") ->
        # A graceful upgrade's successor side (netcore.turn.handover): datagrams of the old daemon's clients.
        self.divert: Callable[[bytes, Address, Address], bool] | None = None
        self.limits = StreamLimits.for_process(core.config.total_quota)
        self.stream_sources: dict[str, int] = {}  # client IP -> open TCP/TLS connections
        self.stream_buffered = 0  # bytes held in partial frames over every connection
        self.stream_refusals = FaultLog(what="TCP/TLS connection from", level=logging.WARNING)  # caps reached, one line per 10 s
        self.tcp_relay_servers: dict[Address, asyncio.AbstractServer] = {}  # RFC 6062 relayed address ->
        self.peer_connections: dict[int, PeerTcpProtocol] = {}  # RFC 6062 connection id ->
        self._tasks: set[asyncio.Task] = set()
        self._buffer = bytearray(_BUFFER_SIZE)
        self._view = memoryview(self._buffer)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.send_errors = 0  # of the Python paths; the native path counts its own
        self.faults = FaultLog()  # exceptions the core raised on one input (bugs), logged rate-limited
        relays.on_open = self._relay_opened
        relays.on_close = self._relay_closed
        self.native = aio_native.NativeDataPath(self) if native and aio_native.available() else None
        # The compiled path keeps reading a spare (and drops what it reads); the Python one forgets it (on_close).
        relays.on_spare = self.native.spare if self.native is not None else None

    # -- sockets ------------------------------------------------------------------------

    def add_listener(self, sock: socket.socket) -> Address:
        local = sock.getsockname()[:2]
        self.listeners[local] = sock
        if self.native is not None:
            self.native.add_listener(sock, local)
        else:
            self.loop.add_reader(sock.fileno(), self._listener_readable, sock, local,
                                 sock.family == socket.AF_INET6, _Budget())
        return local

    async def add_stream_listener(self, sock: socket.socket, ssl_context=None) -> Address:
        """Serve TURN over TCP (or TLS with ``ssl_context``) on a bound stream socket.

        The listener's key in the core is ``(host, port, "tcp"|"tls")`` so that
        it never collides with a UDP listener on the same address.
        """
        host, port = sock.getsockname()[:2]
        local = (host, port, "tls" if ssl_context is not None else "tcp")
        self.core.stream_listeners.add(local)
        server = await self.loop.create_server(
            lambda: TurnStreamProtocol(self, local), sock=sock, ssl=ssl_context,
            ssl_handshake_timeout=self.limits.auth_timeout if ssl_context is not None else None)
        self.stream_servers.append(server)
        self.stream_keys.append((local, server))
        return local

    def stream_server_keys(self) -> list[tuple[Address, asyncio.AbstractServer]]:
        return [(key, server) for key, server in self.stream_keys if server.sockets]

    def stop_listening(self) -> None:
        """A graceful upgrade handed the listeners over: stop reading them (still sending from them)
        and stop accepting connections; allocations, relay sockets and connections stay."""
        for sock in self.listeners.values():
            if self.native is not None:
                self.native.pause(sock)
            else:
                self.loop.remove_reader(sock.fileno())
        for server in self.stream_servers:
            server.close()

    def receive_forwarded(self, data: bytes, client: Address, listener: Address) -> None:
        """A datagram the successor read on ``listener`` for one of our clients (flush after a batch)."""
        now = self.loop.time()
        self.update_counters()
        try:
            self.core.handle_datagram(Receive(data, client, listener), now)
        except Exception as exc:  # one input must not end the batch nor skip the flush
            self.faults.record(exc, client, now)

    def _relay_opened(self, relayed: Address, sock: socket.socket, family: int, transport: int) -> None:
        if transport == wire.TRANSPORT_TCP:
            self._spawn(self._serve_tcp_relay(relayed, sock))
        elif self.native is not None:
            self.native.add_relay(sock, relayed)
        else:
            self.loop.add_reader(sock.fileno(), self._relay_readable, sock, relayed, family == wire.FAMILY_IPV6,
                                 _Budget())

    def _relay_closed(self, relayed: Address, sock: socket.socket) -> None:
        server = self.tcp_relay_servers.pop(relayed, None)
        if server is not None:
            server.close()
        elif self.native is not None:
            self.native.remove(sock)  # a no-op for a socket it does not serve (no sock.type: an enum per call)
        else:
            self.loop.remove_reader(sock.fileno())  # likewise for one the loop does not read

    def _spawn(self, coroutine) -> None:
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve_tcp_relay(self, relayed: Address, sock: socket.socket) -> None:
        try:
            server = await self.loop.create_server(lambda: PeerTcpProtocol(self, relayed, None), sock=sock)
        except OSError:
            return  # closed before it started
        if relayed in self.relays.sockets:
            self.tcp_relay_servers[relayed] = server
        else:
            server.close()

    async def _connect_peer(self, event: PeerConnectRequested) -> None:
        """RFC 6062 section 5.2: connect from the relayed address to the peer, 30 s at most."""
        family = socket.AF_INET6 if ":" in event.peer[0] else socket.AF_INET
        host = self.relays.relay_ips.get(2 if family == socket.AF_INET6 else 1)
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                sock.bind((host, event.relayed[1]))
            except OSError:
                sock.bind((host, 0))
            sock.setblocking(False)
            await asyncio.wait_for(self.loop.sock_connect(sock, event.peer), 30.0)
            await self.loop.create_connection(lambda: PeerTcpProtocol(self, event.relayed, event.connection_id),
                                              sock=sock)
            ok = True
        except (OSError, asyncio.TimeoutError):
            sock.close()
            ok = False
        self.core.handle_peer_connected(event.connection_id, ok, self.loop.time())
        self.flush()

    def _handle_tcp_event(self, event: object) -> None:
        if isinstance(event, PeerConnectRequested):
            self._spawn(self._connect_peer(event))
        elif isinstance(event, ConnectionBound):
            stream = self.streams.get((event.listener, event.client))
            peer = self.peer_connections.get(event.connection_id)
            if stream is None or peer is None:
                self.core.handle_peer_connection_lost(event.connection_id, self.loop.time())
                return
            stream.pipe, peer.pipe = peer, stream
            peer.flush_to_pipe()
        elif isinstance(event, PeerConnectionClosed):
            peer = self.peer_connections.pop(event.connection_id, None)
            if peer is not None:
                peer.close()

    def reconfigure(self, config) -> None:
        """New users, secrets, peer rules and caps (SIGHUP); allocations stay."""
        self.update_counters()
        self.core.reconfigure(config)
        self.flush()

    def update_counters(self) -> None:
        """Bring the allocations' relay counters up to date (the native path counts on its own thread)."""
        if self.native is not None:
            self.native.harvest()

    def native_stats(self) -> dict[str, int]:
        """The compiled data path's counters (send errors, hand-offs, dropped hand-offs, routes); {} without it."""
        return self.native.stats() if self.native is not None else {}

    def close(self) -> None:
        for server in self.stream_servers:
            server.close()
        self.update_counters()
        self.core.close(self.loop.time())
        self.flush()
        self.relays.close_spares()
        for stream in list(self.streams.values()):
            stream.transport.close()
        if self.native is not None:
            self.native.close()
        for sock in self.listeners.values():
            if self.native is None:
                with contextlib.suppress(ValueError, OSError):
                    self.loop.remove_reader(sock.fileno())
            sock.close()
        self.listeners.clear()
        if self._timer is not None:
            self._timer.cancel()

    # -- the hot paths ----------------------------------------------------------------------

    def _listener_readable(self, sock: socket.socket, local: Address, ipv6: bool, budget: _Budget) -> None:
        core = self.core
        buffer = self._buffer
        view = self._view
        clients = core.clients.get(local) or {}
        max_bps = core.config.max_bps
        channel_data = core.channel_first_bytes  # the first bytes netcore.demux calls ChannelData (+ RFC 5766's)
        now = self.loop.time()
        sockets = self.relays.sockets
        recvfrom_into = sock.recvfrom_into
        slow = False
        limit = budget.start()
        count = 0
        while count < limit:
            try:
                size, addr = recvfrom_into(buffer)
            except OSError:  # EAGAIN: the queue is empty
                budget.drained(count)
                break
            count += 1
            if ipv6:
                addr = addr[:2]  # the core keys clients by (host, port)
            if size >= 4 and buffer[0] in channel_data:
                allocation = clients.get(addr)
                if allocation is not None:
                    route = allocation.routes.get((buffer[0] << 8) | buffer[1])
                    length = (buffer[2] << 8) | buffer[3]
                    if route is not None and length <= size - 4:
                        if max_bps and not allocation.take_tokens(length, now, max_bps):
                            core.stats.bandwidth_dropped += 1
                            continue
                        sink = sockets.get(route.relayed)
                        if sink is None:
                            continue
                        try:
                            sink.sendto(view[4 : 4 + length], route.peer)
                        except OSError:
                            self.send_errors += 1
                            continue
                        allocation.packets_to_peer += 1
                        allocation.bytes_to_peer += length
                        continue
            slow = True
            if self.divert is not None and self.divert(bytes(view[:size]), addr, local):
                continue
            try:
                core.handle_datagram(Receive(bytes(view[:size]), addr, local), now)
            except Exception as exc:  # one input must not end the batch nor skip the flush
                self.faults.record(exc, addr, now)
            clients = core.clients.get(local) or {}  # an Allocate may have added this client
        if slow:
            self.flush()

    def _relay_readable(self, sock: socket.socket, relayed: Address, ipv6: bool, budget: _Budget) -> None:
        core = self.core
        allocation = core.by_relayed.get(relayed)
        receive = self._view[4:]
        recvfrom_into = sock.recvfrom_into
        if allocation is None:  # not ours (any more): drain
            while True:
                try:
                    recvfrom_into(receive)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    return
        buffer = self._buffer
        view = self._view
        out = self.listeners.get(allocation.listener)
        client = allocation.client
        peer_routes = allocation.peer_routes  # rebuilt in place by the core
        max_bps = core.config.max_bps
        now = self.loop.time()
        slow = False
        limit = budget.start()
        count = 0
        while count < limit:
            try:
                size, peer = recvfrom_into(receive)
            except OSError:  # EAGAIN: the queue is empty
                budget.drained(count)
                break
            count += 1
            if ipv6:
                peer = peer[:2]
            route = peer_routes.get(peer)
            if route is not None and out is not None:
                if max_bps and not allocation.take_tokens(size, now, max_bps):
                    core.stats.bandwidth_dropped += 1
                    continue
                _pack_header(buffer, 0, route.number, size)
                try:
                    out.sendto(view[: 4 + size], client)
                except OSError:
                    self.send_errors += 1
                    continue
                allocation.packets_to_client += 1
                allocation.bytes_to_client += size
                continue
            if out is None and self.relay_to_stream(bytes(receive[:size]), peer, relayed, now):
                continue
            slow = True
            try:
                core.handle_datagram(Receive(bytes(receive[:size]), peer, relayed), now)
            except Exception as exc:  # one input must not end the batch nor skip the flush
                self.faults.record(exc, peer, now)
        if slow:
            self.flush()

    # -- TCP/TLS clients' fast paths (the core decides, through the same route tables) ---------------

    def relay_stream_channel_data(self, frame: bytes, client: Address, listener: Address, now: float) -> bool:
        """ChannelData a TCP/TLS client sent, on a route: sent to the peer here; False for the core."""
        core = self.core
        allocation = core.clients.get(listener, {}).get(client)
        if allocation is None:
            return False
        route = allocation.routes.get((frame[0] << 8) | frame[1])
        length = (frame[2] << 8) | frame[3]
        if route is None or length > len(frame) - 4:
            return False
        max_bps = core.config.max_bps
        if max_bps and not allocation.take_tokens(length, now, max_bps):
            core.stats.bandwidth_dropped += 1
            return True
        sink = self.relays.sockets.get(route.relayed)
        if sink is None:
            return False
        try:
            sink.sendto(frame[4:4 + length], route.peer)
        except OSError:
            self.send_errors += 1
            return True
        allocation.packets_to_peer += 1
        allocation.bytes_to_peer += length
        return True

    def relay_to_stream(self, data: bytes, peer: Address, relayed: Address, now: float) -> bool:
        """A peer's datagram for a TCP/TLS client with a channel: framed and written here; False for the core."""
        core = self.core
        allocation = core.by_relayed.get(relayed)
        if allocation is None:
            return False
        route = allocation.peer_routes.get(peer)
        stream = self.streams.get((allocation.listener, allocation.client)) if route is not None else None
        if stream is None:
            return False
        size = len(data)
        max_bps = core.config.max_bps
        if max_bps and not allocation.take_tokens(size, now, max_bps):
            core.stats.bandwidth_dropped += 1
            return True
        stream.write(_CHANNEL_HEADER.pack(route.number, size) + data + _PADDING[size & 3])  # section 12.5
        allocation.packets_to_client += 1
        allocation.bytes_to_client += size
        return True

    # -- the control plane ---------------------------------------------------------------------

    def flush(self) -> None:
        """Send what the core queued, deliver its events, re-arm the one timer."""
        core = self.core
        native = self.native
        batch: list[tuple] | None = None  # (fd, data, host, port, socket)
        if native is not None:
            native.sync()
            batch = []  # sent at the end in one call, one sendmmsg per run from one socket
        while (item := core.poll_transmit()) is not None:
            data, addr, local = item.data, item.destination, item.source
            sock = self.listeners.get(local) or self.relays.sockets.get(local)
            if sock is None:
                stream = self.streams.get((local, addr))
                if stream is not None:
                    stream.write(data)
                continue
            if batch is not None:
                batch.append((sock.fileno(), data, addr[0], addr[1], sock))
                continue
            self._send(sock, data, addr)
        if batch:
            self._send_batch(native, batch)
        while (event := core.poll_event()) is not None:
            if native is not None:
                event = native.complete(event)
            if isinstance(event, _TCP_EVENTS):
                self._handle_tcp_event(event)
            elif self.on_event is not None:
                self.on_event(event)
        deadline = core.next_deadline()
        if deadline is None and self.relays.spare_count:  # nothing else to wait for: the spares' expiry
            deadline = self._timer_at if self._timer_at is not None else self.loop.time() + SPARE_IDLE
        if deadline != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = self.loop.call_at(deadline, self._fire) if deadline is not None else None

    def _send(self, sock: socket.socket, data: bytes, addr: Address) -> None:
        try:
            sock.sendto(data, addr)
        except OSError as exc:
            self._send_failed(addr, exc.errno, exc)

    def _send_failed(self, addr: Address, code: int | None, reason: object) -> None:
        if code not in (errno.EAGAIN, errno.ENOBUFS):
            log.debug("send to %s failed: %s", addr, reason)
        self.send_errors += 1

    def _send_batch(self, native: aio_native.NativeDataPath, batch: list[tuple]) -> None:
        """The core's datagrams through the compiled path's sendmmsg; what it cannot send, one by one here."""
        for index, code in native.send_many(batch):
            _, data, host, port, sock = batch[index]
            if code:
                self._send_failed((host, port), code, os.strerror(code))
            else:  # an address only the socket module parses (a scoped IPv6 one)
                self._send(sock, data, (host, port))

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = None
        self.update_counters()
        self.core.handle_timeout(self.loop.time())
        self.relays.sweep_spares()
        self.flush()
