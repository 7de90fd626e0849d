"""The ICE agent, sans-IO (RFC 8445, trickle RFC 8838, consent RFC 7675), full or lite.

One :class:`Agent` runs one data stream of ``components`` components over any
number of local sockets. It never opens a socket: the caller binds them, tells
the agent their addresses (:meth:`Agent.add_local_address`), feeds what they
receive (:meth:`Agent.handle_datagram` with the socket's own address as
``local``) and sends what :meth:`Agent.poll_transmit` gives, a
``(data, addr, local)`` triple: send ``data`` to ``addr`` from the socket
bound to ``local`` (the TURN server core's convention). Relayed candidates run
a :class:`~netcore.turn.client.TurnClient` inside the agent, on the socket of
their host candidate.

Check states (RFC 8445 section 6.1.2.6), the transition table::

    FROZEN      -> WAITING       foundation unfrozen, or a triggered check (7.3.1.4)
    WAITING     -> IN_PROGRESS   the Ta timer picked it (6.1.4.2)
    IN_PROGRESS -> SUCCEEDED     authentic, symmetric success response (7.2.5.3)
    IN_PROGRESS -> FAILED        timeout, error, non-symmetric response (7.2.5.2)
    IN_PROGRESS -> WAITING       487 role conflict: roles switched, check again (7.2.5.1)
    FAILED      -> WAITING       a check arrived on the pair (7.3.1.4)

Beyond the RFC, on purpose:

* after a component is nominated the remaining pairs are still checked at the
  Ta pace (``backup_pairs``), so that another valid pair (the relayed one,
  say) is ready when the selected one degrades;
* consent checks (RFC 7675) run on every valid pair, and each agent picks its
  own *sending* pair among the valid ones (:class:`PathSelected`): one
  direction may go direct while the other goes through the relay. Received
  datagrams are accepted on any pair.
"""

from __future__ import annotations

import base64
import enum
import ipaddress
import os
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from netcore.demux import PacketKind, classify
from netcore.errors import UsageError
from netcore.ice.events import (
    CandidateGathered,
    ComponentFailed,
    ConsentLost,
    GatheringCompleted,
    IceEvent,
    PairNominated,
    PathDegraded,
    PathSelected,
    RestartNeeded,
    RoleChanged,
)
from netcore.ice.priority import Foundations, candidate_priority, pair_priority
from netcore.net import Receive
from netcore.sdp.candidate import Candidate
from netcore.stun import attributes as sa
from netcore.stun.credentials import short_term_key
from netcore.stun.errors import StunParseError
from netcore.stun.message import BINDING, Message, MessageClass
from netcore.stun.transaction import (
    StunClient,
    TransactionFailed,
    TransactionSucceeded,
)
from netcore.turn import client as turn_events
from netcore.turn.client import TurnClient, TurnClientState

__all__ = ["Agent", "CandidatePair", "CheckState", "LocalCandidate", "RemoteCandidate", "TurnServer"]

Address = tuple  # (host, port)
MAX_PAIRS = 100  # RFC 8445 section 6.1.2.5: limit the check list
MAX_REMOTE_CANDIDATES = 100
MAX_TRIGGERED = 200


class CheckState(enum.Enum):
    FROZEN = "frozen"
    WAITING = "waiting"
    IN_PROGRESS = "in-progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


_PENDING_STATES = (CheckState.FROZEN, CheckState.WAITING, CheckState.IN_PROGRESS)


@dataclass(frozen=True, slots=True)
class TurnServer:
    """A TURN server to allocate relayed candidates on.

    ``transport`` is how the agent reaches the server: "udp" from every host
    socket, or "tcp"/"tls" over a stream the caller opens and registers with
    :meth:`Agent.add_turn_stream` (RFC 8656 section 3.1; the relay itself is UDP).
    """

    address: Address
    username: str
    password: str
    transport: str = "udp"


class _AgentCandidate:
    """A candidate as the agent holds it: the signalled :class:`Candidate` and its address."""

    __slots__ = ("candidate", "address", "component")

    def __init__(self, candidate: Candidate) -> None:
        self.candidate = candidate
        self.address: Address = (candidate.address, candidate.port)
        self.component = candidate.component

    @property
    def type(self) -> str:
        return self.candidate.type

    @property
    def priority(self) -> int:
        return self.candidate.priority

    def __repr__(self) -> str:
        return f"{self.type} {self.address[0]}:{self.address[1]}"


class LocalCandidate(_AgentCandidate):
    """A local candidate: what is signalled (``candidate``), where it lives (``base``),
    and which socket carries it (``socket``, the host address; ``turn`` for relayed ones).
    """

    __slots__ = ("base", "socket", "local_preference", "turn")

    def __init__(self, candidate: Candidate, base: Address, socket: Address, local_preference: int,
                 turn: TurnClient | None = None) -> None:
        super().__init__(candidate)
        self.base = base
        self.socket = socket
        self.local_preference = local_preference
        self.turn = turn


class RemoteCandidate(_AgentCandidate):
    __slots__ = ("generation",)

    def __init__(self, candidate: Candidate, generation: int) -> None:
        super().__init__(candidate)
        self.generation = generation


