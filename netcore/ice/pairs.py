"""Candidates as the agent holds them, candidate pairs and their check states.

Check states (RFC 8445 section 6.1.2.6). :data:`TRANSITIONS` is the table the
code runs: :meth:`CandidatePair.apply` moves a pair only along it and raises
:class:`~netcore.errors.UsageError` for any other step::

    state        event            new state
    FROZEN       UNFROZEN         WAITING       first of its foundation, or the foundation succeeded (6.1.2.6, 7.2.5.3.3)
    FROZEN       CHECK_RECEIVED   WAITING       a triggered check (7.3.1.4)
    WAITING      CHECK_RECEIVED   WAITING
    FAILED       CHECK_RECEIVED   WAITING
    FROZEN       CHECK_SENT       IN_PROGRESS   an unfrozen pair picked at once (6.1.4.2)
    WAITING      CHECK_SENT       IN_PROGRESS   the Ta timer picked it (6.1.4.2)
    IN_PROGRESS  CHECK_SENT       IN_PROGRESS   a triggered or nominating check while one is out
    FAILED       CHECK_SENT       IN_PROGRESS   a triggered check queued before another check failed
    SUCCEEDED    CHECK_SENT       SUCCEEDED     nominating a valid pair (8.1.1) stays succeeded
    IN_PROGRESS  SUCCESS          SUCCEEDED     authentic, symmetric success response (7.2.5.3)
    IN_PROGRESS  FAILURE          FAILED        timeout or error response (7.2.5.2)
    SUCCEEDED    FAILURE          SUCCEEDED     a later check failing does not undo a success
    IN_PROGRESS  NOT_SYMMETRIC    FAILED        response from another address (7.2.5.2.1)
    IN_PROGRESS  ROLE_CONFLICT    WAITING       487: roles switched, check again (7.2.5.1)

A pair may have several checks out (a regular one, a triggered one, the
nominating one), so an outcome can also meet a pair that a later event
already moved: SUCCESS, FAILURE, NOT_SYMMETRIC and ROLE_CONFLICT are accepted
from WAITING, SUCCEEDED and FAILED too (the rest of :data:`TRANSITIONS`).
Nothing returns to FROZEN, and a FROZEN pair has no outcome.
"""

from __future__ import annotations

import enum
import ipaddress
from collections import deque
from typing import TYPE_CHECKING, Callable, Iterator

from netcore.errors import UsageError
from netcore.ice.consent import PairConsent
from netcore.ice.priority import pair_priority
from netcore.net import Address
from netcore.sdp.candidate import Candidate

if TYPE_CHECKING:
    from netcore.turn.client import TurnClient

__all__ = [
    "CheckState", "CheckEvent", "TRANSITIONS", "PENDING_STATES",
    "LocalCandidate", "RemoteCandidate", "CandidatePair", "CheckList", "RemoteCandidates",
]

MAX_PAIRS = 100  # RFC 8445 section 6.1.2.5: limit the check list
MAX_REMOTE_CANDIDATES = 100
MAX_TRIGGERED = 200


class CheckState(enum.Enum):
    FROZEN = "frozen"
    WAITING = "waiting"
    IN_PROGRESS = "in-progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class CheckEvent(enum.Enum):
    """What happens to a pair."""

    UNFROZEN = "unfrozen"
    CHECK_RECEIVED = "check-received"  # the peer's check arrived on the pair: trigger ours
    CHECK_SENT = "check-sent"
    SUCCESS = "success"
    FAILURE = "failure"
    NOT_SYMMETRIC = "not-symmetric"
    ROLE_CONFLICT = "role-conflict"


_S, _E = CheckState, CheckEvent

TRANSITIONS: dict[tuple[CheckState, CheckEvent], CheckState] = {
    (_S.FROZEN, _E.UNFROZEN): _S.WAITING,
    (_S.FROZEN, _E.CHECK_RECEIVED): _S.WAITING,
    (_S.WAITING, _E.CHECK_RECEIVED): _S.WAITING,
    (_S.FAILED, _E.CHECK_RECEIVED): _S.WAITING,
    (_S.FROZEN, _E.CHECK_SENT): _S.IN_PROGRESS,
    (_S.WAITING, _E.CHECK_SENT): _S.IN_PROGRESS,
    (_S.IN_PROGRESS, _E.CHECK_SENT): _S.IN_PROGRESS,
    (_S.FAILED, _E.CHECK_SENT): _S.IN_PROGRESS,
    (_S.SUCCEEDED, _E.CHECK_SENT): _S.SUCCEEDED,
    # Outcomes of a check; several checks of one pair may be out (see the module docstring).
    (_S.IN_PROGRESS, _E.SUCCESS): _S.SUCCEEDED,
    (_S.WAITING, _E.SUCCESS): _S.SUCCEEDED,
    (_S.SUCCEEDED, _E.SUCCESS): _S.SUCCEEDED,
    (_S.FAILED, _E.SUCCESS): _S.SUCCEEDED,
    (_S.IN_PROGRESS, _E.FAILURE): _S.FAILED,
    (_S.WAITING, _E.FAILURE): _S.FAILED,
    (_S.FAILED, _E.FAILURE): _S.FAILED,
    (_S.SUCCEEDED, _E.FAILURE): _S.SUCCEEDED,
    (_S.IN_PROGRESS, _E.NOT_SYMMETRIC): _S.FAILED,
    (_S.WAITING, _E.NOT_SYMMETRIC): _S.FAILED,
    (_S.FAILED, _E.NOT_SYMMETRIC): _S.FAILED,
    (_S.SUCCEEDED, _E.NOT_SYMMETRIC): _S.FAILED,
    (_S.IN_PROGRESS, _E.ROLE_CONFLICT): _S.WAITING,
    (_S.WAITING, _E.ROLE_CONFLICT): _S.WAITING,
    (_S.SUCCEEDED, _E.ROLE_CONFLICT): _S.WAITING,
    (_S.FAILED, _E.ROLE_CONFLICT): _S.WAITING,
}

