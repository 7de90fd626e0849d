"""TCP relay allocations (RFC 6062), the part of the server core that handles them.

A TCP allocation (REQUESTED-TRANSPORT 6, only over a TCP or TLS control
connection) relays TCP connections with peers instead of datagrams:

* Connect (section 5.2): the client asks the server to open a connection
  to a peer. The core emits :class:`PeerConnectRequested`; the adapter opens
  it from the relayed address and reports back with
  :meth:`TcpRelayMixin.handle_peer_connected`; the answer carries the
  CONNECTION-ID (or 447).
* ConnectionAttempt (section 5.3): a peer connected to the relayed address
  (:meth:`TcpRelayMixin.handle_peer_connection`); if it has a permission the
  client is told with a ConnectionAttempt indication.
* ConnectionBind (section 5.4): on a new TCP/TLS connection the client binds
  it to a CONNECTION-ID; the core emits :class:`ConnectionBound` and the
  adapter pipes the two connections byte for byte from then on.

A connection not bound within 30 seconds is closed (section 5.3); a
Connect towards a peer with a connection already is 446. The core keeps at
most ``max_permissions`` connections per allocation.
"""

from __future__ import annotations

from netcore.net import Transmit
from netcore.stun.message import Message, MessageClass
from netcore.turn import wire
from netcore.turn.allocation import transport_of
from netcore.turn.auth import Authenticated, Refused
from netcore.turn.server_events import ConnectionBound, PeerConnectionClosed, PeerConnectRequested

__all__ = ["PeerConnection", "PeerConnectRequested", "ConnectionBound", "PeerConnectionClosed", "TcpRelayMixin"]

Address = tuple

BIND_TIMEOUT = 30.0  # RFC 6062 section 5.3


class PeerConnection:
    """One peer TCP connection of a TCP allocation."""

    __slots__ = ("connection_id", "allocation", "peer", "state", "expiry", "pending")

    def __init__(self, connection_id: int, allocation: object, peer: Address, state: str, expiry: float,
                 pending: tuple | None = None) -> None:
        self.connection_id = connection_id
        self.allocation = allocation
        self.peer = peer
        self.state = state  # "connecting", "unbound", "bound"
        self.expiry = expiry
        self.pending = pending  # (request, auth, addr, listener) of a Connect awaiting its answer


