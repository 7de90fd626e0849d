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
from typing import TYPE_CHECKING

from netcore.turn.wire import StreamFramer, TurnParseError

if TYPE_CHECKING:
    from netcore.turn.aio_server import TurnServerEndpoint

__all__ = ["TurnStreamProtocol", "PeerTcpProtocol"]

log = logging.getLogger("netcore.turn")

Address = tuple


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

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.addr = (peer[0], peer[1])
        endpoint = self.endpoint
        if len(endpoint.streams) >= endpoint.max_connections:
            transport.close()
            return
        endpoint.streams[(self.local, self.addr)] = self

    def data_received(self, data: bytes) -> None:
        if self.pipe is not None:
            self.pipe.transport.write(data)
            self.pipe.count(to_peer=len(data))
            return
        endpoint = self.endpoint
        core = endpoint.core
        now = endpoint.loop.time()
        try:
            for frame in self.framer.feed(data):
                core.handle_datagram(frame, self.addr, now, self.local)
        except TurnParseError as exc:
            log.debug("closing %s: %s", self.addr, exc)
            core.stats.parse_errors += 1
            if self.transport is not None:
                self.transport.close()
        except Exception as exc:  # a bug of ours on one frame: drop the connection, keep serving
            endpoint.faults.record(exc, self.addr, now)
            if self.transport is not None:
                self.transport.close()
        endpoint.flush()

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() > self.endpoint.stream_write_limit:
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
        if endpoint.streams.get((self.local, self.addr)) is self:
            del endpoint.streams[(self.local, self.addr)]
            endpoint.core.handle_connection_lost(self.addr, self.local, endpoint.loop.time())
            endpoint.flush()


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
            self.pipe.transport.write(data)
            self.count(to_client=len(data))
            return
        self.pending += data
        if len(self.pending) >= self.BUFFER_LIMIT and self.transport is not None:
            self.transport.pause_reading()

    def count(self, to_peer: int = 0, to_client: int = 0) -> None:
        """Bytes piped, into the allocation's counters (its log line and the metrics)."""
        if self.allocation is not None:
            self.allocation.bytes_to_peer += to_peer
            self.allocation.bytes_to_client += to_client

    def flush_to_pipe(self) -> None:
        if self.pipe is not None and self.pipe.transport is not None and self.transport is not None:
            if self.pending:
                self.pipe.transport.write(bytes(self.pending))
                self.count(to_client=len(self.pending))
                self.pending.clear()
            self.transport.resume_reading()

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
