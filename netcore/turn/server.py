"""The TURN server core, sans-IO (RFC 8656 with RFC 6156 dual-stack and RFC 8489 auth).

It follows the contract of :mod:`netcore.net`:

* ``handle_datagram(Receive(data, source, destination), now)`` -- the
  ``destination`` says which of our addresses it reached: a listener (a
  client's STUN or ChannelData; stream listeners are keyed
  ``(host, port, "tcp"|"tls")``) or a relayed address (a peer's datagram);
* ``handle_client_stun(data, source, listener, now)`` -- the same for a
  datagram read on a UDP listener, without the ``Receive`` (the compiled
  data path's hand-offs: every request a server answers);
* ``handle_timeout(now)`` -- expire allocations, permissions, channels;
* ``poll_transmit()`` -- a :class:`~netcore.net.Transmit` whose ``source`` is
  the listener or relayed address to send from; ``poll_event()`` -- a
  :class:`~netcore.turn.server_events.TurnServerEvent`; ``next_deadline()``.

The core never opens a socket: relayed transport addresses come from a
:class:`RelayProvider` the caller hands in (the asyncio adapter binds UDP
sockets; a simulated network can hand out addresses of its own). Every table
is bounded: allocations by the total quota, permissions and channels per
allocation by fixed caps, the 401 rate-limit table by a size cap.

Which datagram goes where is decided once, in :mod:`netcore.turn.allocation`:
each allocation publishes a route table (channel -> peer, peer -> channel,
for channels whose peer has a permission) that the core relays through and
that the adapters' data paths read, without a call into the core per packet.
An adapter that mirrors the tables into a data path of its own (the compiled
one of ``aio_native``) asks :meth:`TurnServer.poll_changed_allocations` which
allocations changed since it last looked. RFC 6062 TCP relaying is a composed
:class:`~netcore.turn.tcp_relay.TcpRelay`.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from typing import Any, Callable

from netcore.demux import PacketKind, classify
from netcore.errors import ParseError
from netcore.net import Address, Receive, Transmit
from netcore.stun.attributes import NONCE, PASSWORD_ALGORITHMS as PASSWORD_ALGORITHMS_ATTR, REALM, SOFTWARE, \
    XOR_MAPPED_ADDRESS
from netcore.stun.message import BINDING, Message, MessageClass, RequestRead, read_request
from netcore.stun.server import binding_success, unknown_attributes_error
from netcore.turn import wire
from netcore.turn.allocation import Allocation, Channel, add_relay_counts, family_of, relay_counts, transport_of
from netcore.turn.auth import (
    PASSWORD_ALGORITHMS,
    Authenticated,
    Credentials,
    NonceIssuer,
    Refused,
    UnauthorizedLimiter,
    verify_request,
)
from netcore.turn.policy import PeerPolicy
from netcore.turn.server_config import RelayProvider, ServerConfig, ServerStats
from netcore.turn.server_events import (AllocationDeleted, AllocationEvent, AllocationGranted, AllocationRenewed,
                                        TurnServerEvent)
from netcore.turn.tcp_relay import TcpRelay

__all__ = [
    "TurnServer",
    "ServerConfig",
    "ServerStats",
    "RelayProvider",
    "Allocation",
    "AllocationGranted",
    "AllocationRenewed",
    "AllocationDeleted",
    "AllocationEvent",
    "TurnServerEvent",
]

_CHANNEL_HEADER = struct.Struct("!HH")
# RFC 8489 section 6.3.1: a retransmitted request gets the answer the first one got, which a server
# meets by remembering the transaction ids it answered over the last 40 seconds with their answers
# (over UDP a client sends its last retransmission 31.5 s after the first and gives up at 39.5 s,
# section 6.2.1 with the default RTO).
RETRANSMISSION_WINDOW = 40.0
_REQUEST = MessageClass.REQUEST
_INDICATION = MessageClass.INDICATION


class TurnServer:
    """Sans-IO TURN server: allocations, permissions, channels, authentication, quotas."""

    def __init__(self, config: ServerConfig, relays: RelayProvider, *,
                 random: Callable[[int], bytes] = os.urandom, wallclock_offset: float = 0.0) -> None:
        self.config = config
        self.relays = relays
        self.wallclock_offset = wallclock_offset  # unix time = now + wallclock_offset (REST API expiries)
        self.stats = ServerStats()
        self.nonces = NonceIssuer(random(32), config.nonce_lifetime)
        self.allocations: dict[tuple[Address, Address], Allocation] = {}  # (listener, client) ->
        self.clients: dict[Address, dict[Address, Allocation]] = {}  # listener -> client ->
        self.by_relayed: dict[Address, Allocation] = {}
        self.per_user: dict[str, int] = {}
        # The Allocates answered within RETRANSMISSION_WINDOW, for their retransmissions:
        # (listener, client) -> (transaction id, answer, when). Kept here rather than on the allocation, which
        # lives for minutes or hours after the last retransmission can come.
        self._answers: dict[tuple[Address, Address], tuple[bytes, bytes, float]] = {}
        # EVEN-PORT reservations: token -> (relayed, until, username); they count in per_user.
        self._reservations: dict[bytes, tuple[Address, float, str]] = {}
        self._random = random
        self.tcp = TcpRelay(self, random)  # RFC 6062
        self._transmit: deque[Transmit] = deque()
        self._events: deque[TurnServerEvent] = deque()
        self._next_sweep: float | None = None
        self.stream_listeners: set[Address] = set()  # listeners that are TCP or TLS
        self._changed: set[Allocation] | None = None  # see watch_changes
        self.reconfigure(config)

    def reconfigure(self, config: ServerConfig) -> None:
        """Apply new users, secrets, realm and peer rules (SIGHUP); allocations stay."""
        self.config = config
        self.credentials = Credentials(config.realm, config.users, config.auth_secrets)
        self.policy = PeerPolicy(config.denied_peers, config.allowed_peers,
                                 allow_loopback=config.allow_loopback_peers)
        self.nonces.lifetime = config.nonce_lifetime
        self.unauthorized = UnauthorizedLimiter(config.unauthorized_rate, config.unauthorized_burst,
                                                config.max_rate_sources)
        # First bytes that start ChannelData here: RFC 9443's range (through the one
        # classifier), plus 0x50-0x7F when RFC 5766 channel numbers are accepted.
        self.channel_first_bytes = frozenset(
            b for b in range(256)
            if classify(bytes((b, 0))) is PacketKind.CHANNEL_DATA or 0x50 <= b <= config.channel_max >> 8)
        if self._changed is not None:
            self._changed.update(self.allocations.values())  # the bandwidth cap may have changed
        for allocation in self.allocations.values():  # peers now denied lose their permission
            for host in [h for h in allocation.permissions if not self.policy.allows(h)]:
                self._drop_permission(allocation, host)

    # -- inputs -------------------------------------------------------------------

    def handle_datagram(self, datagram: Receive, now: float) -> None:
        """A datagram that reached one of our addresses; never raises for bad input.

        To a relayed address, it is a peer's (RFC 8656 sections 11.3, 12.3);
        to a listener (``destination`` ``None`` stands for ``("", 0)``), a
        client's datagram or one stream frame. Listeners named in
        :attr:`stream_listeners` are TCP or TLS: ChannelData sent to their
        clients is padded to 4 bytes (section 12.5) and the allocation ends
        with the connection (:meth:`handle_connection_lost`).
        """
        destination = datagram.destination
        source = datagram.source
        if source is None:
            self.stats.parse_errors += 1
            return
        source = (source[0], source[1])
        if destination is None:
            destination = ("", 0)
        else:
            allocation = self.by_relayed.get(destination)
            if allocation is not None:
                self._peer_datagram(allocation, datagram.data, source, now)
                return
        data = datagram.data
        kind = datagram.kind
        if kind is PacketKind.CHANNEL_DATA or (data and data[0] in self.channel_first_bytes):
            self._client_channel_data(data, source, destination, now)
        elif kind is PacketKind.STUN:
            self._client_stun(data, source, destination, now)
        else:
            self.stats.parse_errors += 1

    def handle_client_stun(self, data: bytes, source: Address, listener: Address, now: float) -> None:
        """What ``handle_datagram(Receive(data, source, listener), now)`` does, for a datagram an adapter read
        on a UDP listener, ``source`` a ``(host, port)``: without the :class:`Receive` and its classification.

        Every request a server answers comes this way (the compiled data path hands them over with their
        socket and sender), and the object with its classification cost 0.5 us of the 15-20 a request
        costs the endpoint; anything but STUN takes the general path.
        """
        if not data or data[0] > 3:  # not STUN by its first byte (netcore.demux): ChannelData, garbage
            self.handle_datagram(Receive(data, source, listener), now)
            return
        allocation = self.by_relayed.get(listener)
        if allocation is not None:  # as handle_datagram: an address that is relayed is a peer's destination
            self._peer_datagram(allocation, data, source, now)
            return
        self._client_stun(data, source, listener, now)

    def _client_stun(self, data: bytes, source: Address, listener: Address, now: float) -> None:
        """A client's STUN message to ``listener``: parsed and handled, or counted as a parse error."""
        try:
            self._handle_message(read_request(data), source, listener, now)
        except ParseError:
            self.stats.parse_errors += 1

    def _peer_datagram(self, allocation: Allocation, data: bytes, peer: Address, now: float) -> None:
        """A datagram from ``peer`` to one of ``allocation``'s relayed addresses (sections 11.3, 12.3)."""
        route = allocation.peer_routes.get(peer)
        if route is None and peer[0] not in allocation.permissions:
            allocation.dropped += 1
            self.stats.dropped += 1
            return
        if self.config.max_bps and not allocation.take_tokens(len(data), now, self.config.max_bps):
            self.stats.bandwidth_dropped += 1
            return
        if route is not None:
            out = _CHANNEL_HEADER.pack(route.number, len(data)) + data
            if allocation.listener in self.stream_listeners and len(data) & 3:
                out += bytes(4 - (len(data) & 3))  # section 12.5: padded over streams
        else:
            indication = Message(wire.DATA, MessageClass.INDICATION, self._random(12))
            indication.add(wire.XOR_PEER_ADDRESS, peer).add(wire.DATA_ATTR, bytes(data))
            out = indication.encode()
        allocation.packets_to_client += 1
        allocation.bytes_to_client += len(data)
        self._transmit.append(Transmit(out, allocation.client, allocation.listener, transport_of(allocation.listener)))

    def handle_peer_connected(self, connection_id: int, ok: bool, now: float) -> None:
        """RFC 6062: the connection a Connect asked for is open (or failed); see :class:`TcpRelay`."""
        self.tcp.peer_connected(connection_id, ok, now)

    def handle_peer_connection(self, relayed: Address, peer: Address, now: float) -> int | None:
        """RFC 6062: a peer connected to ``relayed``; its CONNECTION-ID, or None to close it."""
        return self.tcp.peer_connection(relayed, peer, now)

    def handle_peer_connection_lost(self, connection_id: int, now: float) -> None:
        """RFC 6062: a peer or client data connection closed."""
        self.tcp.peer_connection_lost(connection_id, now)

    def handle_connection_lost(self, addr: Address, listener: Address, now: float) -> None:
        """The TCP/TLS connection of ``addr`` closed: its allocation goes with it (RFC 8656 section 3.1)."""
        allocation = self.allocations.get((listener, addr))
        if allocation is not None:
            self._delete(allocation, "closed")

    def handle_timeout(self, now: float) -> None:
        """Remove what has expired; the sweep runs at most every ``sweep_interval`` seconds."""
        for allocation in [a for a in self.allocations.values() if a.expiry <= now]:
            self._delete(allocation, "expired")
            self.stats.allocations_expired += 1
        for allocation in self.allocations.values():
            for host in [h for h, t in allocation.permissions.items() if t <= now]:
                self._drop_permission(allocation, host)
            for channel in [c for c in allocation.channels.values() if c.expiry <= now]:
                self._unbind(allocation, channel, now)
            if allocation.cooldown:
                for key in [k for k, (_, until) in allocation.cooldown.items() if until <= now]:
                    del allocation.cooldown[key]  # type: ignore[attr-defined]
        for key in [k for k, (_, _, at) in self._answers.items() if at + RETRANSMISSION_WINDOW <= now]:
            del self._answers[key]
        self.tcp.expire(now)
        for token in [t for t, (_, until, _) in self._reservations.items() if until <= now]:
            self._release_reservation(token, close=True)
        self.unauthorized.sweep(now)
        busy = self.allocations or len(self.unauthorized) or self._reservations or len(self.tcp) or self._answers
        self._next_sweep = now + self.config.sweep_interval if busy else None

    def close(self, now: float) -> None:
        """Delete every allocation (shutdown); the events say what each carried."""
        for allocation in list(self.allocations.values()):
            self._delete(allocation, "shutdown")
        for token in list(self._reservations):
            self._release_reservation(token, close=True)

    # -- for the composed parts (TcpRelay) ------------------------------------------

    def send(self, transmit: Transmit) -> None:
        self._transmit.append(transmit)

    def emit(self, event: TurnServerEvent) -> None:
        self._events.append(event)

    def wake(self, now: float) -> None:
        """Make sure the sweep runs: something now exists that expires."""
        if self._next_sweep is None:
            self._next_sweep = now + self.config.sweep_interval

    # -- outputs ------------------------------------------------------------------

    def poll_transmit(self) -> Transmit | None:
        return self._transmit.popleft() if self._transmit else None

    def poll_event(self) -> TurnServerEvent | None:
        return self._events.popleft() if self._events else None

    def next_deadline(self) -> float | None:
        return self._next_sweep

    def watch_changes(self) -> None:
        """Start recording which allocations change, for :meth:`poll_changed_allocations`."""
        if self._changed is None:
            self._changed = set(self.allocations.values())

    def poll_changed_allocations(self) -> set[Allocation]:
        """Allocations whose channels, permissions or existence changed since the last call.

        A deleted allocation is in the set too (it is no longer in
        :attr:`allocations`). Only after :meth:`watch_changes`; a caller that
        watches must poll after every input, which keeps the set bounded.
        """
        changed, self._changed = self._changed, set()
        return changed if changed is not None else set()

    def _touch(self, allocation: Allocation) -> None:
        """A channel or permission of ``allocation`` changed: republish its routes, tell a watcher."""
        allocation.publish_routes()
        if self._changed is not None:
            self._changed.add(allocation)

    def allocation(self, client: Address, listener: Address = ("", 0)) -> Allocation | None:
        return self.allocations.get((listener, client))

    # -- ChannelData from the client (section 12.4) ---------------------------------

    def _client_channel_data(self, data: bytes, addr: Address, listener: Address, now: float) -> None:
        allocation = self.clients.get(listener, {}).get(addr)
        if allocation is None or len(data) < 4:
            self.stats.dropped += 1
            return
        number, length = _CHANNEL_HEADER.unpack_from(data)
        route = allocation.routes.get(number)
        if route is None or length > len(data) - 4:
            allocation.dropped += 1
            self.stats.dropped += 1
            return
        if self.config.max_bps and not allocation.take_tokens(length, now, self.config.max_bps):
            self.stats.bandwidth_dropped += 1
            return
        allocation.packets_to_peer += 1
        allocation.bytes_to_peer += length
        self._transmit.append(Transmit(bytes(data[4 : 4 + length]), route.peer, route.relayed))

    def _relay_to_peer(self, allocation: Allocation, payload: bytes, peer: Address, now: float) -> None:
        if peer[0] not in allocation.permissions:
            allocation.dropped += 1
            self.stats.dropped += 1
            return
        if self.config.max_bps and not allocation.take_tokens(len(payload), now, self.config.max_bps):
            self.stats.bandwidth_dropped += 1
            return
        relayed = allocation.relayed_for(family_of(peer[0]))
        if relayed is None:
            self.stats.dropped += 1
            return
        allocation.packets_to_peer += 1
        allocation.bytes_to_peer += len(payload)
        self._transmit.append(Transmit(bytes(payload), peer, relayed))

    # -- STUN messages ----------------------------------------------------------------

    def _handle_message(self, read: RequestRead, addr: Address, listener: Address, now: float) -> None:
        """A parsed STUN message from a client, with what :func:`read_request` read of it."""
        message, fingerprint, unknown, integrity, texts = read
        if fingerprint is False:
            self.stats.parse_errors += 1  # RFC 8489 section 7.3: not STUN, drop
            return
        message_class = message.message_class
        if message_class != _REQUEST:
            if message_class == _INDICATION and message.method == wire.SEND:
                self._send_indication(message, addr, listener, now)
            return  # other indications, and stray responses, are dropped
        self.stats.requests += 1
        if unknown:
            self._count_error(420)
            self._transmit.append(Transmit(unknown_attributes_error(message, list(unknown)), addr, listener,
                                           transport_of(listener)))
            return
        method = message.method
        if method == BINDING:
            self._transmit.append(Transmit(binding_success(message, addr, self.config.software), addr, listener,
                                           transport_of(listener)))
            return
        handler = self._HANDLERS.get(method)
        part: object = self
        if handler is None:
            handler = self._TCP_HANDLERS.get(method)
            part = self.tcp
        if handler is None:
            self.refuse(message, addr, listener, Refused(400, "Bad Request"), None)
            return
        auth = self._authenticate(message, integrity, texts, addr, listener, now)
        if auth is None:
            return
        try:
            response = handler(part, message, auth, addr, listener, now)  # None: answered later
        except Refused as refused:
            self.refuse(message, addr, listener, refused, auth)
            return
        except ParseError:
            self.stats.parse_errors += 1
            self.refuse(message, addr, listener, Refused(400, "Bad Request"), auth)
            return
        if response is not None:
            self._transmit.append(Transmit(response, addr, listener, transport_of(listener)))

    def sign(self, response: Message, request: Message, auth: Authenticated | None) -> bytes:
        """``response`` encoded as RFC 8489 section 9.2.4 asks: with the request's MAC kind and key, and a
        FINGERPRINT when the request had one."""
        fingerprint = request.has_fingerprint
        if auth is None:
            return response.encode(fingerprint=fingerprint)
        if auth.sha256:
            return response.encode(integrity_sha256_key=auth.key, fingerprint=fingerprint)
        return response.encode(auth.key, fingerprint=fingerprint)

    def sign_success(self, request: Message, auth: Authenticated, *attributes: tuple[int, Any]) -> bytes:
        """``sign(request.response()`` with ``attributes`` added ``, request, auth)``: the same bytes, in one
        call into the codec (:meth:`Message.encode_response`) for the answers a server gives most."""
        if auth.sha256:
            return request.encode_response(attributes, integrity_sha256_key=auth.key,
                                           fingerprint=request.has_fingerprint)
        return request.encode_response(attributes, auth.key, fingerprint=request.has_fingerprint)

    def _count_error(self, code: int) -> None:
        self.stats.by_error[code] = self.stats.by_error.get(code, 0) + 1

    def refuse(self, request: Message, addr: Address, listener: Address, refused: Refused,
               auth: Authenticated | None) -> None:
        self._count_error(refused.code)
        response = request.error_response(refused.code, refused.reason)
        for attr_type, value in refused.extra:
            response.add(attr_type, value)
        self._transmit.append(Transmit(self.sign(response, request, auth), addr, listener, transport_of(listener)))

    # -- authentication (RFC 8489 section 9.2.4) ----------------------------------------

    def _authenticate(self, request: Message, integrity: int, texts: tuple | None, addr: Address, listener: Address,
                      now: float) -> Authenticated | None:
        """The sender's credentials, or None after queuing the error answer (401, 438, 400); ``integrity`` and
        ``texts`` as :func:`read_request` gives them."""
        config = self.config
        try:
            return verify_request(request, addr, now, now + self.wallclock_offset, config.realm,
                                  self.credentials, self.nonces, integrity, texts)
        except Refused as refused:
            if refused.code == 401:
                self.stats.auth_failures += 1
                if not self.unauthorized.allow(addr[0], now):
                    self.stats.unauthorized_rate_limited += 1
                    return None
                if self._next_sweep is None:
                    self._next_sweep = now + config.sweep_interval
            elif refused.code == 438:
                self.stats.stale_nonces += 1
            if refused.code in (401, 438):
                refused.extra = [
                    (REALM, config.realm),
                    (NONCE, self.nonces.issue(addr, now)),
                    (PASSWORD_ALGORITHMS_ATTR, PASSWORD_ALGORITHMS),
                ]
            self.refuse(request, addr, listener, refused, None)
        except ParseError:
            self.stats.parse_errors += 1
            self.refuse(request, addr, listener, Refused(400, "Bad Request"), None)
        return None

    # -- Allocate (section 7.2) ------------------------------------------------------

    def _allocate(self, request: Message, auth: Authenticated, addr: Address, listener: Address, now: float) -> bytes:
        config = self.config
        existing = self.allocations.get((listener, addr))
        if existing is not None:
            answered = self._answers.get((listener, addr))
            if answered is not None and answered[0] == request.transaction_id and existing.username == auth.username:
                return answered[1]  # a retransmission, within RETRANSMISSION_WINDOW
            raise Refused(437, "Allocation Mismatch")
        transport = request.get(wire.REQUESTED_TRANSPORT)
        if transport is None:
            raise Refused(400, "Bad Request")
        if transport not in (wire.TRANSPORT_UDP, wire.TRANSPORT_TCP):
            raise Refused(442, "Unsupported Transport Protocol")
        if transport == wire.TRANSPORT_TCP and (
                listener not in self.stream_listeners or wire.DONT_FRAGMENT in request
                or wire.EVEN_PORT in request or wire.RESERVATION_TOKEN in request):
            raise Refused(400, "Bad Request")  # RFC 6062 section 5.1
        families = self._requested_families(request, addr)
        even_port = request.get(wire.EVEN_PORT)
        token = request.get(wire.RESERVATION_TOKEN)
        if token is not None and (even_port is not None or wire.REQUESTED_ADDRESS_FAMILY in request):
            raise Refused(400, "Bad Request")  # section 7.2, rules 4 and 5
        # Reservations count against the user's quota (an EVEN-PORT R=1 takes two places),
        # and using one's own reservation takes none more.
        held = self._reservations.get(token) if token is not None else None
        needed = 0 if held is not None and held[2] == auth.username else 1
        if even_port:
            needed += 1
        if self.per_user.get(auth.username, 0) + needed > config.user_quota \
                or len(self.allocations) >= config.total_quota:
            self.stats.quota_refusals += 1
            raise Refused(486, "Allocation Quota Reached")
        dont_fragment = wire.DONT_FRAGMENT in request
        relay_by_family: dict[int, Address] = {}
        address_error = None
        reservation: bytes | None = None
        if token is not None:
            reserved = self._release_reservation(token, close=False)
            if reserved is None:
                raise Refused(508, "Insufficient Capacity")  # section 7.2: token not valid
            relay_by_family[family_of(reserved[0])] = reserved
            families = []
        for index, family in enumerate(families):
            if family not in self.relays.families:
                if index == 0:
                    raise Refused(440, "Address Family not Supported")
                address_error = (family, 440, "Address Family not Supported")
                continue
            if index == 0 and even_port:
                relayed, reservation = self._open_even_pair(family, dont_fragment, auth.username, now)
            else:
                relayed = self.relays.open_relay(family, transport=transport, even_port=even_port is not None,
                                                 dont_fragment=dont_fragment)
            if relayed is None:
                if index == 0:
                    self.stats.port_exhaustion += 1
                    raise Refused(508, "Insufficient Capacity")
                address_error = (family, 508, "Insufficient Capacity")
                continue
            relay_by_family[family] = relayed
        lifetime = self._lifetime(request, allocate=True)
        allocation = Allocation(listener, addr, auth.username, tuple(relay_by_family.values()), now + lifetime)
        attributes: list[tuple[int, Any]] = [(wire.XOR_RELAYED_ADDRESS, relayed) for relayed in allocation.relayed]
        if address_error is not None:
            attributes.append((wire.ADDRESS_ERROR_CODE, address_error))
        if reservation is not None:
            attributes.append((wire.RESERVATION_TOKEN, reservation))
        attributes.append((wire.LIFETIME, lifetime))
        attributes.append((XOR_MAPPED_ADDRESS, (addr[0], addr[1])))
        if config.software:
            attributes.append((SOFTWARE, config.software))
        allocation.transport = transport
        answer = self.sign_success(request, auth, *attributes)
        self._answers[(listener, addr)] = (request.transaction_id, answer, now)
        self.allocations[(listener, addr)] = allocation
        self.clients.setdefault(listener, {})[addr] = allocation
        for relayed in allocation.relayed:
            self.by_relayed[relayed] = allocation
        self._count_user(auth.username, 1)
        self.stats.allocations_total += 1
        if self._next_sweep is None:
            self._next_sweep = now + config.sweep_interval
        self._events.append(AllocationGranted(addr, listener, auth.username, allocation.relayed, lifetime))
        return answer

    def _open_even_pair(self, family: int, dont_fragment: bool, username: str,
                        now: float) -> tuple[Address | None, bytes | None]:
        """An even port, with the next one held under a RESERVATION-TOKEN (section 7.2, EVEN-PORT R=1)."""
        if len(self._reservations) >= self.config.total_quota:
            return None, None
        for _ in range(8):
            relayed = self.relays.open_relay(family, even_port=True, dont_fragment=dont_fragment)
            if relayed is None:
                return None, None
            following = self.relays.open_relay(family, port=relayed[1] + 1, dont_fragment=dont_fragment)
            if following is not None:
                token = self._random(8)
                self._reservations[token] = (following, now + self.config.reservation_lifetime, username)
                self._count_user(username, 1)
                return relayed, token
            self.relays.close_relay(relayed)
        return None, None

    @staticmethod
    def _requested_families(request: Message, addr: Address) -> list[int]:
        requested = request.get(wire.REQUESTED_ADDRESS_FAMILY)
        additional = request.get(wire.ADDITIONAL_ADDRESS_FAMILY)
        if requested is not None and additional is not None:
            raise Refused(400, "Bad Request")  # RFC 8656 section 7.2, rule 6
        if additional is not None:
            if additional != wire.FAMILY_IPV6:
                raise Refused(400, "Bad Request")
            return [wire.FAMILY_IPV4, wire.FAMILY_IPV6]
        if requested is None:
            return [wire.FAMILY_IPV4]  # section 7.2: IPv4 by default
        if requested not in (wire.FAMILY_IPV4, wire.FAMILY_IPV6):
            raise Refused(440, "Address Family not Supported")
        return [requested]

    def _lifetime(self, request: Message, allocate: bool) -> int:
        config = self.config
        requested = request.get(wire.LIFETIME)
        if requested is None:
            return config.default_lifetime
        desired = requested if requested < config.max_lifetime else config.max_lifetime
        if desired == 0 and not allocate:
            return 0
        return desired if desired > config.default_lifetime else config.default_lifetime

    def own_allocation(self, auth: Authenticated, addr: Address, listener: Address) -> Allocation:
        """The allocation of ``addr`` on ``listener``, if ``auth`` owns it; raises :class:`Refused` (437, 441)."""
        allocation = self.allocations.get((listener, addr))
        if allocation is None:
            raise Refused(437, "Allocation Mismatch")
        if allocation.username != auth.username:
            raise Refused(441, "Wrong Credentials")
        return allocation

    # -- Refresh (section 7.3) --------------------------------------------------------

    def _refresh(self, request: Message, auth: Authenticated, addr: Address, listener: Address, now: float) -> bytes:
        allocation = self.own_allocation(auth, addr, listener)
        family = request.get(wire.REQUESTED_ADDRESS_FAMILY)
        if family is not None and allocation.relayed_for(family) is None:
            raise Refused(443, "Peer Address Family Mismatch")
        lifetime = self._lifetime(request, allocate=False)
        if lifetime == 0:
            self._delete(allocation, "deleted")
        else:
            allocation.expiry = now + lifetime
            self._events.append(AllocationRenewed(addr, listener, auth.username, lifetime))
        return self.sign_success(request, auth, (wire.LIFETIME, lifetime))

    # -- CreatePermission (section 9) ----------------------------------------------------

    def check_peer(self, allocation: Allocation, peer: Address) -> Address:
        """Check one XOR-PEER-ADDRESS: family (443) and policy (403)."""
        if allocation.relayed_for(family_of(peer[0])) is None:
            raise Refused(443, "Peer Address Family Mismatch")
        if not self.policy.allows(peer[0]):
            self.stats.denied_peers += 1
            raise Refused(403, "Forbidden")
        return peer

    def _create_permission(self, request: Message, auth: Authenticated, addr: Address, listener: Address,
                           now: float) -> bytes:
        allocation = self.own_allocation(auth, addr, listener)
        peers = request.get_all(wire.XOR_PEER_ADDRESS)
        if not peers:
            raise Refused(400, "Bad Request")
        hosts = {self.check_peer(allocation, peer)[0] for peer in peers}  # all or nothing
        new = [h for h in hosts if h not in allocation.permissions]
        if len(allocation.permissions) + len(new) > self.config.max_permissions:
            raise Refused(508, "Insufficient Capacity")
        expiry = now + self.config.permission_lifetime
        for host in hosts:
            allocation.permit(host, expiry)
        if new:
            self._touch(allocation)
        return self.sign_success(request, auth)

    # -- ChannelBind (section 11) --------------------------------------------------------

    def _channel_bind(self, request: Message, auth: Authenticated, addr: Address, listener: Address, now: float) -> bytes:
        allocation = self.own_allocation(auth, addr, listener)
        if allocation.transport != wire.TRANSPORT_UDP:
            raise Refused(400, "Bad Request")  # RFC 6062 section 5.1: no channels on TCP allocations
        number = request.get(wire.CHANNEL_NUMBER)
        peer = request.get(wire.XOR_PEER_ADDRESS)
        if number is None or peer is None or not wire.CHANNEL_MIN <= number <= self.config.channel_max:
            raise Refused(400, "Bad Request")
        peer = self.check_peer(allocation, peer)  # the codec's (host, port)
        # Section 12: a number stays with one peer, and a peer with one number,
        # while bound and for 5 minutes after the binding expired.
        bound = allocation.channels.get(number)
        if bound is not None and bound.peer != peer:
            raise Refused(400, "Bad Request")
        other = allocation.peer_channels.get(peer)
        if other is not None and other.number != number:
            raise Refused(400, "Bad Request")
        cooldown = allocation.cooldown
        if cooldown:
            for key, value in ((number, peer), (peer, number)):
                cooling = cooldown.get(key)
                if cooling is not None and cooling[0] != value and cooling[1] > now:
                    raise Refused(400, "Bad Request")
        if bound is None:
            if len(allocation.channels) >= self.config.max_channels or \
                    len(allocation.permissions) >= self.config.max_permissions and peer[0] not in allocation.permissions:
                raise Refused(508, "Insufficient Capacity")
            bound = Channel(number, peer, 0.0)
            allocation.bind(bound)
            if cooldown:
                cooldown.pop(number, None)  # type: ignore[attr-defined]
                cooldown.pop(peer, None)  # type: ignore[attr-defined]
            changed = True
        else:
            changed = False
        bound.expiry = now + self.config.channel_lifetime
        permission = now + self.config.permission_lifetime  # section 11.2: also refresh the permission
        if allocation.permissions.get(peer[0], 0.0) < permission:
            changed = changed or peer[0] not in allocation.permissions
            allocation.permit(peer[0], permission)
        if changed:
            self._touch(allocation)  # after both: the route needs the channel and the permission
        return self.sign_success(request, auth)

    # -- Send indication (section 10.2) ------------------------------------------------------

    def _send_indication(self, message: Message, addr: Address, listener: Address, now: float) -> None:
        allocation = self.clients.get(listener, {}).get(addr)
        peer = message.get(wire.XOR_PEER_ADDRESS)
        data = message.get(wire.DATA_ATTR)
        if allocation is None or peer is None or data is None or allocation.transport != wire.TRANSPORT_UDP:
            self.stats.dropped += 1
            return
        if not self.policy.allows(peer[0]):
            self.stats.denied_peers += 1
            return
        self._relay_to_peer(allocation, data, (peer[0], peer[1]), now)

    # -- state changes ------------------------------------------------------------------------

    def _drop_permission(self, allocation: Allocation, host: str) -> None:
        del allocation.permissions[host]  # type: ignore[attr-defined]
        self._touch(allocation)

    def _unbind(self, allocation: Allocation, channel: Channel, now: float) -> None:
        del allocation.channels[channel.number]  # type: ignore[attr-defined]
        allocation.peer_channels.pop(channel.peer, None)  # type: ignore[attr-defined]
        self._touch(allocation)
        allocation.cool_down(channel, now + self.config.channel_cooldown)

    def _delete(self, allocation: Allocation, reason: str) -> None:
        if allocation.connections:  # RFC 6062 TCP allocations only
            for connection in self.tcp.of(allocation):
                self.tcp.close(connection, notify=True)
        del self.allocations[(allocation.listener, allocation.client)]
        allocation.clear_routes()  # a data path still holding the allocation relays nothing more
        if self._changed is not None:
            self._changed.add(allocation)  # a watcher forgets it (it is no longer in allocations)
        clients = self.clients.get(allocation.listener)
        if clients is not None:
            clients.pop(allocation.client, None)
            if not clients:
                del self.clients[allocation.listener]
        for relayed in allocation.relayed:
            self.by_relayed.pop(relayed, None)
            self.relays.close_relay(relayed)
        self._count_user(allocation.username, -1)
        relayed = relay_counts(allocation)
        add_relay_counts(self.stats, relayed)
        self._events.append(AllocationDeleted(
            allocation.client, allocation.listener, allocation.username, allocation.relayed, reason, *relayed))

    def _count_user(self, username: str, delta: int) -> None:
        """Allocations plus EVEN-PORT reservations held by ``username``, for the user quota."""
        count = self.per_user.get(username, 0) + delta
        if count > 0:
            self.per_user[username] = count
        else:
            self.per_user.pop(username, None)

    def _release_reservation(self, token: bytes, close: bool) -> Address | None:
        """End a reservation (its relayed address closed, or handed to an allocation); None if unknown."""
        reserved = self._reservations.pop(token, None)
        if reserved is None:
            return None
        relayed, _, username = reserved
        self._count_user(username, -1)
        if close:
            self.relays.close_relay(relayed)
        return relayed

    _HANDLERS = {
        wire.ALLOCATE: _allocate,
        wire.REFRESH: _refresh,
        wire.CREATE_PERMISSION: _create_permission,
        wire.CHANNEL_BIND: _channel_bind,
    }
    _TCP_HANDLERS = {
        wire.CONNECT: TcpRelay.connect,
        wire.CONNECTION_BIND: TcpRelay.connection_bind,
    }
