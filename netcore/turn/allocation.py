"""One TURN allocation and the relay rule, published as a route table (RFC 8656 sections 9-12).

The rule of which datagram goes where lives here, once:

* ChannelData from the client on channel N goes to the channel's peer, from
  the relayed address of the peer's family, if N is bound *and* the peer's
  IP has a permission (sections 12.4 and 9);
* a datagram from a peer goes to the client as ChannelData if a channel is
  bound to that peer and its IP has a permission, as a Data indication if
  only the permission exists, and nowhere otherwise (sections 11.3, 12.3).

The allocation keeps that decision made in advance, as two plain dicts of
:class:`Route`: :attr:`Allocation.routes` (channel number -> route) and
:attr:`Allocation.peer_routes` (peer address -> route), rebuilt by
:meth:`Allocation.publish_routes` whenever a channel or a permission
changes. The core relays through them, and so do the adapters' data paths
(the Python fast path reads them with one dict lookup per packet; the
compiled one installs them), so that no path decides on its own. Dict
membership means "valid", within one sweep of the core's timer.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Sequence

from netcore.net import Address, Transport
from netcore.turn import wire

__all__ = ["Allocation", "Channel", "Route", "TokenBucket", "family_of", "transport_of", "RELAY_COUNTERS",
           "relay_counts", "add_relay_counts"]

# What an allocation relayed, each way: counted on the allocation, summed into the server's stats
# when it ends, and reported in its AllocationDeleted.
RELAY_COUNTERS = ("packets_to_peer", "bytes_to_peer", "packets_to_client", "bytes_to_client")


_get_relay_counts = attrgetter(*RELAY_COUNTERS)


def relay_counts(holder: object) -> tuple[int, ...]:
    """The :data:`RELAY_COUNTERS` of ``holder`` (an allocation, the server's stats, an event), in order."""
    return _get_relay_counts(holder)


def add_relay_counts(holder: object, counts: Sequence[int]) -> None:
    """Add ``counts`` (in :data:`RELAY_COUNTERS` order) to ``holder``'s relay counters."""
    if not any(counts):
        return  # an allocation that relayed nothing (or nothing since the last harvest)
    for name, count in zip(RELAY_COUNTERS, counts):
        setattr(holder, name, getattr(holder, name) + count)


_IPV4, _IPV6 = wire.FAMILY_IPV4, wire.FAMILY_IPV6


def family_of(host: str) -> int:
    """The STUN address family (1 IPv4, 2 IPv6) of an address in text form."""
    return wire.FAMILY_IPV6 if ":" in host else wire.FAMILY_IPV4


def transport_of(listener: Address) -> Transport:
    """What carries a listener's traffic: stream listeners are keyed ``(host, port, "tcp"|"tls")``."""
    if len(listener) > 2:
        return Transport.TLS if listener[2] == "tls" else Transport.TCP  # type: ignore[misc]
    return Transport.UDP


class Channel:
    """One channel binding (RFC 8656 section 12): a number, a peer, an expiry."""

    __slots__ = ("number", "peer", "expiry")

    def __init__(self, number: int, peer: Address, expiry: float) -> None:
        self.number = number
        self.peer = peer
        self.expiry = expiry


class Route:
    """A channel that relays: bound, with a permission for its peer, from ``relayed``."""

    __slots__ = ("number", "peer", "relayed")

    def __init__(self, number: int, peer: Address, relayed: Address) -> None:
        self.number = number
        self.peer = peer
        self.relayed = relayed

    def __repr__(self) -> str:
        return f"Route({self.number:#06x}, {self.peer} via {self.relayed})"


class TokenBucket:
    """The bandwidth cap of one allocation: ``rate`` bytes/s with one second of burst.

    One bucket per allocation, drawn on by everything it relays: ChannelData,
    Send and Data indications, RFC 6062 data connections. An adapter whose
    data path keeps a bucket elsewhere (the compiled one) puts an object with
    the same two methods in :attr:`Allocation.bucket`, so both draw on one.
    """

    __slots__ = ("tokens", "at")

    def __init__(self, tokens: float, now: float) -> None:
        self.tokens = tokens
        self.at = now

    def _refill(self, now: float, rate: float) -> float:
        tokens = self.tokens + (now - self.at) * rate
        self.at = now
        return rate if tokens > rate else tokens

    def take(self, size: int, now: float, rate: float) -> bool:
        """Take ``size`` tokens if there are that many; False means drop the datagram."""
        tokens = self._refill(now, rate)
        if tokens < size:
            self.tokens = tokens
            return False
        self.tokens = tokens - size
        return True

    def debit(self, size: int, now: float, rate: float) -> float:
        """Take ``size`` tokens even into debt (a byte stream cannot drop); seconds until it is repaid."""
        self.tokens = self._refill(now, rate) - size
        return -self.tokens / rate if self.tokens < 0 else 0.0


NO_CONNECTIONS: frozenset[int] = frozenset()  # Allocation.connections of every allocation without one


class Allocation:
    """The state of one allocation; :attr:`routes` and :attr:`peer_routes` are what data paths read."""

    __slots__ = (
        "listener", "client", "username", "transaction_id", "response", "relayed", "relay_by_family",
        "expiry", "permissions", "channels", "peer_channels", "cooldown", "routes", "peer_routes",
        *RELAY_COUNTERS, "bucket", "dropped", "transport", "connections",
    )

    def __init__(self, listener: Address, client: Address, username: str, transaction_id: bytes,
                 relay_by_family: dict[int, Address], expiry: float, now: float, burst: float) -> None:
        self.listener = listener
        self.client = client
        self.username = username
        self.transaction_id = transaction_id
        self.response = b""
        self.relay_by_family = relay_by_family
        self.relayed = tuple(relay_by_family.values())
        self.expiry = expiry
        self.permissions: dict[str, float] = {}  # peer IP -> expiry
        self.channels: dict[int, Channel] = {}  # channel number -> binding
        self.peer_channels: dict[Address, Channel] = {}  # peer (host, port) -> binding
        self.cooldown: dict[object, tuple[object, float]] = {}  # number or peer -> (other, until)
        self.routes: dict[int, Route] = {}  # channel number -> route, see publish_routes
        self.peer_routes: dict[Address, Route] = {}  # peer (host, port) -> route
        self.packets_to_peer = self.bytes_to_peer = 0
        self.packets_to_client = self.bytes_to_client = 0
        self.bucket = TokenBucket(burst, now)
        self.dropped = 0
        self.transport = wire.TRANSPORT_UDP
        # RFC 6062 connection ids of a TCP allocation. Shared and empty until its first connection (TcpRelay
        # makes the set): a set is 216 bytes, and one more object to free when the allocation ends.
        self.connections: set[int] | frozenset[int] = NO_CONNECTIONS

    def publish_routes(self) -> None:
        """Rebuild the route table from the channels and permissions (in place: readers hold the dicts)."""
        routes = self.routes
        peer_routes = self.peer_routes
        routes.clear()
        peer_routes.clear()
        if self.transport != wire.TRANSPORT_UDP:
            return  # RFC 6062 section 5.1: no channels on TCP allocations
        permissions = self.permissions
        relay_by_family = self.relay_by_family
        for number, channel in self.channels.items():
            peer = channel.peer
            host = peer[0]
            if host not in permissions:  # section 9: no permission, no relaying
                continue
            relayed = relay_by_family.get(_IPV6 if ":" in host else _IPV4)  # family_of, in line
            if relayed is not None:
                routes[number] = peer_routes[peer] = Route(number, peer, relayed)

    def take_tokens(self, size: int, now: float, rate: int) -> bool:
        """Draw ``size`` bytes on the allocation's one bandwidth bucket; False means drop."""
        return self.bucket.take(size, now, rate)