class CandidatePair:
    """A pair in the check list, or a valid pair built from a check's mapped address."""

    __slots__ = (
        "local", "remote", "component", "priority", "foundation", "state", "generation",
        "valid", "valid_pair", "nominated", "nominate_on_success",
        "last_consent", "consent_due", "consent_tid", "degraded", "consent_lost", "rtt", "outcomes",
    )

    def __init__(self, local: LocalCandidate, remote: RemoteCandidate, controlling: bool, generation: int) -> None:
        self.local = local
        self.remote = remote
        self.component = local.component
        self.foundation = (local.candidate.foundation, remote.candidate.foundation)
        self.state = CheckState.FROZEN
        self.generation = generation
        self.valid = False
        self.valid_pair: CandidatePair | None = None
        self.nominated = False
        self.nominate_on_success = False
        self.last_consent = 0.0
        self.consent_due = 0.0
        self.consent_tid: bytes | None = None
        self.degraded = False
        self.consent_lost = False
        self.rtt: float | None = None
        self.outcomes: deque[bool] = deque(maxlen=10)
        self.priority = 0
        self.set_role(controlling)

    def set_role(self, controlling: bool) -> None:
        mine, theirs = self.local.priority, self.remote.priority
        self.priority = pair_priority(mine, theirs) if controlling else pair_priority(theirs, mine)

    @property
    def relayed(self) -> bool:
        """True when either end of the pair is a TURN relay."""
        return self.local.type == "relay" or self.remote.type == "relay"

    @property
    def loss(self) -> float:
        """Fraction of the recent consent checks that went unanswered."""
        return self.outcomes.count(False) / len(self.outcomes) if self.outcomes else 0.0

    def __repr__(self) -> str:
        return f"CandidatePair({self.local!r} -> {self.remote!r}, {self.state.value})"


# What a STUN transaction of the agent is for.
_GATHER, _CHECK, _CONSENT = range(3)


class _Route:
    __slots__ = ("kind", "local", "pair", "nominate", "sent_at", "server", "controlling")

    def __init__(self, kind: int, local: LocalCandidate, pair: CandidatePair | None, sent_at: float,
                 nominate: bool = False, server: Address | None = None, controlling: bool = False) -> None:
        self.kind = kind
        self.controlling = controlling
        self.local = local
        self.pair = pair
        self.nominate = nominate
        self.sent_at = sent_at
        self.server = server


def _ice_string(random: Callable[[int], bytes], size: int) -> str:
    # base64 of 3k bytes has no '=': every character is an ice-char (RFC 8839 section 5.4).
    return base64.b64encode(random(size)).decode("ascii")


def _attribute(message: Message, attr_type: int) -> Any:
    """A decoded attribute of an authenticated response, None when absent or malformed.

    Outcomes are handled after the transaction is closed, so a malformed
    value must not raise there: it would leave the pair or gathering hanging.
    """
    try:
        return message.get(attr_type)
    except StunParseError:
        return None


def _family(host: str) -> int:
    return 6 if ":" in host else 4


