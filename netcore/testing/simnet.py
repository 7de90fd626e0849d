"""A deterministic simulated network for sans-IO cores: virtual time, lossy links, NAT boxes.

Any core with the shape of docs/architecture.md runs on it: the network
delivers datagrams through :class:`Node` wrappers, drains the core's
``poll_transmit``/``poll_event`` and calls ``handle_timeout`` at its
``next_deadline``, all on one virtual clock (no real time passes, so a
30-second consent timeout takes milliseconds). One seed gives one run.

Topology: *realms* hold hosts. ``"public"`` is the Internet; each
:class:`Nat` owns an inside realm (named after it) and a public address in
its outside realm (NATs may nest). A datagram to an address outside its realm
goes to the realm's NAT, which maps it (RFC 4787 section 4.1) and sends it on;
one arriving at a NAT's public address is filtered (section 5) and forwarded
inside. Every host and NAT has a :class:`Link` (delay, jitter, loss,
reordering, duplication): a host's link applies to what it sends, a NAT's link to what
crosses the NAT either way; :meth:`Network.block` cuts the path
between two addresses of one realm and :attr:`Network.path_delay` slows it,
and :attr:`Network.path_loss` makes it lossy, for mid-call path tests.
A stream whose ends are not cores (RTP into a jitter buffer) crosses a
:class:`Link` through a :class:`OneWayPath` under its own loop.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import random
from dataclasses import dataclass, field
from typing import Any, Callable

from netcore.driver import Driver
from netcore.net import Address, Core, Event, Receive, Transmit

__all__ = ["Network", "Link", "Nat", "Behavior", "Node", "OneWayPath", "PUBLIC", "NAT_TYPES"]

PUBLIC = "public"


class Behavior(enum.Enum):
    """RFC 4787 mapping (section 4.1) and filtering (section 5) behaviours."""

    ENDPOINT_INDEPENDENT = "endpoint-independent"
    ADDRESS_DEPENDENT = "address-dependent"
    ADDRESS_AND_PORT_DEPENDENT = "address-and-port-dependent"


EIM = Behavior.ENDPOINT_INDEPENDENT
ADM = Behavior.ADDRESS_DEPENDENT
APDM = Behavior.ADDRESS_AND_PORT_DEPENDENT

# The classic names, as (mapping, filtering); "symmetric" is the APD mapping.
NAT_TYPES: dict[str, tuple[Behavior, Behavior] | None] = {
    "none": None,
    "full-cone": (EIM, EIM),
    "restricted-cone": (EIM, ADM),
    "port-restricted-cone": (EIM, APDM),
    "address-dependent": (ADM, ADM),
    "symmetric": (APDM, APDM),
}


@dataclass(slots=True)
class Link:
    """One-way properties applied each time a datagram crosses the link."""

    delay: float = 0.005
    jitter: float = 0.0  # uniform extra delay in [0, jitter)
    loss: float = 0.0  # probability of dropping
    reorder: float = 0.0  # probability of holding a datagram back by reorder_delay
    reorder_delay: float = 0.02
    duplicate: float = 0.0  # probability of delivering a second copy

    def sample(self, rng: random.Random) -> float | None:
        """The delay for one datagram, or None when it is lost."""
        if self.loss and rng.random() < self.loss:
            return None
        delay = self.delay + (rng.random() * self.jitter if self.jitter else 0.0)
        if self.reorder and rng.random() < self.reorder:
            delay += self.reorder_delay
        return delay

    def sample_copies(self, rng: random.Random, sent_at: float = 0.0) -> list[float]:
        """When the copies of one datagram sent at ``sent_at`` land: none
        (lost), one or two (with ``sent_at`` 0, their delays).

        Unlike :meth:`sample`, the loss, duplication and jitter draws are made
        whatever their probabilities (then the reorder draw, only when set):
        the draws depend on what happens to the datagram, not on which
        probabilities are zero, so a link whose small loss never strikes
        runs a seeded stream exactly as a lossless one.
        """
        copies = 0 if rng.random() < self.loss else 1
        if copies and rng.random() < self.duplicate:
            copies = 2
        landings = []
        for _ in range(copies):
            at = sent_at + self.delay + rng.random() * self.jitter
            if self.reorder and rng.random() < self.reorder:
                at += self.reorder_delay
            landings.append(at)
        return landings


class OneWayPath:
    """One sender's datagrams crossing a :class:`Link` to one receiver.

    For streams whose ends are not :class:`Node` cores (a media sender
    feeding a jitter buffer, driven by its own loop in virtual time):
    :meth:`send` samples each datagram's copies with
    :meth:`Link.sample_copies`, :meth:`next_arrival` says when the next
    one lands and :meth:`arrived` hands over those landed by ``now``, in
    arrival order.  A ``fifo`` path is one queue: jitter delays datagrams
    but never lets one overtake another.
    """

    def __init__(self, rng: random.Random, fifo: bool = True) -> None:
        self.rng = rng
        self.fifo = fifo
        self._arrivals: list[tuple[float, int, bytes]] = []
        self._count = itertools.count()
        self._tail = 0.0  # latest arrival so far, for a FIFO path
        self.sent = 0
        self.dropped = 0

    def send(self, data: bytes, at: float, link: Link) -> None:
        """``data`` leaves at virtual time ``at`` across ``link``."""
        self.sent += 1
        arrivals = link.sample_copies(self.rng, at)
        if not arrivals:
            self.dropped += 1
        for arrival in arrivals:
            if self.fifo:
                arrival = max(arrival, self._tail)
                self._tail = arrival
            heapq.heappush(self._arrivals, (arrival, next(self._count), data))

    def next_arrival(self) -> float | None:
        return self._arrivals[0][0] if self._arrivals else None

    def arrived(self, now: float) -> list[bytes]:
        """The datagrams landed by ``now`` (removed from the path)."""
        out = []
        while self._arrivals and self._arrivals[0][0] <= now:
            out.append(heapq.heappop(self._arrivals)[2])
        return out


class _Mapping:
    __slots__ = ("internal", "external", "contacted", "contacted_hosts", "last_used")

    def __init__(self, internal: Address, external: Address, now: float) -> None:
        self.internal = internal
        self.external = external
        self.contacted: set[Address] = set()
        self.contacted_hosts: set[str] = set()
        self.last_used = now


class Nat:
    """A NAT box with RFC 4787 mapping and filtering behaviours (UDP only)."""

    def __init__(self, name: str, public_ip: str, mapping: Behavior, filtering: Behavior, *,
                 outer: str = PUBLIC, link: Link | None = None, timeout: float = 120.0,
                 first_port: int = 40000) -> None:
        self.name = name
        self.public_ip = public_ip
        self.mapping = mapping
        self.filtering = filtering
        self.outer = outer
        self.link = link or Link()
        self.timeout = timeout  # RFC 4787 REQ-5: at least 2 minutes
        self._ports = itertools.count(first_port)
        self._by_key: dict[tuple, _Mapping] = {}
        self._by_port: dict[int, _Mapping] = {}
        self.filtered = 0

    def _key(self, src: Address, dst: Address) -> tuple:
        if self.mapping is EIM:
            return (src,)
        if self.mapping is ADM:
            return (src, dst[0])
        return (src, dst)

    def outbound(self, src: Address, dst: Address, now: float) -> Address:
        key = self._key(src, dst)
        mapping = self._by_key.get(key)
        if mapping is None or now - mapping.last_used > self.timeout:
            mapping = _Mapping(src, (self.public_ip, next(self._ports)), now)
            self._by_key[key] = mapping
            self._by_port[mapping.external[1]] = mapping
        mapping.contacted.add(dst)
        mapping.contacted_hosts.add(dst[0])
        mapping.last_used = now  # RFC 4787 REQ-6: outbound refreshes
        return mapping.external

    def inbound(self, src: Address, dst: Address, now: float) -> Address | None:
        mapping = self._by_port.get(dst[1])
        if mapping is None or now - mapping.last_used > self.timeout:
            self.filtered += 1
            return None
        if self.filtering is ADM and src[0] not in mapping.contacted_hosts:
            self.filtered += 1
            return None
        if self.filtering is APDM and src not in mapping.contacted:
            self.filtered += 1
            return None
        return mapping.internal


class Node:
    """One sans-IO core on the network: the addresses it owns, run by a :class:`Driver`.

    A datagram to one of ``addresses`` reaches the core as a
    :class:`~netcore.net.Receive`; a :class:`~netcore.net.Transmit` without
    a ``source`` leaves from ``addresses[0]``. Events (application data
    included) go to ``events`` and ``on_event``.
    """

    def __init__(self, network: Network, core: Core, addresses: list[Address]) -> None:
        self.network = network
        self.core = core
        self.addresses = list(addresses)
        self.events: list[Event] = []
        self.on_event: Callable[[Event], None] | None = None
        self.driver = Driver(core, network, self._send, self._event)

    def receive(self, data: bytes, src: Address, dst: Address) -> None:
        self.driver.receive(Receive(data, src, dst))

    def flush(self) -> None:
        """Drain the core after an API call on it."""
        self.driver.flush()

    def _send(self, transmit: Transmit) -> None:
        local = transmit.source or self.addresses[0]
        destination = transmit.destination
        self.network.send(transmit.data, (local[0], local[1]), (destination[0], destination[1]))

    def _event(self, event: Event) -> None:
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)


@dataclass(order=True)
class _Scheduled:
    at: float
    seq: int
    call: Callable[..., None] = field(compare=False)
    args: tuple = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class Network:
    """Virtual time, realms of hosts, NAT boxes; deterministic for a given ``seed``."""

    def __init__(self, seed: int = 0) -> None:
        self.now = 0.0
        self.rng = random.Random(seed)
        self._queue: list[_Scheduled] = []
        self._seq = itertools.count()
        self._realm_of: dict[str, str] = {}  # host ip -> realm
        self._links: dict[str, Link] = {}  # host ip -> its link
        self._nodes: dict[Address, Node] = {}
        self._gateways: dict[str, Nat] = {}  # inside realm -> NAT
        self._nats_by_ip: dict[str, Nat] = {}
        self.blocked: set[tuple[str, str]] = set()  # (src ip, dst ip), one direction each
        self.path_delay: dict[tuple[str, str], float] = {}
        self.path_loss: dict[tuple[str, str], float] = {}  # (src ip, dst ip) -> drop probability
        self.sent = 0
        self.delivered = 0
        self.dropped = 0

    # -- building -------------------------------------------------------------------

    def add_host(self, ip: str, realm: str = PUBLIC, link: Link | None = None) -> str:
        if ip in self._realm_of:
            raise ValueError(f"{ip} exists")
        self._realm_of[ip] = realm
        self._links[ip] = link or Link()
        return ip

    def add_nat(self, name: str, public_ip: str, mapping: Behavior, filtering: Behavior, **options: Any) -> Nat:
        nat = Nat(name, public_ip, mapping, filtering, **options)
        self._gateways[name] = nat
        self._nats_by_ip[public_ip] = nat
        return nat

    def link(self, ip: str) -> Link:
        return self._links[ip]

    def add_node(self, core: Core, addresses: list[Address]) -> Node:
        node = Node(self, core, addresses)
        for address in addresses:
            self.bind(address, node)
        return node

    def bind(self, address: Address, node: Node) -> None:
        if address[0] not in self._realm_of:
            raise ValueError(f"no host {address[0]}")
        self._nodes[(address[0], address[1])] = node

    def unbind(self, address: Address) -> None:
        self._nodes.pop((address[0], address[1]), None)

    def block(self, a: str, b: str, both: bool = True) -> None:
        """Drop datagrams from ``a`` to ``b`` (and back) wherever they meet."""
        self.blocked.add((a, b))
        if both:
            self.blocked.add((b, a))

    def unblock(self, a: str, b: str) -> None:
        self.blocked.discard((a, b))
        self.blocked.discard((b, a))

    # -- time -----------------------------------------------------------------------

    def time(self) -> float:
        """The virtual clock, for :class:`~netcore.driver.Driver`."""
        return self.now

    def call_at(self, at: float, call: Callable[..., None], *args: Any) -> _Scheduled:
        """Run ``call(*args)`` at virtual time ``at``; the handle's ``cancel()`` withdraws it."""
        item = _Scheduled(at, next(self._seq), call, args)
        heapq.heappush(self._queue, item)
        return item

    def run(self, until: float | None = None, stop: Callable[[], bool] | None = None,
            max_steps: int = 5_000_000) -> bool:
        """Run events up to virtual time ``until`` or until ``stop()``; True if ``stop`` fired."""
        for _ in range(max_steps):
            if stop is not None and stop():
                return True
            if not self._queue or (until is not None and self._queue[0].at > until):
                break
            item = heapq.heappop(self._queue)
            if item.cancelled:
                continue
            self.now = max(self.now, item.at)
            item.call(*item.args)
        else:
            raise RuntimeError("simulation did not settle")
        if until is not None:
            self.now = max(self.now, until)
        return stop is not None and stop()

    # -- forwarding -----------------------------------------------------------------

    def send(self, data: bytes, src: Address, dst: Address) -> None:
        """A datagram leaves host ``src``; it crosses the host's link, then is routed."""
        self.sent += 1
        link = self._links.get(src[0])
        if link is None:
            self.dropped += 1
            return
        self._cross(link, data, src, dst, self._realm_of[src[0]])

    def _cross(self, link: Link, data: bytes, src: Address, dst: Address, realm: str) -> None:
        delay = link.sample(self.rng)
        if delay is None:
            self.dropped += 1
            return
        extra = self.path_delay.get((src[0], dst[0]), 0.0) if self.path_delay else 0.0
        self.call_at(self.now + delay + extra, self._route, data, src, dst, realm)
        if link.duplicate and self.rng.random() < link.duplicate:
            copy = link.sample(self.rng)  # the copy crosses the link on its own
            if copy is not None:
                self.call_at(self.now + copy + extra, self._route, data, src, dst, realm)

    def _route(self, data: bytes, src: Address, dst: Address, realm: str) -> None:
        if (src[0], dst[0]) in self.blocked:
            self.dropped += 1
            return
        if self.path_loss:
            loss = self.path_loss.get((src[0], dst[0]))
            if loss and self.rng.random() < loss:
                self.dropped += 1
                return
        ip = dst[0]
        if self._realm_of.get(ip) == realm:
            node = self._nodes.get(dst)
            if node is None:
                self.dropped += 1
                return
            self.delivered += 1
            node.receive(data, src, dst)
            return
        nat = self._nats_by_ip.get(ip)
        if nat is not None and nat.outer == realm:
            inside = nat.inbound(src, dst, self.now)
            if inside is None:
                self.dropped += 1
                return
            self._cross(nat.link, data, src, inside, nat.name)
            return
        gateway = self._gateways.get(realm)
        if gateway is None:
            self.dropped += 1  # no route on the public side
            return
        mapped = gateway.outbound(src, dst, self.now)
        self._cross(gateway.link, data, mapped, dst, gateway.outer)
