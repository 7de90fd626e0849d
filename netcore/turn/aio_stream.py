"""asyncio protocols for the TURN server's TCP and TLS connections.

:class:`TurnStreamProtocol` is one client control (or RFC 6062 data)
connection: STUN and ChannelData frames in and out through
:class:`~netcore.turn.wire.StreamFramer`. :class:`PeerTcpProtocol` is one
RFC 6062 peer connection. Once ConnectionBind pairs the two, bytes flow
between them unframed, with reading paused while the other side's write
buffer is above its high-water mark. Both belong to a
:class:`~netcore.turn.aio_server.TurnServerEndpoint`.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netcore.net import Address, Receive
from netcore.turn.allocation import transport_of
from netcore.turn.errors import TurnParseError
from netcore.turn.wire import StreamFramer

if TYPE_CHECKING:
    from netcore.turn.aio_server import TurnServerEndpoint

__all__ = ["TurnStreamProtocol", "PeerTcpProtocol", "StreamLimits"]

log = logging.getLogger("netcore.turn")



@dataclass(slots=True)
class StreamLimits:
    """What TCP/TLS clients may hold of the process: connections, time, buffered bytes.

    Each connection is a file descriptor, and so is each relayed port: the
    connections together stay below half of RLIMIT_NOFILE (read at start), so
    that relay sockets can always be opened. A connection that has no
    allocation (and is not an RFC 6062 data connection) ``auth_timeout``
    seconds after it opened, or after its allocation ended, is closed; a TLS
    handshake gets as long. Partial frames are bounded in bytes over all
    connections, since each may hold up to 64 KiB.
    """

    max_connections: int = 40000
    per_source: int = 64  # connections from one IP address
    auth_timeout: float = 20.0
    buffered_bytes: int = 16 << 20  # partial frames over every connection
    write_limit: int = 1 << 20  # bytes queued per connection before relayed data is dropped

    @classmethod
    def for_process(cls, total_quota: int) -> StreamLimits:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        budget = soft // 2 if soft != resource.RLIM_INFINITY else 1 << 20
        return cls(max_connections=max(1, min(4 * total_quota, budget)))


class TurnStreamProtocol(asyncio.Protocol):
    """One TCP or TLS client connection: frames in (:class:`StreamFramer`), frames out.

    Bad framing closes the connection (the stream cannot be resynchronised);
    closing it deletes the client's allocation. The framer holds at most one
    frame and writes beyond ``stream_write_limit`` queued bytes are dropped,
    so a client that stops reading cannot grow our memory.
    """

    def __init__(self, endpoint: TurnServerEndpoint, local: Address) -> None:
        self.endpoint = endpoint
        self.local = local
        self.framer = StreamFramer(channel_max=endpoint.core.config.channel_max)
        self.transport: asyncio.Transport | None = None
        self.addr: Address = ("", 0)
        self.dropped = 0
        self.pipe: PeerTcpProtocol | None = None  # RFC 6062: a data connection after ConnectionBind
        self.buffered = 0  # bytes of a partial frame, counted in endpoint.stream_buffered
        self.counted = False  # in endpoint.streams and endpoint.stream_sources
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.addr = (peer[0], peer[1])
        endpoint = self.endpoint
        limits = endpoint.limits
        sources = endpoint.stream_sources
        if len(endpoint.streams) >= limits.max_connections or sources.get(self.addr[0], 0) >= limits.per_source:
            endpoint.stream_refusals.record(ConnectionRefusedError("connection limit reached"), self.addr,
                                            endpoint.loop.time())
            transport.abort()
            return
        endpoint.streams[(self.local, self.addr)] = self
        sources[self.addr[0]] = sources.get(self.addr[0], 0) + 1
        self.counted = True
        self._timer = endpoint.loop.call_later(limits.auth_timeout, self._check_authenticated)

    def _check_authenticated(self) -> None:
        """Close a connection with no allocation and no RFC 6062 pipe; check again later otherwise."""
        endpoint = self.endpoint
        if self.pipe is None and endpoint.core.allocations.get((self.local, self.addr)) is None:
            self._timer = None
            log.debug("closing %s: no allocation after %.0f s", self.addr, endpoint.limits.auth_timeout)
            if self.transport is not None:
                self.transport.abort()
            return
        self._timer = endpoint.loop.call_later(endpoint.limits.auth_timeout, self._check_authenticated)

    def data_received(self, data: bytes) -> None:
        if self.pipe is not None:
            self.pipe.relay(data, to_peer=True)
            return
        endpoint = self.endpoint
        core = endpoint.core
        now = endpoint.loop.time()
        try:
            transport = transport_of(self.local)
            channel_data = core.channel_first_bytes
            relay = endpoint.relay_stream_channel_data
            for frame in self.framer.feed(data):
                if frame[0] in channel_data and relay(frame, self.addr, self.local, now):
                    continue  # the fast path: ChannelData on a route, straight to the peer
                core.handle_datagram(Receive(frame, self.addr, self.local, transport), now)
        except TurnParseError as exc:
            log.debug("closing %s: %s", self.addr, exc)
            core.stats.parse_errors += 1
            if self.transport is not None:
                self.transport.close()
        except Exception as exc:  # a bug of ours on one frame: drop the connection, keep serving
            endpoint.faults.record(exc, self.addr, now)
            if self.transport is not None:
                self.transport.close()
        self._account(self.framer.buffered)
        endpoint.flush()

    def _account(self, buffered: int) -> None:
        """Track this connection's partial frame; close it if all of them together exceed the bound."""
        endpoint = self.endpoint
        endpoint.stream_buffered += buffered - self.buffered
        self.buffered = buffered
        if buffered and endpoint.stream_buffered > endpoint.limits.buffered_bytes and self.transport is not None:
            endpoint.stream_refusals.record(MemoryError("partial frames over the byte bound"), self.addr,
                                            endpoint.loop.time())
            self.framer = StreamFramer(channel_max=endpoint.core.config.channel_max)  # frees the buffer now
            self._account(0)
            self.transport.abort()

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() > self.endpoint.limits.write_limit:
            self.dropped += 1
            return
        transport.write(data)

    def pause_writing(self) -> None:
        if self.pipe is not None:
            self.pipe.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.pipe is not None:
            self.pipe.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        log.debug("connection from %s lost: %s", self.addr, exc)
        if self.pipe is not None:
            self.pipe.close()
        endpoint = self.endpoint
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._account(0)
        self.framer = StreamFramer(channel_max=endpoint.core.config.channel_max)
        if self.counted:
            self.counted = False
            count = endpoint.stream_sources.get(self.addr[0], 1) - 1
            if count > 0:
                endpoint.stream_sources[self.addr[0]] = count
            else:
                endpoint.stream_sources.pop(self.addr[0], None)
        if endpoint.streams.get((self.local, self.addr)) is self:
            del endpoint.streams[(self.local, self.addr)]
            endpoint.core.handle_connection_lost(self.addr, self.local, endpoint.loop.time())
            endpoint.flush()