class Agent:
    """A full ICE agent, or an ICE-lite one (``lite=True``, RFC 8445 section 2.5)."""

    def __init__(
        self,
        controlling: bool,
        *,
        lite: bool = False,
        components: int = 1,
        stun_servers: tuple[Address, ...] = (),
        turn_servers: tuple[TurnServer, ...] = (),
        relay_only: bool = False,
        ta: float = 0.05,
        check_rto: float = 0.5,
        check_rc: int = 5,
        nomination_delay: float = 1.0,
        backup_pairs: bool = True,
        consent_interval: float = 5.0,
        degraded_after: float = 2.0,
        consent_timeout: float = 30.0,
        switch_on_degraded: bool = True,
        max_rtt: float | None = None,
        max_loss: float | None = None,
        ufrag: str | None = None,
        pwd: str | None = None,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if not 1 <= components <= 256 or ta <= 0:
            raise UsageError("components must be 1..256 and Ta positive")
        self.lite = lite
        self.controlling = controlling and not lite  # a lite agent is always controlled (section 6.1.1)
        self.components = components
        self.stun_servers = tuple(stun_servers)
        self.turn_servers = tuple(turn_servers)
        self.relay_only = relay_only
        self.ta = ta
        self.check_rto = check_rto
        self.nomination_delay = nomination_delay
        self.backup_pairs = backup_pairs
        self.consent_interval = consent_interval
        self.consent_timeout = consent_timeout
        self.switch_on_degraded = switch_on_degraded
        self.max_rtt = max_rtt
        self.max_loss = max_loss
        self._random = random
        self.local_ufrag = ufrag or _ice_string(random, 6)
        self.local_pwd = pwd or _ice_string(random, 18)
        self.tie_breaker = int.from_bytes(random(8), "big")
        self.remote_ufrag: str | None = None
        self.remote_pwd: str | None = None
        self._remote_key: bytes | None = None
        self._local_keys: dict[str, bytes] = {self.local_ufrag: short_term_key(self.local_pwd)}
        self._generation = 0

        self._checks = StunClient(rto=check_rto, rc=check_rc)
        self._consent = StunClient(rto=degraded_after, rc=1, rm=1)  # one send, a loss sample each
        self._routes: dict[bytes, _Route] = {}
        self._foundations = Foundations()
        self._sockets: dict[Address, LocalCandidate] = {}  # host candidates by socket address
        self._streams: dict[Address, tuple[LocalCandidate, TurnServer]] = {}  # TCP/TLS to TURN servers
        self._locals: list[LocalCandidate] = []  # signalled (or peer-reflexive) local candidates
        self._turn_clients: dict[tuple[Address, Address], TurnClient] = {}  # (socket, server)
        self._relays: dict[tuple[Address, Address], LocalCandidate] = {}  # (socket, server)
        self._gathering = 0  # STUN/TURN requests still out
        self._gathered = False
        self._remotes: list[RemoteCandidate] = []
        self._remote_index: dict[tuple[int, Address], RemoteCandidate] = {}  # (component, address)
        self._remote_end = False
        self._checklist: list[CandidatePair] = []
        self._pairs_by_key: dict[tuple[Address, Address], CandidatePair] = {}
        self._valid: list[CandidatePair] = []
        self._triggered: deque[tuple[CandidatePair, bool]] = deque()
        self._next_check_at: float | None = None
        self._last_check_at = float("-inf")
        self._first_valid_at: dict[int, float] = {}
        self._nominating: dict[int, CandidatePair] = {}
        self._nominated: dict[int, CandidatePair] = {}
        self._sending: dict[int, CandidatePair] = {}
        self._failed: set[int] = set()
        self._restarting = False
        self._transmit: deque[tuple[bytes, Address, Address]] = deque()
        self._events: deque[IceEvent] = deque()
        self._prflx_count = 0
        self.checks_sent = 0
        self.checks_received = 0
        self.parse_errors = 0
        self.dropped = 0

    # -- local candidates -----------------------------------------------------------

    def add_local_address(self, address: Address, component: int = 1) -> None:
        """Register a bound socket's address as a host candidate base (loopback included when given)."""
        if not 1 <= component <= self.components:
            raise UsageError(f"component {component} out of 1..{self.components}")
        address = (address[0], address[1])
        if address in self._sockets:
            raise UsageError(f"{address} already added")
        index = sum(1 for c in self._sockets.values() if c.component == component)
        # RFC 8445 section 5.1.2.1: distinct local preferences, IPv6 before IPv4.
        local_preference = 65535 - index - (1024 if _family(address[0]) == 4 else 0)
        foundation = self._foundations.get("host", address[0], None)
        candidate = Candidate(foundation, component, "udp",
                              candidate_priority("host", local_preference, component),
                              address[0], address[1], "host")
        self._sockets[address] = LocalCandidate(candidate, address, address, local_preference)

    def add_turn_stream(self, local: Address, server: TurnServer, component: int = 1) -> None:
        """Register a TCP or TLS connection to ``server``, known by its local address ``local``.

        The adapter frames what the stream carries (``turn.wire.StreamFramer``)
        and feeds each frame to :meth:`handle_datagram` with this ``local``;
        transmits naming ``local`` are written to the stream.
        """
        if server.transport not in ("tcp", "tls") or server not in self.turn_servers:
            raise UsageError("add_turn_stream() takes one of turn_servers with transport tcp or tls")
        local = (local[0], local[1])
        # RFC 8445 section 5.1.2.1: relays reached over TCP/TLS come after the UDP ones.
        candidate = Candidate("0", component, "tcp", 0, local[0], local[1], "host")
        self._streams[local] = (LocalCandidate(candidate, local, local, 32767 - len(self._streams)), server)

    def _host(self, local: Address) -> LocalCandidate | None:
        host = self._sockets.get(local)
        if host is None:
            stream = self._streams.get(local)
            if stream is not None:
                return stream[0]
        return host

    def gather(self, now: float) -> None:
        """Announce the host candidates and start server-reflexive and relayed gathering."""
        if self._gathering or self._gathered:
            raise UsageError("gather() called twice")
        for host in self._sockets.values():
            if not self.relay_only:
                self._add_local(host, now)
            if self.lite:
                continue  # section 2.5: a lite agent has host candidates only
            for server in self.stun_servers if not self.relay_only else ():
                if _family(server[0]) != _family(host.address[0]):
                    continue
                request = Message(BINDING, MessageClass.REQUEST, self._random(12))
                tid = self._checks.start(request, server, now, fingerprint=True)
                self._routes[tid] = _Route(_GATHER, host, None, now, server=server)
                self._gathering += 1
            for server in self.turn_servers:
                if server.transport == "udp" and _family(server.address[0]) == _family(host.address[0]):
                    self._allocate(host, server, now)
        for host, server in self._streams.values() if not self.lite else ():
            self._allocate(host, server, now)
        self._flush_stun(self._checks, now)
        self._maybe_gathered()

    def _allocate(self, host: LocalCandidate, server: TurnServer, now: float) -> None:
        turn = TurnClient(server.address, server.username, server.password, random=self._random,
                          reliable=server.transport != "udp")
        self._turn_clients[(host.socket, server.address)] = turn
        turn.allocate(now)
        self._gathering += 1
        self._flush_turn(turn, host.socket)

    def _add_local(self, local: LocalCandidate, now: float) -> None:
        self._locals.append(local)
        if local.type != "prflx":
            self._events.append(CandidateGathered(local.candidate))
        if not self.lite and local.type in ("host", "relay"):
            for remote in self._remotes:
                self._add_pair(local, remote, now)

    def _add_srflx(self, host: LocalCandidate, mapped: Address, server: Address, now: float) -> None:
        mapped = (mapped[0], mapped[1])
        # RFC 8445 section 5.1.3: a candidate equal to another with the same base is redundant.
        if any(c.address == mapped and c.socket == host.socket for c in self._locals) or mapped == host.address:
            return
        candidate = Candidate(self._foundations.get("srflx", host.address[0], server[0]), host.component, "udp",
                              candidate_priority("srflx", host.local_preference, host.component),
                              mapped[0], mapped[1], "srflx", host.address[0], host.address[1])
        self._add_local(LocalCandidate(candidate, host.socket, host.socket, host.local_preference), now)

    def _add_relay(self, host: LocalCandidate, turn: TurnClient, relayed: Address, now: float) -> None:
        related = turn.mapped_address or host.address
        transport = "tcp" if turn.reliable else "udp"
        candidate = Candidate(self._foundations.get("relay", host.address[0], turn.server[0], transport),
                              host.component,
                              "udp", candidate_priority("relay", host.local_preference, host.component),
                              relayed[0], relayed[1], "relay", related[0], related[1])
        local = LocalCandidate(candidate, (relayed[0], relayed[1]), host.socket, host.local_preference, turn)
        self._relays[(host.socket, turn.server)] = local
        self._add_local(local, now)

    def _maybe_gathered(self) -> None:
        if not self._gathered and self._gathering == 0:
            self._gathered = True
            self._events.append(GatheringCompleted())

    @property
    def local_candidates(self) -> list[Candidate]:
        """The candidates to signal (peer-reflexive ones are not signalled)."""
        return [c.candidate for c in self._locals if c.type != "prflx"]

    @property
    def gathering_complete(self) -> bool:
        return self._gathered

    # -- remote side ----------------------------------------------------------------

    def set_remote_credentials(self, ufrag: str, pwd: str, now: float | None = None) -> None:
        """The peer's ice-ufrag/ice-pwd; checks start once they and a pair exist."""
        if self.remote_ufrag is not None and (ufrag, pwd) != (self.remote_ufrag, self.remote_pwd):
            raise UsageError("remote credentials changed: call restart() first (RFC 8445 section 9)")
        self.remote_ufrag, self.remote_pwd = ufrag, pwd
        self._remote_key = short_term_key(pwd)
        if now is not None:
            self._wake_checks(now)

    def add_remote_candidate(self, candidate: Candidate | None, now: float) -> None:
        """Add a signalled or trickled candidate; ``None`` is end-of-candidates (RFC 8838 section 14)."""
        if candidate is None:
            self._remote_end = True
            self._check_failures()
            return
        if candidate.is_tcp or not 1 <= candidate.component <= self.components:
            return
        try:
            ipaddress.ip_address(candidate.address)
        except ValueError:
            return  # mDNS names (.local) are not resolved here
        address = (candidate.address, candidate.port)
        existing = self._remote_at(candidate.component, address)
        if existing is not None:
            if existing.type == "prflx":  # section 7.3.1.3: the signalled one replaces it
                existing.candidate = candidate
            return
        if len(self._remotes) >= MAX_REMOTE_CANDIDATES:
            self.dropped += 1
            return
        remote = RemoteCandidate(candidate, self._generation)
        self._add_remote(remote)
        if self.lite:
            return
        for local in self._locals:
            if local.type in ("host", "relay"):
                self._add_pair(local, remote, now)

    def _remote_at(self, component: int, address: Address) -> RemoteCandidate | None:
        return self._remote_index.get((component, address))

    def _add_remote(self, remote: RemoteCandidate) -> None:
        self._remotes.append(remote)
        self._remote_index[(remote.component, remote.address)] = remote

    # -- pairs ----------------------------------------------------------------------

    def _add_pair(self, local: LocalCandidate, remote: RemoteCandidate, now: float) -> CandidatePair | None:
        if local.component != remote.component or _family(local.address[0]) != _family(remote.address[0]):
            return None
        if local.type == "srflx" or local.type == "prflx":
            local = self._sockets[local.socket]  # section 6.1.2.4: pruned to its base
        key = (local.base, remote.address)
        pair = self._pairs_by_key.get(key)
        if pair is not None:
            return pair
        if len(self._checklist) >= MAX_PAIRS:
            self.dropped += 1
            return None
        pair = CandidatePair(local, remote, self.controlling, self._generation)
        self._pairs_by_key[key] = pair
        self._checklist.append(pair)
        # Section 6.1.2.6 with RFC 8838 section 10: the first pair of a foundation starts Waiting.
        same = [p.state for p in self._checklist if p.foundation == pair.foundation and p is not pair]
        busy = CheckState.WAITING in same or CheckState.IN_PROGRESS in same
        if CheckState.SUCCEEDED in same or not busy:
            pair.state = CheckState.WAITING
        self._wake_checks(now)
        return pair

    def _valid_pair_for(self, local: LocalCandidate, remote: RemoteCandidate) -> CandidatePair:
        for pair in self._valid:
            if pair.local is local and pair.remote is remote:
                return pair
        pair = CandidatePair(local, remote, self.controlling, self._generation)
        pair.state = CheckState.SUCCEEDED
        return pair

    @property
    def pairs(self) -> list[CandidatePair]:
        """The check list, highest priority first."""
        return sorted(self._checklist, key=lambda p: p.priority, reverse=True)

    @property
    def valid_pairs(self) -> list[CandidatePair]:
        return sorted(self._valid, key=lambda p: p.priority, reverse=True)

    def nominated_pair(self, component: int = 1) -> CandidatePair | None:
        return self._nominated.get(component)

    def sending_pair(self, component: int = 1) -> CandidatePair | None:
        """The pair this agent sends ``component``'s traffic on now."""
        return self._sending.get(component)

    @property
    def connected(self) -> bool:
        return len(self._sending) == self.components

    # -- checks ---------------------------------------------------------------------

    def _wake_checks(self, now: float) -> None:
        if self.lite or self.remote_ufrag is None or self._next_check_at is not None:
            return
        self._next_check_at = max(now, self._last_check_at + self.ta)

    def _request(self, pair: CandidatePair, nominate: bool) -> Message:
        request = Message(BINDING, MessageClass.REQUEST, self._random(12))
        request.add(sa.USERNAME, f"{self.remote_ufrag}:{self.local_ufrag}")
        # Section 7.1.1: PRIORITY is the one a peer-reflexive candidate would get.
        request.add(sa.PRIORITY, candidate_priority("prflx", pair.local.local_preference, pair.component))
        request.add(sa.ICE_CONTROLLING if self.controlling else sa.ICE_CONTROLLED, self.tie_breaker)
        if nominate:
            request.add(sa.USE_CANDIDATE)
        return request

    def _start_check(self, pair: CandidatePair, nominate: bool, now: float) -> None:
        # RFC 8445 section 14.3: RTO = MAX(500 ms, Ta * (Num-Waiting + Num-In-Progress)),
        # with ``check_rto`` as the floor.
        pending = sum(1 for p in self._checklist if p.state in (CheckState.WAITING, CheckState.IN_PROGRESS))
        tid = self._checks.start(self._request(pair, nominate), pair.remote.address, now,
                                 integrity_key=self._remote_key, fingerprint=True,
                                 rto=max(self.check_rto, self.ta * pending))
        self._routes[tid] = _Route(_CHECK, pair.local, pair, now, nominate, controlling=self.controlling)
        if pair.state is not CheckState.SUCCEEDED:
            pair.state = CheckState.IN_PROGRESS
        self.checks_sent += 1
        self._last_check_at = now
        self._flush_stun(self._checks, now)

    def _next_check(self, now: float) -> bool:
        """Send one check (section 6.1.4.2): triggered first, then Waiting, then unfreeze."""
        while self._triggered:
            pair, nominate = self._triggered.popleft()
            if pair.generation != self._generation:
                continue
            if pair.state is CheckState.IN_PROGRESS and not nominate:
                continue
            self._start_check(pair, nominate, now)
            return True
        eligible = [p for p in self._checklist
                    if self.backup_pairs or not self._is_nominated(p.component)]
        waiting = [p for p in eligible if p.state is CheckState.WAITING]
        if not waiting:
            busy = {p.foundation for p in self._checklist
                    if p.state in (CheckState.WAITING, CheckState.IN_PROGRESS)}
            waiting = [p for p in eligible if p.state is CheckState.FROZEN and p.foundation not in busy]
        if not waiting:
            return False
        self._start_check(max(waiting, key=lambda p: p.priority), False, now)
        return True

    def _trigger(self, pair: CandidatePair, nominate: bool, now: float) -> None:
        if len(self._triggered) < MAX_TRIGGERED:
            self._triggered.append((pair, nominate))
        self._wake_checks(now)

    # -- inputs ---------------------------------------------------------------------

    def handle_datagram(self, data: bytes, addr: Address, now: float,
                        local: Address) -> tuple[bytes, CandidatePair | None] | None:
        """Feed a datagram received on the socket bound to ``local``.

        Returns ``(payload, pair)`` when it is application data (``pair`` the
        pair it came on, or None if it matches none), else None: STUN and
        TURN traffic is consumed here.
        """
        addr = (addr[0], addr[1])
        host = self._host((local[0], local[1]))
        if host is None:
            self.dropped += 1
            return None
        turn = self._turn_clients.get((host.socket, addr))
        if turn is not None and not self._is_our_response(data):
            turn.handle_datagram(Receive(data, addr, local), now)
            return self._drain_turn(turn, host, now)
        return self._on_packet(data, addr, host, now)

    def _is_our_response(self, data: bytes) -> bool:
        return classify(data) is PacketKind.STUN and bytes(data[8:20]) in self._routes

    def _on_packet(self, data: bytes, addr: Address, local: LocalCandidate,
                   now: float) -> tuple[bytes, CandidatePair | None] | None:
        if classify(data) is not PacketKind.STUN:
            return data, self._pair_for(local.base, addr)
        try:
            message = Message.parse(data)
            if message.message_class == MessageClass.REQUEST:
                self._on_request(message, addr, local, now)
            elif message.message_class in (MessageClass.SUCCESS, MessageClass.ERROR):
                self._on_response(message, addr, local, now)
        except StunParseError:
            self.parse_errors += 1
        return None

    def _pair_for(self, base: Address, remote: Address) -> CandidatePair | None:
        for pair in self._sending.values():
            if pair.local.base == base and pair.remote.address == remote:
                return pair
        return self._pairs_by_key.get((base, remote))

    def _on_request(self, request: Message, addr: Address, local: LocalCandidate, now: float) -> None:
        if request.method != BINDING or (request.has_fingerprint and not request.check_fingerprint()):
            self.dropped += 1
            return
        self.checks_received += 1
        username = request.get(sa.USERNAME) or ""
        ufrag = username.partition(":")[0]
        key = self._local_keys.get(ufrag)
        if key is None or not request.check_integrity(key):
            # RFC 8445 section 7.3 / RFC 8489 section 9.1.3: 401, unsigned.
            self._send_from(local, request.error_response(401, "Unauthorized").encode(fingerprint=True), addr, now)
            return
        if not self.lite and not self._resolve_conflict(request, addr, local, key, now):
            return
        response = Message(BINDING, MessageClass.SUCCESS, request.transaction_id)
        response.add(sa.XOR_MAPPED_ADDRESS, addr)
        self._send_from(local, response.encode(key, fingerprint=True), addr, now)
        if ufrag != self.local_ufrag:
            return  # the previous generation: consent answered, nothing more (section 9)
        remote = self._remote_at(local.component, addr)
        if remote is None:
            remote = self._learn_prflx(local.component, addr, request.get(sa.PRIORITY) or 0)
            if remote is None:
                return
        pair = self._add_pair(local, remote, now) if not self.lite else self._lite_pair(local, remote)
        if pair is None:
            return
        use_candidate = sa.USE_CANDIDATE in request
        if self.lite:
            if use_candidate:
                self._nominate(pair, now)
            return
        if pair.state in (CheckState.FROZEN, CheckState.WAITING, CheckState.FAILED):
            pair.state = CheckState.WAITING
            self._trigger(pair, False, now)  # section 7.3.1.4
        if use_candidate and not self.controlling:  # section 7.3.1.5
            if pair.state is CheckState.SUCCEEDED and pair.valid_pair is not None:
                self._nominate(pair.valid_pair, now)
            else:
                pair.nominate_on_success = True

    def _lite_pair(self, local: LocalCandidate, remote: RemoteCandidate) -> CandidatePair:
        key = (local.base, remote.address)
        pair = self._pairs_by_key.get(key)
        if pair is None:
            pair = CandidatePair(local, remote, False, self._generation)
            pair.state = CheckState.SUCCEEDED
            pair.valid = True
            pair.valid_pair = pair
            self._pairs_by_key[key] = pair
            self._checklist.append(pair)
            self._valid.append(pair)
        return pair

    def _learn_prflx(self, component: int, addr: Address, priority: int) -> RemoteCandidate | None:
        # Section 7.3.1.3: a peer-reflexive remote candidate from the request's source.
        if len(self._remotes) >= MAX_REMOTE_CANDIDATES:
            self.dropped += 1
            return None
        self._prflx_count += 1
        candidate = Candidate(f"prflx{self._prflx_count}", component, "udp", priority,
                              addr[0], addr[1], "prflx")
        remote = RemoteCandidate(candidate, self._generation)
        self._add_remote(remote)
        return remote

    def _resolve_conflict(self, request: Message, addr: Address, local: LocalCandidate,
                          key: bytes, now: float) -> bool:
        """Section 7.3.1.1; False when we answered 487 and the request stops here."""
        theirs_controlling = request.get(sa.ICE_CONTROLLING)
        theirs_controlled = request.get(sa.ICE_CONTROLLED)
        if self.controlling and theirs_controlling is not None:
            if self.tie_breaker >= theirs_controlling:
                self._send_from(local, request.error_response(487, "Role Conflict").encode(key, fingerprint=True),
                                addr, now)
                return False
            self._switch_role(False)
        elif not self.controlling and theirs_controlled is not None:
            if self.tie_breaker >= theirs_controlled:
                self._switch_role(True)
            else:
                self._send_from(local, request.error_response(487, "Role Conflict").encode(key, fingerprint=True),
                                addr, now)
                return False
        return True

    def _switch_role(self, controlling: bool) -> None:
        self.controlling = controlling
        for pair in self._checklist + self._valid:
            pair.set_role(controlling)
        self._events.append(RoleChanged(controlling))

    def _on_response(self, response: Message, addr: Address, local: LocalCandidate, now: float) -> None:
        route = self._routes.get(response.transaction_id)
        if route is None or route.local.base != local.base:
            # Section 7.2.5.2.1: a response must arrive where its request left from.
            self.dropped += 1
            return
        client = self._consent if route.kind == _CONSENT else self._checks
        if client.handle_message(response, addr, now):
            self._drain_stun(client, now)

    def handle_timeout(self, now: float) -> None:
        self._checks.handle_timeout(now)
        self._drain_stun(self._checks, now)
        self._consent.handle_timeout(now)
        self._drain_stun(self._consent, now)
        for key, turn in list(self._turn_clients.items()):
            deadline = turn.next_deadline()
            if deadline is not None and deadline <= now:
                turn.handle_timeout(now)
                host = self._host(key[0])
                if host is not None:
                    self._drain_turn(turn, host, now)
        if self._next_check_at is not None and now >= self._next_check_at:
            self._next_check_at = None
            if self.remote_ufrag is not None and self._next_check(now):
                self._next_check_at = now + self.ta
        if self.controlling:
            self._maybe_nominate(now)
        self._consent_tick(now)
        self._check_failures()

    # -- outcomes -------------------------------------------------------------------

    def _drain_stun(self, client: StunClient, now: float) -> None:
        while (event := client.poll_event()) is not None:
            route = self._routes.pop(event.transaction_id, None)
            if route is None:
                continue
            if route.kind == _GATHER:
                if isinstance(event, TransactionSucceeded):
                    mapped = _attribute(event.response, sa.XOR_MAPPED_ADDRESS)
                    if mapped is not None:
                        self._add_srflx(route.local, mapped, route.server, now)
                self._gathering -= 1
                self._maybe_gathered()
            elif route.kind == _CHECK:
                if isinstance(event, TransactionSucceeded):
                    self._check_succeeded(route, event.response, event.addr, now)
                else:
                    self._check_failed(route, event, now)
            else:
                self._consent_outcome(route, event, now)
        self._flush_stun(client, now)

    def _check_succeeded(self, route: _Route, response: Message, addr: Address, now: float) -> None:
        pair = route.pair
        assert pair is not None
        if addr != pair.remote.address:  # section 7.2.5.2.1: non-symmetric
            pair.state = CheckState.FAILED
            return
        local = pair.local
        mapped = _attribute(response, sa.XOR_MAPPED_ADDRESS)
        if local.type != "relay" and mapped is not None and (mapped[0], mapped[1]) != local.address:
            local = self._local_for_mapped(local, (mapped[0], mapped[1]))
        valid = pair if local is pair.local else self._valid_pair_for(local, pair.remote)
        pair.state = CheckState.SUCCEEDED
        pair.valid_pair = valid
        if not valid.valid:
            valid.valid = True
            valid.last_consent = now
            valid.consent_due = now + self._consent_delay()
            self._valid.append(valid)
        valid.rtt = now - route.sent_at
        self._first_valid_at.setdefault(pair.component, now)
        for other in self._checklist:  # section 7.2.5.3.3: unfreeze the foundation
            if other.foundation == pair.foundation and other.state is CheckState.FROZEN:
                other.state = CheckState.WAITING
                self._wake_checks(now)
        if route.nominate or (not self.controlling and pair.nominate_on_success):
            self._nominate(valid, now)
        elif self.controlling:
            self._maybe_nominate(now)

    def _local_for_mapped(self, base: LocalCandidate, mapped: Address) -> LocalCandidate:
        for local in self._locals:
            if local.address == mapped and local.socket == base.socket:
                return local
        # Section 7.2.5.3.1: a peer-reflexive local candidate, not signalled.
        priority = candidate_priority("prflx", base.local_preference, base.component)
        foundation = self._foundations.get("prflx", base.address[0], None)
        candidate = Candidate(foundation, base.component, "udp", priority, mapped[0], mapped[1], "prflx",
                              base.address[0], base.address[1])
        local = LocalCandidate(candidate, base.socket, base.socket, base.local_preference)
        self._locals.append(local)
        return local

    def _check_failed(self, route: _Route, event: object, now: float) -> None:
        pair = route.pair
        assert pair is not None
        if isinstance(event, TransactionFailed):
            code = _attribute(event.response, sa.ERROR_CODE)
            if code is not None and code[0] == 487:  # section 7.2.5.1
                if route.controlling == self.controlling:  # not already switched by a request
                    self._switch_role(not route.controlling)
                pair.state = CheckState.WAITING
                self._trigger(pair, False, now)
                return
        if route.nominate:
            self._nominating.pop(pair.component, None)
            pair.valid = False
            if pair in self._valid:
                self._valid.remove(pair)
        if pair.state is not CheckState.SUCCEEDED:
            pair.state = CheckState.FAILED
        self._check_failures()

    def _maybe_nominate(self, now: float) -> None:
        """Regular nomination (section 8.1.1): the best valid pair once nothing better is pending,
        or after ``nomination_delay`` from the first valid pair."""
        for component in range(1, self.components + 1):
            if component in self._nominating or self._is_nominated(component):
                continue
            valid = [p for p in self._valid if p.component == component and p.generation == self._generation]
            if not valid:
                continue
            best = max(valid, key=lambda p: p.priority)
            better_pending = any(p.component == component and p.state in _PENDING_STATES
                                 and p.priority > best.priority for p in self._checklist)
            if better_pending and now < self._first_valid_at[component] + self.nomination_delay:
                continue
            self._nominating[component] = best
            # One request per component, sent at once rather than after Ta: pacing
            # guards against floods of checks, and this saves up to Ta of setup time.
            self._start_check(best, True, now)

    def _is_nominated(self, component: int) -> bool:
        pair = self._nominated.get(component)
        return pair is not None and pair.generation == self._generation

    def _nominate(self, pair: CandidatePair, now: float) -> None:
        pair.nominated = True
        component = pair.component
        current = self._nominated.get(component)
        if current is not None and current.generation == pair.generation and current.priority >= pair.priority:
            return
        self._nominated[component] = pair
        self._nominating.pop(component, None)
        self._events.append(PairNominated(component, pair))
        restarted = current is not None and current.generation < pair.generation
        self._select(component, pair, "restart" if restarted else "nominated", now)
        if self._restarting and all(self._is_nominated(c) for c in range(1, self.components + 1)):
            self._finish_restart()

    def _select(self, component: int, pair: CandidatePair, reason: str, now: float) -> None:
        if self._sending.get(component) is pair:
            return
        self._sending[component] = pair
        if pair.local.turn is not None and pair.local.turn.state is TurnClientState.ALLOCATED:
            pair.local.turn.bind_channel(pair.remote.address, now)
            self._flush_turn(pair.local.turn, pair.local.socket)
        self._events.append(PathSelected(component, pair, reason))

    def _check_failures(self) -> None:
        """Section 8.1.2 with trickle (RFC 8838 section 8): fail a component only after both ends."""
        if self.lite or not self._remote_end or not self._gathered or self.remote_ufrag is None:
            return
        for component in range(1, self.components + 1):
            if component in self._failed or component in self._sending:
                continue
            pending = any(p.component == component and p.state in _PENDING_STATES for p in self._checklist)
            valid = any(p.component == component for p in self._valid)
            if not pending and not valid:
                self._failed.add(component)
                self._events.append(ComponentFailed(component))

    # -- consent freshness (RFC 7675) and path switching ----------------------------------

    def _consent_delay(self) -> float:
        # RFC 7675 section 5.1: randomised between 0.8 and 1.2 times the interval.
        fraction = int.from_bytes(self._random(2), "big") / 65535
        return self.consent_interval * (0.8 + 0.4 * fraction)

    def _consent_tick(self, now: float) -> None:
        if self.lite:
            return
        for pair in list(self._valid):
            if pair.generation != self._generation or pair.consent_lost:
                continue  # during a restart the old pairs wait (section 9)
            if now >= pair.last_consent + self.consent_timeout:  # the same sum as next_deadline
                pair.consent_lost = True
                pair.valid = False
                self._valid.remove(pair)
                self._events.append(ConsentLost(pair.component, pair))
                if self._sending.get(pair.component) is pair:
                    self._switch(pair.component, "consent-lost", now)
                continue
            if pair.consent_tid is None and now >= pair.consent_due:
                tid = self._consent.start(self._request(pair, False), pair.remote.address, now,
                                          integrity_key=self._remote_key, fingerprint=True)
                self._routes[tid] = _Route(_CONSENT, pair.local, pair, now)
                pair.consent_tid = tid
                self._flush_stun(self._consent, now)

    def _consent_outcome(self, route: _Route, event: object, now: float) -> None:
        pair = route.pair
        assert pair is not None
        pair.consent_tid = None
        answered = isinstance(event, TransactionSucceeded) and event.addr == pair.remote.address
        pair.outcomes.append(answered)
        newly_degraded = False
        if answered:
            pair.last_consent = now
            pair.rtt = now - route.sent_at
            pair.degraded = False
            pair.consent_due = now + self._consent_delay()
        else:
            pair.consent_due = now + self.consent_interval / 5  # probe faster while it fails
            if not pair.degraded:
                pair.degraded = newly_degraded = True
                self._events.append(PathDegraded(pair.component, pair, now - pair.last_consent))
        if self._sending.get(pair.component) is not pair:
            return
        if newly_degraded and self.switch_on_degraded:
            self._switch(pair.component, "degraded", now)
        elif answered and self.max_rtt is not None and pair.rtt is not None and pair.rtt > self.max_rtt:
            self._switch(pair.component, "rtt", now)
        elif self.max_loss is not None and len(pair.outcomes) >= 5 and pair.loss > self.max_loss:
            self._switch(pair.component, "loss", now)

    def _switch(self, component: int, reason: str, now: float) -> None:
        """Move this agent's sending path to the best other healthy valid pair, if any."""
        current = self._sending.get(component)
        options = [p for p in self._valid if p.component == component and p is not current
                   and p.generation == self._generation and not p.degraded and not p.consent_lost
                   and (reason != "rtt" or p.rtt is None or self.max_rtt is None or p.rtt <= self.max_rtt)
                   and (reason != "loss" or self.max_loss is None or p.loss <= self.max_loss)]
        if options:
            self._select(component, max(options, key=lambda p: p.priority), reason, now)
        elif reason == "consent-lost":
            self._sending.pop(component, None)  # RFC 7675 section 5.1: stop sending
            self._events.append(RestartNeeded(component, reason))

    # -- ICE restart (RFC 8445 section 9) -----------------------------------------------

    def restart(self, now: float) -> None:
        """New credentials and checks; traffic stays on the current pairs until new ones are nominated.

        The local candidates are kept and announced again (CandidateGathered,
        GatheringCompleted); the peer's new credentials and candidates come
        through :meth:`set_remote_credentials` and :meth:`add_remote_candidate`.
        """
        self._generation += 1
        self._local_keys = {self.local_ufrag: self._local_keys[self.local_ufrag]}  # answer the old pair
        self.local_ufrag = _ice_string(self._random, 6)
        self.local_pwd = _ice_string(self._random, 18)
        self._local_keys[self.local_ufrag] = short_term_key(self.local_pwd)
        self.remote_ufrag = self.remote_pwd = None
        self._remotes.clear()
        self._remote_index.clear()
        self._remote_end = False
        self._checklist.clear()
        self._pairs_by_key.clear()
        self._triggered.clear()
        self._next_check_at = None
        self._first_valid_at.clear()
        self._nominating.clear()
        self._failed.clear()
        self._valid = [p for p in self._valid if p in self._sending.values()]
        self._restarting = True
        for local in self._locals:
            if local.type != "prflx":
                self._events.append(CandidateGathered(local.candidate))
        if self._gathered:
            self._events.append(GatheringCompleted())

    def _finish_restart(self) -> None:
        self._restarting = False
        self._local_keys = {self.local_ufrag: self._local_keys[self.local_ufrag]}
        self._valid = [p for p in self._valid if p.generation == self._generation]

    @property
    def generation(self) -> int:
        """How many ICE restarts this agent went through."""
        return self._generation

    # -- data -----------------------------------------------------------------------

    def send(self, data: bytes, now: float, component: int = 1) -> bool:
        """Send application data on the sending pair; False (dropped) before one is selected."""
        pair = self._sending.get(component)
        if pair is None:
            self.dropped += 1
            return False
        self._send_from(pair.local, data, pair.remote.address, now)
        return True

    def _send_from(self, local: LocalCandidate, data: bytes, addr: Address, now: float) -> None:
        turn = local.turn
        if turn is None:
            self._transmit.append((data, addr, local.socket))
            return
        if turn.state is not TurnClientState.ALLOCATED:
            self.dropped += 1
            return
        turn.send_to(data, addr, now)
        self._flush_turn(turn, local.socket)

    def _flush_stun(self, client: StunClient, now: float) -> None:
        while (transmit := client.poll_transmit()) is not None:
            data, addr = transmit.data, transmit.destination
            route = self._routes.get(data[8:20])
            if route is not None:
                self._send_from(route.local, data, addr, now)

    def _flush_turn(self, turn: TurnClient, socket: Address) -> None:
        while (item := turn.poll_transmit()) is not None:
            self._transmit.append((item.data, item.destination, socket))

    def _drain_turn(self, turn: TurnClient, host: LocalCandidate,
                    now: float) -> tuple[bytes, CandidatePair | None] | None:
        result = None
        while (event := turn.poll_event()) is not None:
            if isinstance(event, turn_events.DataReceived):
                relay = self._relays.get((host.socket, turn.server))
                if relay is not None:
                    result = self._on_packet(event.data, (event.peer[0], event.peer[1]), relay, now) or result
            elif isinstance(event, turn_events.AllocationCreated):
                if event.mapped_address is not None and not self.relay_only and not turn.reliable:
                    self._add_srflx(host, event.mapped_address, turn.server, now)
                self._add_relay(host, turn, event.relayed_address, now)
                self._gathering -= 1
                self._maybe_gathered()
            elif isinstance(event, turn_events.AllocationFailed):
                self._gathering -= 1
                self._maybe_gathered()
        self._flush_turn(turn, host.socket)
        return result

    # -- outputs --------------------------------------------------------------------

    def poll_transmit(self) -> tuple[bytes, Address, Address] | None:
        """The next ``(data, addr, local)``: send ``data`` to ``addr`` from the socket bound to ``local``."""
        return self._transmit.popleft() if self._transmit else None

    def poll_event(self) -> IceEvent | None:
        return self._events.popleft() if self._events else None

    def next_deadline(self) -> float | None:
        deadlines = [d for d in (self._next_check_at, self._checks.next_deadline(),
                                 self._consent.next_deadline()) if d is not None]
        for turn in self._turn_clients.values():
            deadline = turn.next_deadline()
            if deadline is not None:
                deadlines.append(deadline)
        if self.controlling:
            for component, first in self._first_valid_at.items():
                if component not in self._nominating and not self._is_nominated(component):
                    deadlines.append(first + self.nomination_delay)
        if not self.lite:
            for pair in self._valid:
                if pair.generation == self._generation and not pair.consent_lost:
                    deadlines.append(pair.last_consent + self.consent_timeout)
                    if pair.consent_tid is None:
                        deadlines.append(pair.consent_due)
        return min(deadlines) if deadlines else None
