"""The TURN client, sans-IO (RFC 8656 sections 7-12).

One :class:`TurnClient` holds one allocation on one TURN server. It runs the
Allocate exchange through the 401 challenge (and a 438 stale nonce), keeps the
allocation, its permissions and its channel bindings fresh before they expire,
and turns application datagrams into Send indications or ChannelData and back.

It follows the contract of :mod:`netcore.net`: feed it what arrives from the
server with :meth:`TurnClient.handle_datagram` (a :class:`~netcore.net.Receive`;
over TCP or TLS one framed message at a time: see ``wire.StreamFramer``);
drain :meth:`TurnClient.poll_transmit` (a :class:`~netcore.net.Transmit`,
always to the server address) and :meth:`TurnClient.poll_event` (a
:class:`TurnClientEvent`; what peers sent arrives as :class:`DataReceived`);
call :meth:`TurnClient.handle_timeout` at :meth:`TurnClient.next_deadline`.
A :class:`netcore.driver.Driver` does all of that.
"""

from __future__ import annotations

import enum
import os
from collections import deque
from dataclasses import dataclass
from typing import Callable

from netcore.demux import PacketKind
from netcore.errors import UsageError
from netcore.net import Address, Event, Receive, Transmit, Transport
from netcore.stun.attributes import ERROR_CODE, NONCE, REALM, SOFTWARE, USERNAME, XOR_MAPPED_ADDRESS
from netcore.stun.credentials import long_term_key
from netcore.stun.errors import StunParseError
from netcore.stun.message import Message, MessageClass
from netcore.stun.transaction import (
    StunClient,
    TransactionFailed,
    TransactionSucceeded,
    TransactionTimedOut,
)
from netcore.turn import wire
from netcore.turn.errors import TurnParseError
from netcore.turn.wire import encode_channel_data, parse_channel_data

__all__ = [
    "TurnClient",
    "TurnClientState",
    "TurnClientEvent",
    "AllocationCreated",
    "AllocationFailed",
    "AllocationRefreshed",
    "AllocationLost",
    "AllocationClosed",
    "PermissionCreated",
    "PermissionFailed",
    "ChannelBound",
    "ChannelBindFailed",
    "DataReceived",
]

PERMISSION_LIFETIME = 300.0  # RFC 8656 section 9
CHANNEL_LIFETIME = 600.0  # section 12
REFRESH_MARGIN = 60.0  # refresh this long before expiry
PENDING_PER_PEER = 64  # datagrams held while a permission is being installed
MAX_AUTH_RETRIES = 2


class TurnClientState(enum.Enum):
    """Where the one allocation of a :class:`TurnClient` stands."""

    NEW = "new"
    ALLOCATING = "allocating"
    ALLOCATED = "allocated"
    CLOSING = "closing"
    CLOSED = "closed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class TurnClientEvent(Event):
    """Base of the events of the TURN client."""


@dataclass(frozen=True, slots=True)
class AllocationCreated(TurnClientEvent):
    """The server granted our allocation (RFC 8656 section 7.3)."""

    relayed_address: Address
    mapped_address: Address | None
    lifetime: int


@dataclass(frozen=True, slots=True)
class AllocationFailed(TurnClientEvent):
    code: int | None  # None when the server never answered
    reason: str


@dataclass(frozen=True, slots=True)
class AllocationRefreshed(TurnClientEvent):
    lifetime: int


@dataclass(frozen=True, slots=True)
class AllocationLost(TurnClientEvent):
    """A Refresh failed: the allocation is gone on the server (or will be soon)."""

    code: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class AllocationClosed(TurnClientEvent):
    """The allocation was deleted (or never made) after :meth:`TurnClient.close`."""


@dataclass(frozen=True, slots=True)
class PermissionCreated(TurnClientEvent):
    peer_host: str


@dataclass(frozen=True, slots=True)
class PermissionFailed(TurnClientEvent):
    peer_host: str
    code: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class ChannelBound(TurnClientEvent):
    peer: Address
    channel_number: int