PENDING_STATES = (CheckState.FROZEN, CheckState.WAITING, CheckState.IN_PROGRESS)


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
    """A pair in the check list, or a valid pair built from a check's mapped address
    (born SUCCEEDED: section 7.2.5.3.2)."""

    __slots__ = (
        "local", "remote", "component", "priority", "foundation", "state", "generation",
        "valid", "valid_pair", "nominated", "nominate_on_success", "consent", "rtt",
    )

    def __init__(self, local: LocalCandidate, remote: RemoteCandidate, controlling: bool, generation: int,
                 state: CheckState = CheckState.FROZEN) -> None:
        self.local = local
        self.remote = remote
        self.component = local.component
        self.foundation = (local.candidate.foundation, remote.candidate.foundation)
        self.state = state
        self.generation = generation
        self.valid = False
        self.valid_pair: CandidatePair | None = None
        self.nominated = False
        self.nominate_on_success = False
        self.consent = PairConsent()  # RFC 7675 state: last_granted, degraded, lost, loss
        self.rtt: float | None = None
        self.priority = 0
        self.set_role(controlling)

    def apply(self, event: CheckEvent) -> CheckState:
        """Move along :data:`TRANSITIONS`; a step not in the table is our bug, not the peer's."""
        state = TRANSITIONS.get((self.state, event))
        if state is None:
            raise UsageError(f"check event {event.value} in state {self.state.value}")
        self.state = state
        return state

    def accepts(self, event: CheckEvent) -> bool:
        """Whether :data:`TRANSITIONS` has ``event`` in the pair's state."""
        return (self.state, event) in TRANSITIONS

    def set_role(self, controlling: bool) -> None:
        mine, theirs = self.local.priority, self.remote.priority
        self.priority = pair_priority(mine, theirs) if controlling else pair_priority(theirs, mine)

    @property
    def relayed(self) -> bool:
        """True when either end of the pair is a TURN relay."""
        return self.local.type == "relay" or self.remote.type == "relay"

    def __repr__(self) -> str:
        return f"CandidatePair({self.local!r} -> {self.remote!r}, {self.state.value})"


class RemoteCandidates:
    """The peer's candidates of the current generation, signalled or peer-reflexive, at most 100."""

    __slots__ = ("_all", "_index", "_prflx_count")

    def __init__(self) -> None:
        self._all: list[RemoteCandidate] = []
        self._index: dict[tuple[int, Address], RemoteCandidate] = {}  # (component, address)
        self._prflx_count = 0

    def __iter__(self) -> Iterator[RemoteCandidate]:
        return iter(self._all)

    def at(self, component: int, address: Address) -> RemoteCandidate | None:
        return self._index.get((component, address))

    @staticmethod
    def usable(candidate: Candidate, components: int) -> bool:
        """UDP, of one of our components, at an IP address (mDNS ``.local`` names are not resolved)."""
        if candidate.is_tcp or not 1 <= candidate.component <= components:
            return False
        try:
            ipaddress.ip_address(candidate.address)
        except ValueError:
            return False
        return True

    def known(self, candidate: Candidate) -> bool:
        """Whether a candidate at that address is known; a signalled one replaces a
        peer-reflexive one learnt there first (RFC 8445 section 7.3.1.3)."""
        existing = self._index.get((candidate.component, (candidate.address, candidate.port)))
        if existing is not None and existing.type == "prflx":
            existing.candidate = candidate
        return existing is not None

    def add(self, candidate: Candidate, generation: int) -> RemoteCandidate | None:
        """The new remote candidate, or None when the limit is reached."""
        if len(self._all) >= MAX_REMOTE_CANDIDATES:
            return None
        remote = RemoteCandidate(candidate, generation)
        self._all.append(remote)
        self._index[(remote.component, remote.address)] = remote
        return remote

    def learn_prflx(self, component: int, addr: Address, priority: int, generation: int) -> RemoteCandidate | None:
        """A peer-reflexive remote candidate from a request's source (RFC 8445 section 7.3.1.3)."""
        if len(self._all) >= MAX_REMOTE_CANDIDATES:
            return None
        self._prflx_count += 1
        return self.add(Candidate(f"prflx{self._prflx_count}", component, "udp", priority,
                                  addr[0], addr[1], "prflx"), generation)

    def clear(self) -> None:
        self._all.clear()
        self._index.clear()


