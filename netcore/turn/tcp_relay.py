"""TCP relay allocations (RFC 6062), the part of the server core that handles them.

A TCP allocation (REQUESTED-TRANSPORT 6, only over a TCP or TLS control
connection) relays TCP connections with peers instead of datagrams:

* Connect (section 5.2): the client asks the server to open a connection
  to a peer. The core emits :class:`PeerConnectRequested`; the adapter opens
  it from the relayed address and reports back with
  ``TurnServer.handle_peer_connected``; the answer carries the CONNECTION-ID
  (or 447).
* ConnectionAttempt (section 5.3): a peer connected to the relayed address
  (``TurnServer.handle_peer_connection``); if it has a permission the
  client is told with a ConnectionAttempt indication.
* ConnectionBind (section 5.4): on a new TCP/TLS connection the client binds
  it to a CONNECTION-ID; the core emits :class:`ConnectionBound` and the
  adapter pipes the two connections byte for byte from then on.

A connection not bound within 30 seconds is closed (section 5.3); a
Connect towards a peer with a connection already is 446. The core keeps at
most ``max_permissions`` connections per allocation.

:class:`TcpRelay` is a part the :class:`~netcore.turn.server.TurnServer`
composes: it owns the connection table and these rules, and reaches the
server only through its methods (allocation lookup, peer policy, signing,
answers and events).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from netcore.net import Address, Transmit
from netcore.stun.message import Message, MessageClass
from netcore.turn import wire
from netcore.turn.allocation import Allocation, family_of, transport_of
from netcore.turn.auth import Authenticated, Refused
from netcore.turn.server_events import ConnectionBound, PeerConnectionClosed, PeerConnectRequested

if TYPE_CHECKING:
    from netcore.turn.server import TurnServer

__all__ = ["PeerConnection", "PeerConnectRequested", "ConnectionBound", "PeerConnectionClosed", "TcpRelay"]

BIND_TIMEOUT = 30.0  # RFC 6062 section 5.3


class PeerConnection:
    """One peer TCP connection of a TCP allocation."""

    __slots__ = ("connection_id", "allocation", "peer", "state", "expiry", "pending")

    def __init__(self, connection_id: int, allocation: Allocation, peer: Address, state: str, expiry: float,
                 pending: tuple | None = None) -> None:
        self.connection_id = connection_id
        self.allocation = allocation
        self.peer = peer
        self.state = state  # "connecting", "unbound", "bound"
        self.expiry = expiry
        self.pending = pending  # (request, auth, addr, listener) of a Connect awaiting its answer


class TcpRelay:
    """The RFC 6062 part of one TURN server: peer TCP connections of TCP allocations."""

    def __init__(self, server: TurnServer, random: Callable[[int], bytes]) -> None:
        self.server = server
        self.connections: dict[int, PeerConnection] = {}  # CONNECTION-ID -> connection
        self._random = random

    def __len__(self) -> int:
        return len(self.connections)

    # -- requests (section 5.2, 5.4) -----------------------------------------------------

    def connect(self, request: Message, auth: Authenticated, addr: Address, listener: Address,
                now: float) -> bytes | None:
        server = self.server
        config = server.config
        allocation = server.own_allocation(auth, addr, listener)
        if allocation.transport != wire.TRANSPORT_TCP:
            raise Refused(400, "Bad Request")
        peer = request.get(wire.XOR_PEER_ADDRESS)
        if peer is None:
            raise Refused(400, "Bad Request")
        peer = server.check_peer(allocation, (peer[0], peer[1]))
        if any(c.peer == peer for c in self.of(allocation)):
            raise Refused(446, "Connection Already Exists")
        if len(allocation.connections) >= config.max_permissions:
            raise Refused(508, "Insufficient Capacity")
        connection = self._new_connection(allocation, peer, "connecting", now, (request, auth, addr, listener))
        allocation.permit(peer[0], max(allocation.permissions.get(peer[0], 0.0), now + config.permission_lifetime))
        relayed = allocation.relayed_for(family_of(peer[0]))  # there is one: check_peer checked the family
        server.emit(PeerConnectRequested(connection.connection_id, relayed, peer))
        return None  # answered by peer_connected

    def connection_bind(self, request: Message, auth: Authenticated, addr: Address, listener: Address,
                        now: float) -> bytes:
        server = self.server
        if listener not in server.stream_listeners:
            raise Refused(400, "Bad Request")
        connection = self.connections.get(request.get(wire.CONNECTION_ID))
        if connection is None or connection.state != "unbound":
            raise Refused(400, "Bad Request")
        if connection.allocation.username != auth.username:
            raise Refused(441, "Wrong Credentials")
        if (listener, addr) in server.allocations:
            raise Refused(400, "Bad Request")  # a control connection cannot become a data connection
        connection.state = "bound"
        server.emit(ConnectionBound(connection.connection_id, addr, listener))
        return server.sign(request.response(), request, auth)

    # -- inputs from the adapter ------------------------------------------------------------

    def peer_connected(self, connection_id: int, ok: bool, now: float) -> None:
        """The outgoing connection of a Connect request is open (or failed): answer the client."""
        server = self.server
        connection = self.connections.get(connection_id)
        if connection is None or connection.state != "connecting":
            return
        request, auth, addr, listener = connection.pending
        connection.pending = None
        if ok:
            connection.state = "unbound"
            connection.expiry = now + BIND_TIMEOUT
            response = request.response().add(wire.CONNECTION_ID, connection_id)
            server.send(Transmit(server.sign(response, request, auth), addr, listener, transport_of(listener)))
        else:
            self.close(connection, notify=False)
            server.refuse(request, addr, listener, Refused(447, "Connection Timeout or Failure"), auth)

    def peer_connection(self, relayed: Address, peer: Address, now: float) -> int | None:
        """A peer connected to ``relayed`` (section 5.3): its CONNECTION-ID, or None to refuse it."""
        server = self.server
        allocation = server.by_relayed.get(relayed)
        peer = (peer[0], peer[1])
        if allocation is None or allocation.transport != wire.TRANSPORT_TCP \
                or peer[0] not in allocation.permissions \
                or len(allocation.connections) >= server.config.max_permissions \
                or any(c.peer == peer for c in self.of(allocation)):
            server.stats.dropped += 1
            return None
        connection = self._new_connection(allocation, peer, "unbound", now, None)
        indication = Message(wire.CONNECTION_ATTEMPT, MessageClass.INDICATION, self._random(12))
        indication.add(wire.CONNECTION_ID, connection.connection_id).add(wire.XOR_PEER_ADDRESS, peer)
        server.send(Transmit(indication.encode(), allocation.client, allocation.listener,
                             transport_of(allocation.listener)))
        return connection.connection_id

    def peer_connection_lost(self, connection_id: int, now: float) -> None:
        """The peer or the client data connection closed: forget the connection."""
        connection = self.connections.get(connection_id)
        if connection is not None:
            self.close(connection, notify=True)

    # -- state ---------------------------------------------------------------------------------

    def _new_connection(self, allocation: Allocation, peer: Address, state: str, now: float,
                        pending: tuple | None) -> PeerConnection:
        while True:
            connection_id = int.from_bytes(self._random(4), "big")
            if connection_id and connection_id not in self.connections:
                break
        connection = PeerConnection(connection_id, allocation, peer, state, now + BIND_TIMEOUT, pending)
        self.connections[connection_id] = connection
        if not allocation.connections:
            allocation.connections = set()  # its first (or the shared empty one: see Allocation.connections)
        allocation.connections.add(connection_id)
        self.server.wake(now)
        return connection

    def of(self, allocation: Allocation) -> list[PeerConnection]:
        return [self.connections[c] for c in allocation.connections]

    def close(self, connection: PeerConnection, notify: bool) -> None:
        self.connections.pop(connection.connection_id, None)
        connection.allocation.connections.discard(connection.connection_id)
        if notify:
            self.server.emit(PeerConnectionClosed(connection.connection_id))

    def expire(self, now: float) -> None:
        """Connections still unbound (or connecting) after 30 seconds are closed (section 5.3)."""
        for connection in [c for c in self.connections.values() if c.state != "bound" and c.expiry <= now]:
            if connection.pending is not None:
                self.peer_connected(connection.connection_id, False, now)
                self.server.emit(PeerConnectionClosed(connection.connection_id))
            else:
                self.close(connection, notify=True)