@dataclass(frozen=True, slots=True)
class ChannelBindFailed(TurnClientEvent):
    peer: Address
    code: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class DataReceived(TurnClientEvent):
    """Application data a peer sent to our relayed address."""

    peer: Address
    data: bytes


class _Purpose(enum.Enum):
    """What a transaction in progress was for."""

    ALLOCATE = enum.auto()
    REFRESH = enum.auto()
    PERMISSION = enum.auto()
    CHANNEL = enum.auto()
    CLOSE = enum.auto()



@dataclass(slots=True)
class _Pending:
    """A request in progress: what it was for, and what to resend after a challenge."""

    purpose: _Purpose
    method: int
    attributes: list[tuple[int, object]]
    retries: int


class _Permission:
    __slots__ = ("installed", "pending", "refresh_at", "in_flight")

    def __init__(self) -> None:
        self.installed = False
        self.pending: deque[tuple[bytes, Address]] = deque(maxlen=PENDING_PER_PEER)
        self.refresh_at = 0.0
        self.in_flight = False


class _Channel:
    __slots__ = ("number", "peer", "bound", "refresh_at", "in_flight")

    def __init__(self, number: int, peer: Address) -> None:
        self.number = number
        self.peer = peer
        self.bound = False
        self.refresh_at = 0.0
        self.in_flight = False