class TcpRelayMixin:
    """RFC 6062 handlers and inputs, mixed into :class:`netcore.turn.server.TurnServer`."""

    # -- requests ----------------------------------------------------------------------

    def _connect(self, request: Message, auth: Authenticated, addr: Address, listener: Address,
                 now: float) -> bytes | None:
        allocation = self._own_allocation(request, auth, addr, listener)
        if allocation.transport != wire.TRANSPORT_TCP:
            raise Refused(400, "Bad Request")
        peer = request.get(wire.XOR_PEER_ADDRESS)
        if peer is None:
            raise Refused(400, "Bad Request")
        peer = self._peer(request, allocation, (peer[0], peer[1]))
        if any(c.peer == peer for c in self._connections_of(allocation)):
            raise Refused(446, "Connection Already Exists")
        if len(allocation.connections) >= self.config.max_permissions:
            raise Refused(508, "Insufficient Capacity")
        connection = self._new_connection(allocation, peer, "connecting", now, (request, auth, addr, listener))
        allocation.permissions[peer[0]] = max(allocation.permissions.get(peer[0], 0.0),
                                              now + self.config.permission_lifetime)
        relayed = allocation.relay_by_family[1 if ":" not in peer[0] else 2]
        self._events.append(PeerConnectRequested(connection.connection_id, relayed, peer))
        return None  # answered by handle_peer_connected

    def _connection_bind(self, request: Message, auth: Authenticated, addr: Address, listener: Address,
                         now: float) -> bytes:
        if listener not in self.stream_listeners:
            raise Refused(400, "Bad Request")
        connection = self._tcp_connections.get(request.get(wire.CONNECTION_ID))
        if connection is None or connection.state != "unbound":
            raise Refused(400, "Bad Request")
        if connection.allocation.username != auth.username:
            raise Refused(441, "Wrong Credentials")
        if (listener, addr) in self.allocations:
            raise Refused(400, "Bad Request")  # a control connection cannot become a data connection
        connection.state = "bound"
        self._events.append(ConnectionBound(connection.connection_id, addr, listener))
        return self._sign(request.response(), request, auth)

    # -- inputs from the adapter ------------------------------------------------------------

    def handle_peer_connected(self, connection_id: int, ok: bool, now: float) -> None:
        """The outgoing connection of a Connect request is open (or failed): answer the client."""
        connection = self._tcp_connections.get(connection_id)
        if connection is None or connection.state != "connecting":
            return
        request, auth, addr, listener = connection.pending
        connection.pending = None
        if ok:
            connection.state = "unbound"
            connection.expiry = now + BIND_TIMEOUT
            response = request.response().add(wire.CONNECTION_ID, connection_id)
            self._transmit.append(Transmit(self._sign(response, request, auth), addr, listener, transport_of(listener)))
        else:
            self._close_connection(connection, notify=False)
            self._error(request, addr, listener, Refused(447, "Connection Timeout or Failure"), auth)

    def handle_peer_connection(self, relayed: Address, peer: Address, now: float) -> int | None:
        """A peer connected to ``relayed``: its CONNECTION-ID, or None to refuse (close) it."""
        allocation = self.by_relayed.get(relayed)
        peer = (peer[0], peer[1])
        if allocation is None or allocation.transport != wire.TRANSPORT_TCP \
                or peer[0] not in allocation.permissions \
                or len(allocation.connections) >= self.config.max_permissions \
                or any(c.peer == peer for c in self._connections_of(allocation)):
            self.stats.dropped += 1
            return None
        connection = self._new_connection(allocation, peer, "unbound", now, None)
        indication = Message(wire.CONNECTION_ATTEMPT, MessageClass.INDICATION)
        indication.add(wire.CONNECTION_ID, connection.connection_id).add(wire.XOR_PEER_ADDRESS, peer)
        self._transmit.append(Transmit(indication.encode(), allocation.client, allocation.listener,
                                               transport_of(allocation.listener)))
        return connection.connection_id

    def handle_peer_connection_lost(self, connection_id: int, now: float) -> None:
        """The peer or the client data connection closed: forget the connection."""
        connection = self._tcp_connections.get(connection_id)
        if connection is not None:
            self._close_connection(connection, notify=True)

    # -- state ---------------------------------------------------------------------------------

    def _new_connection(self, allocation, peer: Address, state: str, now: float, pending) -> PeerConnection:
        while True:
            connection_id = int.from_bytes(self._random(4), "big")
            if connection_id and connection_id not in self._tcp_connections:
                break
        connection = PeerConnection(connection_id, allocation, peer, state, now + BIND_TIMEOUT, pending)
        self._tcp_connections[connection_id] = connection
        allocation.connections.add(connection_id)
        if self._next_sweep is None:
            self._next_sweep = now + self.config.sweep_interval
        return connection

    def _connections_of(self, allocation) -> list[PeerConnection]:
        return [self._tcp_connections[c] for c in allocation.connections]

    def _close_connection(self, connection: PeerConnection, notify: bool) -> None:
        self._tcp_connections.pop(connection.connection_id, None)
        connection.allocation.connections.discard(connection.connection_id)
        if notify:
            self._events.append(PeerConnectionClosed(connection.connection_id))

    def _expire_connections(self, now: float) -> None:
        """Connections still unbound (or connecting) after 30 seconds are closed."""
        for connection in [c for c in self._tcp_connections.values() if c.state != "bound" and c.expiry <= now]:
            if connection.pending is not None:
                self.handle_peer_connected(connection.connection_id, False, now)
                self._events.append(PeerConnectionClosed(connection.connection_id))
            else:
                self._close_connection(connection, notify=True)
