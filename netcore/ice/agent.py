"""The ICE agent, sans-IO (RFC 8445, trickle RFC 8838, consent RFC 7675), full or lite.

One :class:`Agent` runs one data stream of ``components`` components over any
number of local sockets. It never opens a socket: the caller binds them, tells
the agent their addresses (:meth:`Agent.add_local_address`), feeds what they
receive (:meth:`Agent.handle_datagram` with a :class:`~netcore.net.Receive`
whose ``destination`` is the socket's own address) and sends what
:meth:`Agent.poll_transmit` gives, a :class:`~netcore.net.Transmit` whose
``source`` names the socket to send from. Application data comes out as
:class:`~netcore.ice.events.DataReceived` events. Relayed candidates run a
:class:`~netcore.turn.client.TurnClient` inside the agent, on the socket of
their host candidate.

The agent composes parts that decide while it sends, each in its own module:
:mod:`~netcore.ice.pairs` (candidates, the check list and the check-state
transition table the code runs), :mod:`~netcore.ice.gathering` (sockets,
candidates and the TURN clients), :mod:`~netcore.ice.consent` (RFC 7675),
:mod:`~netcore.ice.selection` (nomination and the sending path) and
:mod:`~netcore.ice.checks` (the STUN messages of checks).

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

import os
from collections import deque
from typing import Callable

from netcore.demux import PacketKind, classify
from netcore.errors import UsageError
from netcore.ice.checks import (Conflict, Purpose, Route, attribute, check_request, ice_string, role_conflict,
                                transaction_id)
from netcore.ice.consent import Consent, ConsentDue
from netcore.ice.events import (CandidateGathered, ComponentFailed, ConnectionLost, ConsentLost, DataReceived,
                                GatheringCompleted, IceEvent, PairNominated, PathDegraded, PathSelected,
                                RoleChanged)
from netcore.ice.gathering import Gathering, TurnServerConfig, family
from netcore.ice.pairs import (PENDING_STATES, CandidatePair, CheckEvent, CheckList, CheckState, LocalCandidate,
                               RemoteCandidate, RemoteCandidates)
from netcore.ice.selection import Selection
from netcore.net import Address, Receive, Transmit
from netcore.sdp.candidate import Candidate
from netcore.stun import attributes
from netcore.stun.credentials import short_term_key
from netcore.stun.errors import StunParseError
from netcore.stun.message import BINDING, Message, MessageClass
from netcore.stun.transaction import StunClient, TransactionFailed, TransactionSucceeded
from netcore.turn.client import AllocationCreated, AllocationFailed, TurnClient
from netcore.turn.client import DataReceived as TurnDataReceived

_STALE = object()  # Agent._deadline: to be computed again

__all__ = ["Agent", "CandidatePair", "CheckState", "LocalCandidate", "RemoteCandidate", "TurnServerConfig"]



class Agent:
    """A full ICE agent, or an ICE-lite one (``lite=True``, RFC 8445 section 2.5)."""

    def __init__(
        self,
        controlling: bool,
        *,
        lite: bool = False,
        components: int = 1,
        stun_servers: tuple[Address, ...] = (),
        turn_servers: tuple[TurnServerConfig, ...] = (),
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
        self.backup_pairs = backup_pairs
        self._random = random
        self.local_ufrag = ufrag or ice_string(random, 6)
        self.local_pwd = pwd or ice_string(random, 18)
        self.tie_breaker = int.from_bytes(random(8), "big")
        self.remote_ufrag: str | None = None
        self.remote_pwd: str | None = None
        self._remote_key: bytes | None = None
        self._local_keys: dict[str, bytes] = {self.local_ufrag: short_term_key(self.local_pwd)}
        self._generation = 0

        self._checks = StunClient(rto=check_rto, rc=check_rc)
        self._consent_checks = StunClient(rto=degraded_after, rc=1, rm=1)  # one send, a loss sample each
        self._consent = Consent(consent_interval, consent_timeout, random)
        self._routes: dict[bytes, Route] = {}
        self._transmit: deque[Transmit] = deque()
        self._gathering = Gathering(self.stun_servers, self.turn_servers, relay_only, lite, random, self._transmit)
        self._hosts = self._gathering.sockets  # host candidates by socket address
        self._turn_clients = self._gathering.turn_clients  # (socket, server) -> TurnClient
        self._locals: list[LocalCandidate] = []  # signalled (or peer-reflexive) local candidates
        self._remotes = RemoteCandidates()
        self._remote_end = False
        self._checklist = CheckList()
        self._next_check_at: float | None = None
        self._last_check_at = float("-inf")
        self._selection = Selection(components, nomination_delay, switch_on_degraded, max_rtt, max_loss)
        self._sending = self._selection.sending  # component -> the pair this agent sends on
        self._restarting = False
        self._events: deque[IceEvent] = deque()
        # next_deadline()'s answer until an input may change it: asked after every datagram by the
        # driver, it was a tenth of a call peer's packet path, and a media datagram changes nothing.
        self._deadline: float | None | object = _STALE
        self.checks_sent = 0
        self.checks_received = 0
        self.parse_errors = 0
        self.dropped = 0

    # -- local candidates -----------------------------------------------------------

    def add_local_address(self, address: Address, component: int = 1) -> None:
        """Register a bound socket's address as a host candidate base (loopback included when given)."""
        self._deadline = _STALE
        if not 1 <= component <= self.components:
            raise UsageError(f"component {component} out of 1..{self.components}")
        self._gathering.add_host((address[0], address[1]), component)

    def add_turn_stream(self, local: Address, server: TurnServerConfig, component: int = 1) -> None:
        """Register a TCP or TLS connection to ``server``, known by its local address ``local``.

        The adapter frames what the stream carries (``turn.wire.StreamFramer``)
        and feeds each frame to :meth:`handle_datagram` with this ``local``;
        transmits naming ``local`` are written to the stream.
        """
        self._deadline = _STALE
        self._gathering.add_stream((local[0], local[1]), server, component)

    def gather(self, now: float) -> None:
        """Announce the host candidates and start server-reflexive and relayed gathering."""
        self._deadline = _STALE
        gathering = self._gathering
        if gathering.pending or gathering.completed:
            raise UsageError("gather() called twice")
        for host in gathering.sockets.values():
            if not self.relay_only:
                self._add_local(host, now)
            for server in gathering.stun_servers_for(host):
                request = Message(BINDING, MessageClass.REQUEST, self._random(12))
                tid = self._checks.start(request, server, now, fingerprint=True)
                self._routes[tid] = Route(Purpose.GATHER, host, None, now, server=server)
                gathering.started()
            for server in gathering.turn_servers_for(host):
                gathering.allocate(host, server, now)
        for host, server in gathering.stream_allocations():
            gathering.allocate(host, server, now)
        self._flush_stun(self._checks, now)
        if gathering.complete_if_idle():
            self._events.append(GatheringCompleted())

    def _add_local(self, local: LocalCandidate, now: float) -> None:
        self._locals.append(local)
        if local.type != "prflx":
            self._events.append(CandidateGathered(local.candidate))
        if not self.lite and local.type in ("host", "relay"):
            for remote in self._remotes:
                self._add_pair(local, remote, now)

    def _add_srflx(self, host: LocalCandidate, mapped: Address, server: Address, now: float) -> None:
        local = self._gathering.srflx(host, mapped, server, self._locals)
        if local is not None:
            self._add_local(local, now)

    def _gathered_one(self) -> None:
        if self._gathering.finished():
            self._events.append(GatheringCompleted())

    @property
    def local_candidates(self) -> list[Candidate]:
        """The candidates to signal (peer-reflexive ones are not signalled)."""
        return [c.candidate for c in self._locals if c.type != "prflx"]

    @property
    def gathering_complete(self) -> bool:
        return self._gathering.completed

    # -- remote side ----------------------------------------------------------------

    def set_remote_credentials(self, ufrag: str, pwd: str, now: float | None = None) -> None:
        """The peer's ice-ufrag/ice-pwd; checks start once they and a pair exist."""
        self._deadline = _STALE
        if self.remote_ufrag is not None and (ufrag, pwd) != (self.remote_ufrag, self.remote_pwd):
            raise UsageError("remote credentials changed: call restart() first (RFC 8445 section 9)")
        self.remote_ufrag, self.remote_pwd = ufrag, pwd
        self._remote_key = short_term_key(pwd)
        if now is not None:
            self._wake_checks(now)

    def add_remote_candidate(self, candidate: Candidate | None, now: float) -> None:
        """Add a signalled or trickled candidate; ``None`` is end-of-candidates (RFC 8838 section 14)."""
        self._deadline = _STALE
        if candidate is None:
            self._remote_end = True
            self._check_failures()
            return
        if not self._remotes.usable(candidate, self.components) or self._remotes.known(candidate):
            return
        remote = self._remotes.add(candidate, self._generation)
        if remote is None:
            self.dropped += 1
            return
        if self.lite:
            return
        for local in self._locals:
            if local.type in ("host", "relay"):
                self._add_pair(local, remote, now)

    # -- pairs ----------------------------------------------------------------------

    def _add_pair(self, local: LocalCandidate, remote: RemoteCandidate, now: float) -> CandidatePair | None:
        if local.component != remote.component or family(local.address[0]) != family(remote.address[0]):
            return None
        if local.type == "srflx" or local.type == "prflx":
            local = self._gathering.sockets[local.socket]  # section 6.1.2.4: pruned to its base
        pair = self._checklist.find(local.base, remote.address)
        if pair is not None:
            return pair
        pair = self._checklist.add(local, remote, self.controlling, self._generation)
        if pair is None:
            self.dropped += 1
            return None
        self._wake_checks(now)
        return pair

    @property
    def pairs(self) -> list[CandidatePair]:
        """The check list, highest priority first."""
        return sorted(self._checklist.pairs, key=lambda p: p.priority, reverse=True)

    @property
    def valid_pairs(self) -> list[CandidatePair]:
        return sorted(self._checklist.valid, key=lambda p: p.priority, reverse=True)

    def nominated_pair(self, component: int = 1) -> CandidatePair | None:
        return self._selection.nominated.get(component)

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
        return check_request(self._random(12), f"{self.remote_ufrag}:{self.local_ufrag}", pair,
                             self.controlling, self.tie_breaker, nominate)

    def _start_check(self, pair: CandidatePair, nominate: bool, now: float) -> None:
        # RFC 8445 section 14.3: RTO = MAX(500 ms, Ta * (Num-Waiting + Num-In-Progress)),
        # with ``check_rto`` as the floor.
        pending = self._checklist.in_flight()
        tid = self._checks.start(self._request(pair, nominate), pair.remote.address, now,
                                 integrity_key=self._remote_key, fingerprint=True,
                                 rto=max(self.check_rto, self.ta * pending))
        self._routes[tid] = Route(Purpose.CHECK, pair.local, pair, now, nominate, controlling=self.controlling)
        pair.apply(CheckEvent.CHECK_SENT)
        self.checks_sent += 1
        self._last_check_at = now
        self._flush_stun(self._checks, now)

    def _next_check(self, now: float) -> bool:
        """Send one check (section 6.1.4.2): triggered first, then Waiting, then unfreeze."""
        chosen = self._checklist.next_check(
            self._generation,
            lambda p: self.backup_pairs or not self._selection.is_nominated(p.component, self._generation))
        if chosen is None:
            return False
        self._start_check(chosen[0], chosen[1], now)
        return True

    def _trigger(self, pair: CandidatePair, nominate: bool, now: float) -> None:
        self._checklist.trigger(pair, nominate)
        self._wake_checks(now)

    # -- inputs ---------------------------------------------------------------------

    def handle_datagram(self, datagram: Receive, now: float) -> None:
        """Feed a datagram received on the socket bound to ``datagram.destination``.

        STUN and TURN traffic is consumed here; anything else is application
        data and comes out as a :class:`DataReceived` event. Malformed input is
        counted (``parse_errors``, ``dropped``), never raised.
        """
        local, source = datagram.destination, datagram.source
        if local is None or source is None:
            self.dropped += 1
            return
        host = self._hosts.get(local) or self._gathering.host((local[0], local[1]))
        if host is None:
            self.dropped += 1
            return
        source = (source[0], source[1])
        turn = self._turn_clients.get((host.socket, source)) if self._turn_clients else None
        if datagram.kind is not PacketKind.STUN:
            if turn is not None:
                self._deadline = _STALE
                self._feed_turn(turn, host, datagram, now)
            else:  # application data on a direct path: nothing the deadline depends on
                self._events.append(DataReceived(datagram.data, host.component, self._pair_for(host.base, source)))
            return
        self._deadline = _STALE
        message = self._parse(datagram.data)
        if message is None:
            return
        if turn is not None and message.transaction_id not in self._routes:
            self._feed_turn(turn, host, datagram, now)  # the TURN server's, not an answer to us
            return
        self._on_message(message, source, host, now)

    def _parse(self, data: bytes) -> Message | None:
        try:
            return Message.parse(data)
        except StunParseError:
            self.parse_errors += 1
            return None

    def _on_packet(self, data: bytes, addr: Address, local: LocalCandidate, now: float) -> None:
        """A datagram unwrapped from a TURN relay (classified here, the first time it is looked at)."""
        if classify(data) is not PacketKind.STUN:
            self._events.append(DataReceived(data, local.component, self._pair_for(local.base, addr)))
            return
        message = self._parse(data)
        if message is not None:
            self._on_message(message, addr, local, now)

    def _on_message(self, message: Message, addr: Address, local: LocalCandidate, now: float) -> None:
        try:
            if message.message_class == MessageClass.REQUEST:
                self._on_request(message, addr, local, now)
            elif message.message_class in (MessageClass.SUCCESS, MessageClass.ERROR):
                self._on_response(message, addr, local, now)
        except StunParseError:
            self.parse_errors += 1

    def _pair_for(self, base: Address, remote: Address) -> CandidatePair | None:
        for pair in self._sending.values():
            if pair.local.base == base and pair.remote.address == remote:
                return pair
        return self._checklist.find(base, remote)

    def _on_request(self, request: Message, addr: Address, local: LocalCandidate, now: float) -> None:
        if request.method != BINDING or (request.has_fingerprint and not request.check_fingerprint()):
            self.dropped += 1
            return
        self.checks_received += 1
        username = request.get(attributes.USERNAME) or ""
        ufrag = username.partition(":")[0]
        key = self._local_keys.get(ufrag)
        if key is None or not request.check_integrity(key):
            # RFC 8445 section 7.3 / RFC 8489 section 9.1.3: 401, unsigned.
            self._send_from(local, request.error_response(401, "Unauthorized").encode(fingerprint=True), addr, now)
            return
        if not self.lite and not self._resolve_conflict(request, addr, local, key, now):
            return
        response = Message(BINDING, MessageClass.SUCCESS, request.transaction_id)
        response.add(attributes.XOR_MAPPED_ADDRESS, addr)
        self._send_from(local, response.encode(key, fingerprint=True), addr, now)
        if ufrag != self.local_ufrag:
            return  # the previous generation: consent answered, nothing more (section 9)
        remote = self._remotes.at(local.component, addr)
        if remote is None:
            remote = self._remotes.learn_prflx(local.component, addr, request.get(attributes.PRIORITY) or 0,
                                               self._generation)
            if remote is None:
                self.dropped += 1
                return
        pair = (self._add_pair(local, remote, now) if not self.lite
                else self._checklist.add_lite(local, remote, self._generation))
        if pair is None:
            return
        use_candidate = attributes.USE_CANDIDATE in request
        if self.lite:
            if use_candidate:
                self._nominate(pair, now)
            return
        if pair.accepts(CheckEvent.CHECK_RECEIVED):
            pair.apply(CheckEvent.CHECK_RECEIVED)
            self._trigger(pair, False, now)  # section 7.3.1.4
        if use_candidate and not self.controlling:  # section 7.3.1.5
            if pair.state is CheckState.SUCCEEDED and pair.valid_pair is not None:
                self._nominate(pair.valid_pair, now)
            else:
                pair.nominate_on_success = True

    def _resolve_conflict(self, request: Message, addr: Address, local: LocalCandidate,
                          key: bytes, now: float) -> bool:
        """Section 7.3.1.1; False when we answered 487 and the request stops here."""
        conflict = role_conflict(self.controlling, self.tie_breaker, request)
        if conflict is Conflict.REJECT:
            self._send_from(local, request.error_response(487, "Role Conflict").encode(key, fingerprint=True),
                            addr, now)
            return False
        if conflict is Conflict.SWITCH:
            self._switch_role(not self.controlling)
        return True

    def _switch_role(self, controlling: bool) -> None:
        self.controlling = controlling
        self._checklist.set_role(controlling)
        self._events.append(RoleChanged(controlling))

    def _on_response(self, response: Message, addr: Address, local: LocalCandidate, now: float) -> None:
        route = self._routes.get(response.transaction_id)
        if route is None or route.local.base != local.base:
            # Section 7.2.5.2.1: a response must arrive where its request left from.
            self.dropped += 1
            return
        client = self._consent_checks if route.kind is Purpose.CONSENT else self._checks
        if client.handle_message(response, addr, now):
            self._drain_stun(client, now)

    def handle_timeout(self, now: float) -> None:
        self._deadline = _STALE
        self._checks.handle_timeout(now)
        self._drain_stun(self._checks, now)
        self._consent_checks.handle_timeout(now)
        self._drain_stun(self._consent_checks, now)
        for socket, turn in self._gathering.due(now):
            host = self._gathering.host(socket)
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
            if route.kind is Purpose.GATHER:
                if isinstance(event, TransactionSucceeded):
                    mapped = attribute(event.response, attributes.XOR_MAPPED_ADDRESS)
                    if mapped is not None:
                        self._add_srflx(route.local, mapped, route.server, now)
                self._gathered_one()
            elif route.kind is Purpose.CHECK:
                if isinstance(event, TransactionSucceeded):
                    self._check_succeeded(route, event.response, event.addr, now)
                else:
                    self._check_failed(route, event, now)
            else:
                self._consent_outcome(route, event, now)
        self._flush_stun(client, now)

    def _check_succeeded(self, route: Route, response: Message, addr: Address, now: float) -> None:
        pair = route.pair
        assert pair is not None
        if addr != pair.remote.address:  # section 7.2.5.2.1: non-symmetric
            pair.apply(CheckEvent.NOT_SYMMETRIC)
            return
        local = pair.local
        mapped = attribute(response, attributes.XOR_MAPPED_ADDRESS)
        if local.type != "relay" and mapped is not None and (mapped[0], mapped[1]) != local.address:
            local = self._local_for_mapped(local, (mapped[0], mapped[1]))
        valid = pair if local is pair.local else self._checklist.valid_pair_for(
            local, pair.remote, self.controlling, self._generation)
        pair.apply(CheckEvent.SUCCESS)
        pair.valid_pair = valid
        if not valid.valid:
            valid.valid = True
            self._consent.granted(valid, now)
            self._checklist.valid.append(valid)
        valid.rtt = now - route.sent_at
        self._selection.first_valid_at.setdefault(pair.component, now)
        if any(p.foundation == pair.foundation and p.state is CheckState.FROZEN for p in self._checklist.pairs):
            self._checklist.unfreeze(pair.foundation)
            self._wake_checks(now)
        if route.nominate or (not self.controlling and pair.nominate_on_success):
            self._nominate(valid, now)
        elif self.controlling:
            self._maybe_nominate(now)

    def _local_for_mapped(self, base: LocalCandidate, mapped: Address) -> LocalCandidate:
        for local in self._locals:
            if local.address == mapped and local.socket == base.socket:
                return local
        local = self._gathering.prflx(base, mapped)  # section 7.2.5.3.1: not signalled
        self._locals.append(local)
        return local

    def _check_failed(self, route: Route, event: object, now: float) -> None:
        pair = route.pair
        assert pair is not None
        if isinstance(event, TransactionFailed):
            code = attribute(event.response, attributes.ERROR_CODE)
            if code is not None and code[0] == 487:  # section 7.2.5.1
                if route.controlling == self.controlling:  # not already switched by a request
                    self._switch_role(not route.controlling)
                pair.apply(CheckEvent.ROLE_CONFLICT)
                self._trigger(pair, False, now)
                return
        if route.nominate:
            self._selection.nominating.pop(pair.component, None)
            pair.valid = False
            if pair in self._checklist.valid:
                self._checklist.valid.remove(pair)
        pair.apply(CheckEvent.FAILURE)
        self._check_failures()

    def _maybe_nominate(self, now: float) -> None:
        for pair in self._selection.to_nominate(self._checklist.valid, self._checklist.pairs, self._generation, now):
            # One request per component, sent at once rather than after Ta: pacing
            # guards against floods of checks, and this saves up to Ta of setup time.
            self._start_check(pair, True, now)

    def _nominate(self, pair: CandidatePair, now: float) -> None:
        reason = self._selection.nominate(pair)
        if reason is None:
            return
        self._events.append(PairNominated(pair.component, pair))
        self._select(pair.component, pair, reason, now)
        if self._restarting and self._selection.all_nominated(self._generation):
            self._finish_restart()

    def _select(self, component: int, pair: CandidatePair, reason: str, now: float) -> None:
        if not self._selection.select(component, pair):
            return
        self._gathering.bind_channel(pair.local, pair.remote.address, now)
        self._events.append(PathSelected(component, pair, reason))

    def _check_failures(self) -> None:
        """Section 8.1.2 with trickle (RFC 8838 section 8): fail a component only after both ends."""
        if self.lite or not self._remote_end or not self._gathering.completed or self.remote_ufrag is None:
            return
        pending = {p.component for p in self._checklist.pairs if p.state in PENDING_STATES}
        for component in self._selection.newly_failed(pending, (p.component for p in self._checklist.valid)):
            self._events.append(ComponentFailed(component))

    # -- consent freshness (RFC 7675) and path switching ----------------------------------

    def _consent_tick(self, now: float) -> None:
        if self.lite:
            return
        # During a restart the old pairs wait (section 9).
        current = [p for p in self._checklist.valid if p.generation == self._generation]
        for pair, due in self._consent.due(current, now):
            if due is ConsentDue.EXPIRED:
                pair.valid = False
                self._checklist.valid.remove(pair)
                self._events.append(ConsentLost(pair.component, pair))
                if self._sending.get(pair.component) is pair:
                    self._switch(pair.component, "consent-lost", now)
                continue
            tid = self._consent_checks.start(self._request(pair, False), pair.remote.address, now,
                                             integrity_key=self._remote_key, fingerprint=True)
            self._routes[tid] = Route(Purpose.CONSENT, pair.local, pair, now)
            self._consent.sent(pair)
            self._flush_stun(self._consent_checks, now)

    def _consent_outcome(self, route: Route, event: object, now: float) -> None:
        pair = route.pair
        assert pair is not None
        answered = isinstance(event, TransactionSucceeded) and event.addr == pair.remote.address
        newly_degraded = False
        if answered:
            self._consent.answered(pair, now)
            pair.rtt = now - route.sent_at
        else:
            newly_degraded = self._consent.unanswered(pair, now)
            if newly_degraded:
                self._events.append(PathDegraded(pair.component, pair, now - pair.consent.last_granted))
        if self._sending.get(pair.component) is pair:
            reason = self._selection.switch_reason(pair, answered, newly_degraded)
            if reason is not None:
                self._switch(pair.component, reason, now)

    def switch_path(self, component: int, reason: str, now: float) -> bool:
        """Move the sending path of ``component`` off its pair because the application saw it fail
        (the media sent on it went unacknowledged while consent still holds, say); True when
        another healthy valid pair took over (a :class:`PathSelected` with ``reason``).

        The pair left is checked for consent at once, so a pair that is really gone is
        marked degraded without waiting for its next scheduled check.
        """
        self._deadline = _STALE
        current = self._sending.get(component)
        pair = self._selection.alternative(component, reason, self._checklist.valid, self._generation)
        if current is None or pair is None:
            return False
        if not current.consent.in_flight:
            current.consent.next_check = now
        self._select(component, pair, reason, now)
        return True

    def _switch(self, component: int, reason: str, now: float) -> None:
        """Move this agent's sending path to the best other healthy valid pair, if any."""
        pair = self._selection.alternative(component, reason, self._checklist.valid, self._generation)
        if pair is not None:
            self._select(component, pair, reason, now)
        elif reason == "consent-lost":
            self._sending.pop(component, None)  # RFC 7675 section 5.1: stop sending
            self._events.append(ConnectionLost(component, reason))

    # -- ICE restart (RFC 8445 section 9) -----------------------------------------------

    def restart(self, now: float) -> None:
        """New credentials and checks; traffic stays on the current pairs until new ones are nominated.

        The local candidates are kept and announced again (CandidateGathered,
        GatheringCompleted); the peer's new credentials and candidates come
        through :meth:`set_remote_credentials` and :meth:`add_remote_candidate`.
        """
        self._deadline = _STALE
        self._generation += 1
        self._local_keys = {self.local_ufrag: self._local_keys[self.local_ufrag]}  # answer the old pair
        self.local_ufrag = ice_string(self._random, 6)
        self.local_pwd = ice_string(self._random, 18)
        self._local_keys[self.local_ufrag] = short_term_key(self.local_pwd)
        self.remote_ufrag = self.remote_pwd = None
        self._remotes.clear()
        self._remote_end = False
        self._checklist.restart(keep=lambda p: p in self._sending.values())
        self._next_check_at = None
        self._selection.restart()
        self._restarting = True
        for local in self._locals:
            if local.type != "prflx":
                self._events.append(CandidateGathered(local.candidate))
        if self._gathering.completed:
            self._events.append(GatheringCompleted())

    def _finish_restart(self) -> None:
        self._restarting = False
        self._local_keys = {self.local_ufrag: self._local_keys[self.local_ufrag]}
        self._checklist.valid = [p for p in self._checklist.valid if p.generation == self._generation]

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
        if local.turn is None:
            self._transmit.append(Transmit(data, addr, local.socket))
            return
        self._deadline = _STALE  # a relay's permissions and channels have timers
        if not self._gathering.relay_send(local, data, addr, now):
            self.dropped += 1

    def _flush_stun(self, client: StunClient, now: float) -> None:
        while (transmit := client.poll_transmit()) is not None:
            data, addr = transmit.data, transmit.destination
            route = self._routes.get(transaction_id(data))
            if route is not None:
                self._send_from(route.local, data, addr, now)

    def _feed_turn(self, turn: TurnClient, host: LocalCandidate, datagram: Receive, now: float) -> None:
        self._gathering.feed(turn, datagram, now)
        self._drain_turn(turn, host, now)

    def _drain_turn(self, turn: TurnClient, host: LocalCandidate, now: float) -> None:
        while (event := turn.poll_event()) is not None:
            if isinstance(event, TurnDataReceived):
                relay = self._gathering.relay(host.socket, turn.server)
                if relay is not None:
                    self._on_packet(event.data, (event.peer[0], event.peer[1]), relay, now)
            elif isinstance(event, AllocationCreated):
                if event.mapped_address is not None and not self.relay_only and not turn.reliable:
                    self._add_srflx(host, event.mapped_address, turn.server, now)
                self._add_local(self._gathering.relayed(host, turn, event.relayed_address), now)
                self._gathered_one()
            elif isinstance(event, AllocationFailed):
                self._gathered_one()
        self._gathering.flush(turn, host.socket)

    # -- outputs --------------------------------------------------------------------

    def poll_transmit(self) -> Transmit | None:
        """The next datagram: send ``data`` to ``destination`` from the socket bound to ``source``."""
        return self._transmit.popleft() if self._transmit else None

    def poll_event(self) -> IceEvent | None:
        return self._events.popleft() if self._events else None

    def next_deadline(self) -> float | None:
        if self._deadline is _STALE:
            self._deadline = self._compute_deadline()
        return self._deadline  # type: ignore[return-value]

    def _compute_deadline(self) -> float | None:
        deadlines = [d for d in (self._next_check_at, self._checks.next_deadline(),
                                 self._consent_checks.next_deadline(), self._gathering.deadline()) if d is not None]
        if self.controlling:
            nomination = self._selection.deadline(self._generation)
            if nomination is not None:
                deadlines.append(nomination)
        if not self.lite:
            consent = self._consent.deadline(p for p in self._checklist.valid if p.generation == self._generation)
            if consent is not None:
                deadlines.append(consent)
        return min(deadlines) if deadlines else None