class TurnClient:
    """One allocation on one TURN server."""

    def __init__(
        self,
        server: Address,
        username: str,
        password: str,
        *,
        lifetime: int = 600,
        requested_family: int | None = None,
        reliable: bool = False,
        software: str | None = None,
        random: Callable[[int], bytes] = os.urandom,
        rto: float = 0.5,
    ) -> None:
        self.server = server
        self.username = username
        self.password = password
        self.lifetime = lifetime
        self.requested_family = requested_family
        self.reliable = reliable
        self.software = software
        self._random = random
        self._stun = StunClient(rto=rto)
        self._transmit: deque[bytes] = deque()
        self._transport = Transport.TCP if reliable else Transport.UDP
        self._events: deque[TurnClientEvent] = deque()
        self._purpose: dict[bytes, _Pending] = {}
        self._realm: str | None = None
        self._nonce: str | None = None
        self._key: bytes | None = None
        self.relayed_address: Address | None = None
        self.mapped_address: Address | None = None
        self.state = TurnClientState.NEW
        self._refresh_at: float | None = None
        self._permissions: dict[str, _Permission] = {}
        self._channels_by_peer: dict[Address, _Channel] = {}
        self._channels_by_number: dict[int, _Channel] = {}
        self._next_channel = wire.CHANNEL_MIN
        self.parse_errors = 0

    # -- requests -------------------------------------------------------------------

    def _request(self, method: int, purpose: int, now: float,
                 attributes: list[tuple[int, object]], retries: int = 0) -> None:
        request = Message(method, MessageClass.REQUEST, self._random(12))
        for attr_type, value in attributes:
            request.add(attr_type, value)
        key = None
        if self._key is not None:
            request.add(USERNAME, self.username).add(REALM, self._realm).add(NONCE, self._nonce)
            key = self._key
        if self.software:
            request.add(SOFTWARE, self.software)
        tid = self._stun.start(request, self.server, now, integrity_key=key, fingerprint=True,
                               long_term=True, reliable=self.reliable)
        self._purpose[tid] = _Pending(purpose, method, attributes, retries)
        self._flush_stun()

    def allocate(self, now: float) -> None:
        """Start the Allocate exchange (section 7.1)."""
        if self.state is not TurnClientState.NEW:
            raise UsageError(f"allocate() in state {self.state.value}")
        self.state = TurnClientState.ALLOCATING
        attributes: list[tuple[int, object]] = [
            (wire.REQUESTED_TRANSPORT, wire.TRANSPORT_UDP),
            (wire.LIFETIME, self.lifetime),
        ]
        if self.requested_family is not None:
            attributes.append((wire.REQUESTED_ADDRESS_FAMILY, self.requested_family))
        self._request(wire.ALLOCATE, _Purpose.ALLOCATE, now, attributes)

    def refresh(self, now: float, lifetime: int | None = None) -> None:
        """Refresh the allocation now (section 8); it is also done before expiry on its own."""
        self._require_allocated()
        self._refresh_at = None
        value = self.lifetime if lifetime is None else lifetime
        self._request(wire.REFRESH, _Purpose.REFRESH, now, [(wire.LIFETIME, value)])

    def close(self, now: float) -> None:
        """Delete the allocation: Refresh with LIFETIME 0."""
        if self.state is not TurnClientState.ALLOCATED:
            self.state = TurnClientState.CLOSED
            self._events.append(AllocationClosed())
            return
        self.state = TurnClientState.CLOSING
        self._refresh_at = None
        self._request(wire.REFRESH, _Purpose.CLOSE, now, [(wire.LIFETIME, 0)])

    def create_permission(self, peer_hosts: list[str], now: float) -> None:
        """Install permissions for ``peer_hosts`` in one CreatePermission (section 9)."""
        self._require_allocated()
        fresh = []
        for host in peer_hosts:
            permission = self._permissions.setdefault(host, _Permission())
            if not permission.in_flight:
                permission.in_flight = True
                fresh.append(host)
        if fresh:
            self._request(wire.CREATE_PERMISSION, _Purpose.PERMISSION, now,
                          [(wire.XOR_PEER_ADDRESS, (host, 0)) for host in fresh])

    def bind_channel(self, peer: Address, now: float) -> int:
        """Bind a channel to ``peer`` (section 12); returns its number."""
        self._require_allocated()
        peer = (peer[0], peer[1])
        channel = self._channels_by_peer.get(peer)
        if channel is None:
            if self._next_channel > wire.CHANNEL_MAX:
                raise UsageError("all 4096 channel numbers are in use")
            channel = _Channel(self._next_channel, peer)
            self._next_channel += 1
            self._channels_by_peer[peer] = channel
            self._channels_by_number[channel.number] = channel
        if not channel.in_flight:
            channel.in_flight = True
            self._request(wire.CHANNEL_BIND, _Purpose.CHANNEL, now,
                          [(wire.CHANNEL_NUMBER, channel.number), (wire.XOR_PEER_ADDRESS, peer)])
        return channel.number

    def _require_allocated(self) -> None:
        if self.state is not TurnClientState.ALLOCATED:
            raise UsageError(f"no allocation (state {self.state.value})")

    # -- data -------------------------------------------------------------------------

    def send_to(self, data: bytes, peer: Address, now: float) -> None:
        """Relay ``data`` to ``peer``: ChannelData once a channel is bound, else a Send indication.

        A first datagram to a new peer host installs a permission; datagrams
        wait for it (at most 64 per host; older ones are dropped first).
        """
        self._require_allocated()
        channel = self._channels_by_peer.get(peer)
        if channel is not None and channel.bound:
            self._transmit.append(encode_channel_data(channel.number, data, pad=self.reliable))
            return
        permission = self._permissions.get(peer[0])
        if permission is None or not permission.installed:
            if permission is None or not permission.in_flight:
                self.create_permission([peer[0]], now)
            self._permissions[peer[0]].pending.append((data, peer))
            return
        self._send_indication(data, peer)

    def _send_indication(self, data: bytes, peer: Address) -> None:
        indication = Message(wire.SEND, MessageClass.INDICATION, self._random(12))
        indication.add(wire.XOR_PEER_ADDRESS, peer).add(wire.DATA_ATTR, data)
        self._transmit.append(indication.encode(fingerprint=True))

    # -- inputs -----------------------------------------------------------------------

    def handle_datagram(self, datagram: Receive, now: float) -> None:
        """Feed a datagram from the server; malformed ones are counted in ``parse_errors``, never raised."""
        data = datagram.data
        kind = datagram.kind
        if kind is PacketKind.CHANNEL_DATA:
            try:
                number, payload = parse_channel_data(data)
            except TurnParseError:
                self.parse_errors += 1
                return
            channel = self._channels_by_number.get(number)
            if channel is not None:
                self._events.append(DataReceived(channel.peer, payload))
            return
        if kind is not PacketKind.STUN:
            self.parse_errors += 1
            return
        try:
            message = Message.parse(data)
            if message.method == wire.DATA and message.message_class == MessageClass.INDICATION:
                self._on_data_indication(message)
                return
        except StunParseError:
            self.parse_errors += 1
            return
        source = datagram.source if datagram.source is not None else self.server
        if self._stun.handle_message(message, source, now):
            self._drain_stun(now)

    def _on_data_indication(self, message: Message) -> None:
        peer = message.get(wire.XOR_PEER_ADDRESS)
        payload = message.get(wire.DATA_ATTR)
        if peer is not None and payload is not None:
            self._events.append(DataReceived(peer, payload))

    def handle_timeout(self, now: float) -> None:
        self._stun.handle_timeout(now)
        self._drain_stun(now)
        if self.state is not TurnClientState.ALLOCATED:
            return
        if self._refresh_at is not None and now >= self._refresh_at:
            self.refresh(now)
        for host, permission in self._permissions.items():
            if permission.installed and not permission.in_flight and now >= permission.refresh_at:
                permission.in_flight = True
                self._request(wire.CREATE_PERMISSION, _Purpose.PERMISSION, now, [(wire.XOR_PEER_ADDRESS, (host, 0))])
        for channel in self._channels_by_peer.values():
            if channel.bound and not channel.in_flight and now >= channel.refresh_at:
                channel.in_flight = True
                self._request(wire.CHANNEL_BIND, _Purpose.CHANNEL, now,
                              [(wire.CHANNEL_NUMBER, channel.number), (wire.XOR_PEER_ADDRESS, channel.peer)])

    def _flush_stun(self) -> None:
        while (transmit := self._stun.poll_transmit()) is not None:
            self._transmit.append(transmit.data)

    def _drain_stun(self, now: float) -> None:
        while (event := self._stun.poll_event()) is not None:
            pending = self._purpose.pop(event.transaction_id, None)
            if pending is None:
                continue
            if isinstance(event, TransactionSucceeded):
                self._succeeded(pending, event.response, now)
            elif isinstance(event, TransactionFailed):
                self._failed(pending, event.response, now)
            elif isinstance(event, TransactionTimedOut):
                self._gave_up(pending, None, "no answer from the server")
        self._flush_stun()

    # -- outcomes ---------------------------------------------------------------------

    def _succeeded(self, pending: _Pending, response: Message, now: float) -> None:
        purpose, attributes = pending.purpose, pending.attributes
        if purpose is _Purpose.ALLOCATE:
            self.relayed_address = response.get(wire.XOR_RELAYED_ADDRESS)
            self.mapped_address = response.get(XOR_MAPPED_ADDRESS)
            lifetime = response.get(wire.LIFETIME, self.lifetime)
            self.state = TurnClientState.ALLOCATED
            self._schedule_refresh(lifetime, now)
            self._events.append(AllocationCreated(self.relayed_address, self.mapped_address, lifetime))
        elif purpose is _Purpose.REFRESH:
            lifetime = response.get(wire.LIFETIME, self.lifetime)
            self._schedule_refresh(lifetime, now)
            self._events.append(AllocationRefreshed(lifetime))
        elif purpose is _Purpose.CLOSE:
            self.state = TurnClientState.CLOSED
            self._events.append(AllocationClosed())
        elif purpose is _Purpose.PERMISSION:
            for _, (host, _port) in (a for a in attributes if a[0] == wire.XOR_PEER_ADDRESS):
                self._permission_installed(host, now)
        elif purpose is _Purpose.CHANNEL:
            peer = next(value for attr, value in attributes if attr == wire.XOR_PEER_ADDRESS)
            channel = self._channels_by_peer[peer]
            channel.in_flight = False
            channel.refresh_at = now + CHANNEL_LIFETIME - REFRESH_MARGIN
            first = not channel.bound
            channel.bound = True
            # A channel binding also installs or refreshes the permission (section 12).
            self._permission_installed(peer[0], now)
            if first:
                self._events.append(ChannelBound(peer, channel.number))

    def _permission_installed(self, host: str, now: float) -> None:
        permission = self._permissions.setdefault(host, _Permission())
        permission.in_flight = False
        first = not permission.installed
        permission.installed = True
        permission.refresh_at = now + PERMISSION_LIFETIME - REFRESH_MARGIN
        while permission.pending:
            data, peer = permission.pending.popleft()
            self.send_to(data, peer, now)
        if first:
            self._events.append(PermissionCreated(host))

    def _schedule_refresh(self, lifetime: int, now: float) -> None:
        margin = REFRESH_MARGIN if lifetime > 2 * REFRESH_MARGIN else lifetime / 2
        self._refresh_at = now + lifetime - margin

    def _failed(self, pending: _Pending, response: Message, now: float) -> None:
        try:
            code, reason = response.get(ERROR_CODE) or (None, "error response without ERROR-CODE")
        except StunParseError:
            code, reason = None, "malformed ERROR-CODE"
        # Sections 7.3 and 9.2.5 of RFC 8489: a 401 gives the realm and nonce to
        # sign with, a 438 a fresh nonce; retry, but only twice, so that
        # refused credentials end the exchange.
        if code in (401, 438) and pending.retries < MAX_AUTH_RETRIES and self._take_challenge(response):
            self._request(pending.method, pending.purpose, now, pending.attributes, pending.retries + 1)
            return
        self._gave_up(pending, code, reason)

    def _take_challenge(self, response: Message) -> bool:
        """Learn the realm and nonce of a 401 or 438; False if it carries none."""
        try:
            realm = response.get(REALM) or self._realm
            nonce = response.get(NONCE)
        except StunParseError:
            return False
        if realm is None or nonce is None:
            return False
        if realm != self._realm or self._key is None:
            self._key = long_term_key(self.username, realm, self.password)
        self._realm, self._nonce = realm, nonce
        return True

    def _gave_up(self, pending: _Pending, code: int | None, reason: str) -> None:
        purpose, attributes = pending.purpose, pending.attributes
        if purpose is _Purpose.ALLOCATE:
            self.state = TurnClientState.FAILED
            self._events.append(AllocationFailed(code, reason))
        elif purpose is _Purpose.REFRESH:
            self.state = TurnClientState.FAILED
            self._refresh_at = None
            self._events.append(AllocationLost(code, reason))
        elif purpose is _Purpose.CLOSE:
            self.state = TurnClientState.CLOSED
            self._events.append(AllocationClosed())
        elif purpose is _Purpose.PERMISSION:
            for attr, (host, _port) in attributes:
                if attr == wire.XOR_PEER_ADDRESS:
                    self._permissions.pop(host, None)
                    self._events.append(PermissionFailed(host, code, reason))
        elif purpose is _Purpose.CHANNEL:
            peer = next(value for attr, value in attributes if attr == wire.XOR_PEER_ADDRESS)
            channel = self._channels_by_peer.get(peer)
            if channel is not None:
                channel.in_flight = False
            self._events.append(ChannelBindFailed(peer, code, reason))

    # -- outputs ----------------------------------------------------------------------

    def poll_transmit(self) -> Transmit | None:
        """The next datagram to send; it always goes to the server, from the adapter's one socket."""
        return Transmit(self._transmit.popleft(), self.server, None, self._transport) if self._transmit else None

    def poll_event(self) -> TurnClientEvent | None:
        return self._events.popleft() if self._events else None

    def next_deadline(self) -> float | None:
        deadlines = [d for d in (self._stun.next_deadline(),) if d is not None]
        if self.state is TurnClientState.ALLOCATED:
            if self._refresh_at is not None:
                deadlines.append(self._refresh_at)
            deadlines += [p.refresh_at for p in self._permissions.values() if p.installed and not p.in_flight]
            deadlines += [c.refresh_at for c in self._channels_by_peer.values() if c.bound and not c.in_flight]
        return min(deadlines) if deadlines else None

    def channel_for(self, peer: Address) -> int | None:
        channel = self._channels_by_peer.get(peer)
        return channel.number if channel is not None and channel.bound else None