class _Metered:
    """One direction of an RFC 6062 pipe: bytes past the bandwidth tokens, waiting for the debt to be repaid."""

    __slots__ = ("held", "handle")

    def __init__(self) -> None:
        self.held = bytearray()
        self.handle: asyncio.TimerHandle | None = None


def _release(metered: _Metered, sink: asyncio.Transport, source: asyncio.Transport) -> None:
    """The debt is repaid: write what waited and read the source again."""
    metered.handle = None
    data = bytes(metered.held)
    metered.held.clear()
    if not sink.is_closing():
        sink.write(data)
    if not source.is_closing():
        source.resume_reading()


class PeerTcpProtocol(asyncio.Protocol):
    """One RFC 6062 peer connection: buffered until bound, then piped to the client data connection.

    Before ConnectionBind at most ``BUFFER_LIMIT`` bytes are held (reading
    pauses beyond); after it, bytes go straight through, with reading paused
    while the other side's write buffer is above its high-water mark.
    """

    BUFFER_LIMIT = 65536

    def __init__(self, endpoint: TurnServerEndpoint, relayed: Address, connection_id: int | None) -> None:
        self.endpoint = endpoint
        self.relayed = relayed
        self.connection_id = connection_id
        self.transport: asyncio.Transport | None = None
        self.pipe: TurnStreamProtocol | None = None
        self.pending = bytearray()
        self.closed = False
        self.allocation = endpoint.core.by_relayed.get(relayed)  # counts the bytes piped each way
        self._metered = {True: _Metered(), False: _Metered()}  # to the peer, to the client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        endpoint = self.endpoint
        if self.connection_id is None:  # a peer connected to the relayed address (section 5.3)
            peer = transport.get_extra_info("peername")
            self.connection_id = endpoint.core.handle_peer_connection(self.relayed, peer, endpoint.loop.time())
            endpoint.flush()
            if self.connection_id is None:
                transport.close()
                return
        endpoint.peer_connections[self.connection_id] = self

    def data_received(self, data: bytes) -> None:
        if self.pipe is not None and self.pipe.transport is not None:
            self.relay(data, to_peer=False)
            return
        self.pending += data
        if len(self.pending) >= self.BUFFER_LIMIT and self.transport is not None:
            self.transport.pause_reading()

    def relay(self, data: bytes, to_peer: bool) -> None:
        """Pipe ``data`` one way, within the allocation's bandwidth cap (``--max-bps``).

        The bytes draw on the allocation's one bucket, the one its datagrams
        draw on too. A stream cannot drop bytes: past the tokens, the bytes
        wait (the bucket in debt) and the side they came from is not read
        until they are written when the debt is repaid.
        """
        pipe = self.pipe
        if pipe is None or pipe.transport is None or self.transport is None:
            return
        sink, source = (self.transport, pipe.transport) if to_peer else (pipe.transport, self.transport)
        self.count(to_peer=len(data) if to_peer else 0, to_client=0 if to_peer else len(data))
        metered = self._metered[to_peer]
        rate = self.endpoint.core.config.max_bps
        if not rate or self.allocation is None:
            if metered.handle is None:
                sink.write(data)
            else:
                metered.held += data  # keep the order behind what waits
            return
        loop = self.endpoint.loop
        wait = self.allocation.debit_tokens(len(data), loop.time(), rate)
        if metered.handle is not None:
            metered.held += data
        elif wait <= 0:
            sink.write(data)
        else:
            metered.held += data
            source.pause_reading()
            metered.handle = loop.call_later(wait, _release, metered, sink, source)

    def count(self, to_peer: int = 0, to_client: int = 0) -> None:
        """Bytes piped, into the allocation's counters (its log line and the metrics)."""
        if self.allocation is not None:
            self.allocation.bytes_to_peer += to_peer
            self.allocation.bytes_to_client += to_client

    def flush_to_pipe(self) -> None:
        if self.pipe is not None and self.pipe.transport is not None and self.transport is not None:
            self.transport.resume_reading()
            if self.pending:
                self.relay(bytes(self.pending), to_peer=False)
                self.pending.clear()

    def pause_writing(self) -> None:
        if self.pipe is not None and self.pipe.transport is not None:
            self.pipe.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.pipe is not None and self.pipe.transport is not None:
            self.pipe.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if self.pipe is not None and self.pipe.transport is not None:
            self.pipe.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        if self.pipe is not None and self.pipe.transport is not None:
            self.pipe.transport.close()
        endpoint = self.endpoint
        if self.connection_id is not None and endpoint.peer_connections.get(self.connection_id) is self:
            del endpoint.peer_connections[self.connection_id]
            endpoint.core.handle_peer_connection_lost(self.connection_id, endpoint.loop.time())
            endpoint.flush()
