"""Gathering (RFC 8445 section 5.1.1): the agent's sockets, its candidates, the TURN clients it owns.

:class:`Gathering` holds the host candidate of every socket the caller
registered (and of every TCP/TLS stream to a TURN server), builds the
server-reflexive, relayed and peer-reflexive candidates with their
priorities and foundations, owns one :class:`~netcore.turn.client.TurnClient`
per (socket, TURN server) and counts the requests still out. The agent
starts the STUN transactions it names; what the TURN clients send goes to the
agent's outbox as :class:`~netcore.net.Transmit` s from the socket they run
on. :meth:`Gathering.feed` is the one place a datagram reaches a TURN client
and :meth:`Gathering.flush` the one place its datagrams are drained.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterator

from netcore.errors import UsageError
from netcore.ice.pairs import LocalCandidate
from netcore.ice.priority import Foundations, candidate_priority
from netcore.net import Address, Receive, Transmit
from netcore.sdp.candidate import Candidate
from netcore.turn.client import TurnClient, TurnClientState

__all__ = ["TurnServerConfig", "Gathering", "family"]


@dataclass(frozen=True, slots=True)
class TurnServerConfig:
    """A TURN server to allocate relayed candidates on (its address and credentials).

    ``transport`` is how the agent reaches the server: "udp" from every host
    socket, or "tcp"/"tls" over a stream the caller opens and registers with
    :meth:`Agent.add_turn_stream` (RFC 8656 section 3.1; the relay itself is UDP).
    """

    address: Address
    username: str
    password: str
    transport: str = "udp"


def family(host: str) -> int:
    return 6 if ":" in host else 4


def allocated(turn: TurnClient) -> bool:
    """Whether ``turn`` holds an allocation that can relay now."""
    return turn.state is TurnClientState.ALLOCATED


class Gathering:
    """Local candidates and the STUN/TURN requests that find them."""

    def __init__(self, stun_servers: tuple[Address, ...], turn_servers: tuple[TurnServerConfig, ...],
                 relay_only: bool, lite: bool, random: Callable[[int], bytes], outbox: deque[Transmit]) -> None:
        self.stun_servers = stun_servers
        self.turn_servers = turn_servers
        self.relay_only = relay_only
        self.lite = lite
        self._random = random
        self._outbox = outbox
        self.foundations = Foundations()
        self.sockets: dict[Address, LocalCandidate] = {}  # host candidates by socket address
        self.streams: dict[Address, tuple[LocalCandidate, TurnServerConfig]] = {}  # TCP/TLS to TURN servers
        self.turn_clients: dict[tuple[Address, Address], TurnClient] = {}  # (socket, server)
        self._relays: dict[tuple[Address, Address], LocalCandidate] = {}  # (socket, server)
        self.pending = 0  # STUN/TURN requests still out
        self.completed = False

    # -- sockets --------------------------------------------------------------------

    def add_host(self, address: Address, component: int) -> None:
        if address in self.sockets:
            raise UsageError(f"{address} already added")
        index = sum(1 for c in self.sockets.values() if c.component == component)
        # RFC 8445 section 5.1.2.1: distinct local preferences, IPv6 before IPv4.
        local_preference = 65535 - index - (1024 if family(address[0]) == 4 else 0)
        foundation = self.foundations.get("host", address[0], None)
        candidate = Candidate(foundation, component, "udp",
                              candidate_priority("host", local_preference, component),
                              address[0], address[1], "host")
        self.sockets[address] = LocalCandidate(candidate, address, address, local_preference)

    def add_stream(self, local: Address, server: TurnServerConfig, component: int) -> None:
        if server.transport not in ("tcp", "tls") or server not in self.turn_servers:
            raise UsageError("add_turn_stream() takes one of turn_servers with transport tcp or tls")
        # RFC 8445 section 5.1.2.1: relays reached over TCP/TLS come after the UDP ones.
        candidate = Candidate("0", component, "tcp", 0, local[0], local[1], "host")
        self.streams[local] = (LocalCandidate(candidate, local, local, 32767 - len(self.streams)), server)

    def host(self, local: Address) -> LocalCandidate | None:
        """The host candidate of the socket (or TURN stream) bound to ``local``."""
        host = self.sockets.get(local)
        if host is None:
            stream = self.streams.get(local)
            if stream is not None:
                return stream[0]
        return host

    # -- what to ask ------------------------------------------------------------------

    def stun_servers_for(self, host: LocalCandidate) -> list[Address]:
        """The STUN servers to ask for ``host``'s server-reflexive address (one request each)."""
        if self.lite or self.relay_only:
            return []
        return [s for s in self.stun_servers if family(s[0]) == family(host.address[0])]

    def turn_servers_for(self, host: LocalCandidate) -> list[TurnServerConfig]:
        """The TURN servers reached over UDP from ``host``'s socket, to allocate on."""
        if self.lite:
            return []  # section 2.5: a lite agent has host candidates only
        return [s for s in self.turn_servers
                if s.transport == "udp" and family(s.address[0]) == family(host.address[0])]

    def stream_allocations(self) -> Iterator[tuple[LocalCandidate, TurnServerConfig]]:
        """Every TCP/TLS stream to a TURN server, with its server, to allocate on."""
        if not self.lite:
            yield from self.streams.values()

    def started(self) -> None:
        """One more request out."""
        self.pending += 1

    def finished(self) -> bool:
        """One request ended; True when that completes gathering."""
        self.pending -= 1
        return self.complete_if_idle()

    def complete_if_idle(self) -> bool:
        """True when no request is out and gathering completes with this call."""
        if self.completed or self.pending:
            return False
        self.completed = True
        return True

    # -- TURN clients ------------------------------------------------------------------

    def allocate(self, host: LocalCandidate, server: TurnServerConfig, now: float) -> TurnClient:
        turn = TurnClient(server.address, server.username, server.password, random=self._random,
                          reliable=server.transport != "udp")
        self.turn_clients[(host.socket, server.address)] = turn
        turn.allocate(now)
        self.started()
        self.flush(turn, host.socket)
        return turn

    def feed(self, turn: TurnClient, datagram: Receive, now: float) -> None:
        """A datagram from ``turn``'s server; the caller then drains the client's events."""
        turn.handle_datagram(datagram, now)

    def flush(self, turn: TurnClient, socket: Address) -> None:
        """What ``turn`` queued, to send from ``socket`` (the host socket or TURN stream)."""
        while (transmit := turn.poll_transmit()) is not None:
            transmit.source = socket
            self._outbox.append(transmit)

    def due(self, now: float) -> Iterator[tuple[Address, TurnClient]]:
        """Run each TURN client whose timer is due and yield it with its socket, for the caller
        to drain before the next one runs."""
        for (socket, _), turn in list(self.turn_clients.items()):
            deadline = turn.next_deadline()
            if deadline is not None and deadline <= now:
                turn.handle_timeout(now)
                yield socket, turn

    def deadline(self) -> float | None:
        if not self.turn_clients:
            return None  # (asked after every datagram; most agents have no TURN client)
        deadlines = [d for d in (t.next_deadline() for t in self.turn_clients.values()) if d is not None]
        return min(deadlines) if deadlines else None

    def relay_send(self, local: LocalCandidate, data: bytes, peer: Address, now: float) -> bool:
        """Send through ``local``'s allocation; False (dropped) while it is not allocated."""
        turn = local.turn
        if turn is None or not allocated(turn):
            return False
        turn.send_to(data, peer, now)
        self.flush(turn, local.socket)
        return True

    def bind_channel(self, local: LocalCandidate, peer: Address, now: float) -> None:
        """A channel to ``peer`` on ``local``'s allocation, if it has one (RFC 8656 section 12)."""
        turn = local.turn
        if turn is not None and allocated(turn):
            turn.bind_channel(peer, now)
            self.flush(turn, local.socket)

    def relay(self, socket: Address, server: Address) -> LocalCandidate | None:
        """The relayed candidate allocated on ``server`` from ``socket``."""
        return self._relays.get((socket, server))

    # -- candidates --------------------------------------------------------------------

    def srflx(self, host: LocalCandidate, mapped: Address, server: Address,
              locals_: list[LocalCandidate]) -> LocalCandidate | None:
        """A server-reflexive candidate, or None when it is redundant (section 5.1.3)."""
        mapped = (mapped[0], mapped[1])
        if any(c.address == mapped and c.socket == host.socket for c in locals_) or mapped == host.address:
            return None
        candidate = Candidate(self.foundations.get("srflx", host.address[0], server[0]), host.component, "udp",
                              candidate_priority("srflx", host.local_preference, host.component),
                              mapped[0], mapped[1], "srflx", host.address[0], host.address[1])
        return LocalCandidate(candidate, host.socket, host.socket, host.local_preference)

    def relayed(self, host: LocalCandidate, turn: TurnClient, relayed: Address) -> LocalCandidate:
        """The relayed candidate of a new allocation (related address: the mapped one)."""
        related = turn.mapped_address or host.address
        transport = "tcp" if turn.reliable else "udp"
        candidate = Candidate(self.foundations.get("relay", host.address[0], turn.server[0], transport),
                              host.component,
                              "udp", candidate_priority("relay", host.local_preference, host.component),
                              relayed[0], relayed[1], "relay", related[0], related[1])
        local = LocalCandidate(candidate, (relayed[0], relayed[1]), host.socket, host.local_preference, turn)
        self._relays[(host.socket, turn.server)] = local
        return local

    def prflx(self, base: LocalCandidate, mapped: Address) -> LocalCandidate:
        """A peer-reflexive local candidate learnt from a check's mapped address (section 7.2.5.3.1)."""
        priority = candidate_priority("prflx", base.local_preference, base.component)
        foundation = self.foundations.get("prflx", base.address[0], None)
        candidate = Candidate(foundation, base.component, "udp", priority, mapped[0], mapped[1], "prflx",
                              base.address[0], base.address[1])
        return LocalCandidate(candidate, base.socket, base.socket, base.local_preference)
