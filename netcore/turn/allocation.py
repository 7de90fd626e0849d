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
changes (until the first route, both are the shared empty :data:`NONE_YET`).
The core relays through them, and so do the adapters' data paths (the
Python fast path reads them with one dict lookup per packet; the compiled
one installs them), so that no path decides on its own. Dict membership
means "valid", within one sweep of the core's timer.
"""

from __future__ import annotations

from operator import attrgetter
from types import MappingProxyType
from typing import Any, Mapping, Sequence

from netcore.net import Address, Transport
from netcore.turn import wire

__all__ = ["Allocation", "Channel", "Route", "TokenBucket", "family_of", "transport_of", "RELAY_COUNTERS",
           "relay_counts", "add_relay_counts", "NONE_YET"]

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

# The table of an allocation that has no entry of its kind yet: one shared, empty, read-only mapping. An
# allocation's permissions, channels, cooldowns and routes each get a dict of their own on their first entry
# (Allocation.permit, bind, cool_down, publish_routes): an empty dict is 64 bytes and one more object to free
# when the allocation ends, most allocations never cool a channel down, and a TCP one has no channel at all.
NONE_YET: Mapping[Any, Any] = MappingProxyType({})


class Allocation:
    """The state of one allocation; :attr:`routes` and :attr:`peer_routes` are what data paths read.

    Its tables are read as mappings; they are written only through its methods, which make each table's
    dict on its first entry (see :data:`NONE_YET`).
    """

    __slots__ = (
        "listener", "client", "username", "relayed", "expiry", "permissions", "channels", "peer_channels",
        "cooldown", "routes", "peer_routes", *RELAY_COUNTERS, "bucket", "dropped", "transport", "connections",
    )

    def __init__(self, listener: Address, client: Address, username: str, relayed: tuple[Address, ...],
                 expiry: float) -> None:
        self.listener = listener
        self.client = client
        self.username = username
        self.relayed = relayed  # one relayed address per family (RFC 6156), in the order they were asked for
        self.expiry = expiry
        self.permissions: Mapping[str, float] = NONE_YET  # peer IP -> expiry
        self.channels: Mapping[int, Channel] = NONE_YET  # channel number -> binding
        self.peer_channels: Mapping[Address, Channel] = NONE_YET  # peer (host, port) -> binding
        self.cooldown: Mapping[object, tuple[object, float]] = NONE_YET  # number or peer -> (other, until)
        self.routes: Mapping[int, Route] = NONE_YET  # channel number -> route, see publish_routes
        self.peer_routes: Mapping[Address, Route] = NONE_YET  # peer (host, port) -> route
        self.packets_to_peer = self.bytes_to_peer = 0
        self.packets_to_client = self.bytes_to_client = 0
        # The bandwidth bucket, made on the first draw (with a cap only; full then, as it would be by then).
        self.bucket: TokenBucket | Any | None = None
        self.dropped = 0
        self.transport = wire.TRANSPORT_UDP
        # RFC 6062 connection ids of a TCP allocation. Shared and empty until its first connection (TcpRelay
        # makes the set): a set is 216 bytes, and one more object to free when the allocation ends.
        self.connections: set[int] | frozenset[int] = NO_CONNECTIONS

    def relayed_for(self, family: int) -> Address | None:
        """The relayed address of ``family`` (1 IPv4, 2 IPv6), or None if the allocation has none."""
        for relayed in self.relayed:
            if family_of(relayed[0]) == family:
                return relayed
        return None

    def permit(self, host: str, expiry: float) -> None:
        """Install or refresh the permission for peer IP ``host`` (section 9)."""
        if self.permissions is NONE_YET:
            self.permissions = {}
        self.permissions[host] = expiry  # type: ignore[index]

    def bind(self, channel: Channel) -> None:
        """Add a channel binding (section 12), by number and by peer."""
        if self.channels is NONE_YET:
            self.channels = {}
            self.peer_channels = {}
        self.channels[channel.number] = channel  # type: ignore[index]
        self.peer_channels[channel.peer] = channel  # type: ignore[index]

    def cool_down(self, channel: Channel, until: float) -> None:
        """Hold an expired binding's number and peer for each other until ``until`` (section 12)."""
        if self.cooldown is NONE_YET:
            self.cooldown = {}
        self.cooldown[channel.number] = (channel.peer, until)  # type: ignore[index]
        self.cooldown[channel.peer] = (channel.number, until)  # type: ignore[index]

    def publish_routes(self) -> None:
        """Rebuild the route table from the channels and permissions (in place once made: readers hold the
        dicts; the first route makes them)."""
        routes = self.routes
        peer_routes = self.peer_routes
        if routes is not NONE_YET:
            routes.clear()  # type: ignore[attr-defined]
            peer_routes.clear()  # type: ignore[attr-defined]
        if self.transport != wire.TRANSPORT_UDP:
            return  # RFC 6062 section 5.1: no channels on TCP allocations
        permissions = self.permissions
        for number, channel in self.channels.items():
            peer = channel.peer
            host = peer[0]
            if host not in permissions:  # section 9: no permission, no relaying
                continue
            relayed = self.relayed_for(family_of(host))
            if relayed is not None:
                if routes is NONE_YET:
                    routes = self.routes = {}
                    peer_routes = self.peer_routes = {}
                routes[number] = peer_routes[peer] = Route(number, peer, relayed)  # type: ignore[index]

    def clear_routes(self) -> None:
        """Relay nothing more (the allocation ended): a data path still holding its dicts finds them empty."""
        if self.routes is not NONE_YET:
            self.routes.clear()  # type: ignore[attr-defined]
            self.peer_routes.clear()  # type: ignore[attr-defined]

    def take_tokens(self, size: int, now: float, rate: int) -> bool:
        """Draw ``size`` bytes on the allocation's one bandwidth bucket; False means drop."""
        return self.own_bucket(now, rate).take(size, now, rate)

    def debit_tokens(self, size: int, now: float, rate: int) -> float:
        """Draw ``size`` bytes on the bucket even into debt (a byte stream); seconds until it is repaid."""
        return self.own_bucket(now, rate).debit(size, now, rate)

    def own_bucket(self, now: float, rate: float) -> TokenBucket | Any:
        """The allocation's bucket, made full (one second of ``rate``) on the first draw."""
        bucket = self.bucket
        if bucket is None:
            bucket = self.bucket = TokenBucket(float(rate), now)
        return bucket