class CheckList:
    """The check list, the valid list and the triggered-check queue (RFC 8445 sections 6.1.2, 7.2.5.3.2)."""

    __slots__ = ("pairs", "valid", "_by_key", "_triggered")

    def __init__(self) -> None:
        self.pairs: list[CandidatePair] = []
        self.valid: list[CandidatePair] = []
        self._by_key: dict[tuple[Address, Address], CandidatePair] = {}  # (local base, remote address)
        self._triggered: deque[tuple[CandidatePair, bool]] = deque()

    def find(self, base: Address, remote: Address) -> CandidatePair | None:
        return self._by_key.get((base, remote))

    def add(self, local: LocalCandidate, remote: RemoteCandidate, controlling: bool,
            generation: int) -> CandidatePair | None:
        """A new pair (the caller checked it is not there yet), or None when the list is full."""
        if len(self.pairs) >= MAX_PAIRS:
            return None
        pair = CandidatePair(local, remote, controlling, generation)
        self._by_key[(local.base, remote.address)] = pair
        self.pairs.append(pair)
        # Section 6.1.2.6 with RFC 8838 section 10: the first pair of a foundation starts Waiting.
        same = [p.state for p in self.pairs if p.foundation == pair.foundation and p is not pair]
        busy = CheckState.WAITING in same or CheckState.IN_PROGRESS in same
        if CheckState.SUCCEEDED in same or not busy:
            pair.apply(CheckEvent.UNFROZEN)
        return pair

    def add_lite(self, local: LocalCandidate, remote: RemoteCandidate, generation: int) -> CandidatePair:
        """The pair an ICE-lite agent answered a check on: valid at once (RFC 8445 section 2.5)."""
        pair = self._by_key.get((local.base, remote.address))
        if pair is None:
            pair = CandidatePair(local, remote, False, generation, CheckState.SUCCEEDED)
            pair.valid = True
            pair.valid_pair = pair
            self._by_key[(local.base, remote.address)] = pair
            self.pairs.append(pair)
            self.valid.append(pair)
        return pair

    def valid_pair_for(self, local: LocalCandidate, remote: RemoteCandidate, controlling: bool,
                       generation: int) -> CandidatePair:
        """The valid pair of a check whose mapped address is another local candidate (section 7.2.5.3.2)."""
        for pair in self.valid:
            if pair.local is local and pair.remote is remote:
                return pair
        return CandidatePair(local, remote, controlling, generation, CheckState.SUCCEEDED)

    def unfreeze(self, foundation: tuple[str, str]) -> None:
        """Section 7.2.5.3.3: a success unfreezes the pairs of its foundation."""
        for pair in self.pairs:
            if pair.foundation == foundation and pair.state is CheckState.FROZEN:
                pair.apply(CheckEvent.UNFROZEN)

    def in_flight(self) -> int:
        """Waiting and in-progress pairs (the RTO of section 14.3 scales with them)."""
        return sum(1 for p in self.pairs if p.state in (CheckState.WAITING, CheckState.IN_PROGRESS))

    def pending(self, component: int) -> bool:
        """Whether a pair of ``component`` may still succeed."""
        return any(p.component == component and p.state in PENDING_STATES for p in self.pairs)

    def trigger(self, pair: CandidatePair, nominate: bool) -> None:
        if len(self._triggered) < MAX_TRIGGERED:
            self._triggered.append((pair, nominate))

    def next_check(self, generation: int,
                   eligible: Callable[[CandidatePair], bool]) -> tuple[CandidatePair, bool] | None:
        """The next check to send (section 6.1.4.2): triggered first, then Waiting, then unfreeze."""
        while self._triggered:
            pair, nominate = self._triggered.popleft()
            if pair.generation != generation:
                continue
            if pair.state is CheckState.IN_PROGRESS and not nominate:
                continue
            return pair, nominate
        candidates = [p for p in self.pairs if eligible(p)]
        waiting = [p for p in candidates if p.state is CheckState.WAITING]
        if not waiting:
            busy = {p.foundation for p in self.pairs if p.state in (CheckState.WAITING, CheckState.IN_PROGRESS)}
            waiting = [p for p in candidates if p.state is CheckState.FROZEN and p.foundation not in busy]
        if not waiting:
            return None
        return max(waiting, key=lambda p: p.priority), False

    def set_role(self, controlling: bool) -> None:
        for pair in self.pairs + self.valid:
            pair.set_role(controlling)

    def restart(self, keep: Callable[[CandidatePair], bool]) -> None:
        """An ICE restart: a new, empty check list; the valid pairs ``keep`` says stay."""
        self.pairs.clear()
        self._by_key.clear()
        self._triggered.clear()
        self.valid = [p for p in self.valid if keep(p)]
