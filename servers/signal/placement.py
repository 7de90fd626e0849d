"""Call servers: which are alive, how loaded, and which room is on which (sans-IO).

Each ``netcore-sfu`` keeps a link to ``/v1/service`` and reports its load
there every ``REPORT_INTERVAL`` (``service.load``: participants, rooms,
tracks, forwarded packets per second; docs/signaling.md). :class:`Placement`
keeps one :class:`CallServer` per linked server and the room -> server map:

- a room that moves to the call server goes to the least loaded trusted one
  (:meth:`Placement.place`, the order of :meth:`Placement.score`); rooms
  moved off a dead server weigh on their new one on top of its reports for
  ``SETTLE`` seconds (those reports cannot count participants still
  connecting);
- a server whose link closes is dead at once (:meth:`Placement.unlink`): a
  killed process closes its sockets;
- a linked server that has reported once and then missed ``REPORT_TIMEOUT``
  seconds of reports is only *suspect*: it gets no new rooms, keeps those it
  has, and its link is pinged (:meth:`Placement.check` asks for a probe). It
  is dead when the ping is not answered in ``PROBE_TIMEOUT`` or when it stays
  silent ``SILENT_GRACE`` seconds more; a report makes it trusted again;
- time during which this node's own loop was stalled (:meth:`Placement.stalled`,
  measured by :class:`LoopLag`) does not count against anyone;
- a server that comes back after a death (links and reports again) is held
  suspect for a back-off that doubles with each death in ``FLAP_MEMORY``
  (:func:`hold_after`), so a flapping server is not handed rooms each time;
- the rooms and viewers of a dead server are moved at most ``MOVE_RATE``
  participants a second onto each survivor (:class:`MoveBudgets`), so no
  survivor is sent them faster than it can take them, and more survivors
  empty a dead server sooner.

A server that never reported (an older call server) is live while linked
and weighs what signaling itself placed on it. Time is given (``now``),
nothing here touches a socket or a clock.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Collection

__all__ = ["REPORT_INTERVAL", "REPORT_TIMEOUT", "SILENT_GRACE", "PROBE_TIMEOUT", "SETTLE", "MOVE_RATE",
           "MOVE_BURST", "FLAP_MEMORY", "BACKOFF_BASE", "BACKOFF_MAX", "Load", "CallServer", "Placement",
           "Settling", "MoveBudget", "MoveBudgets", "LoopLag", "below_level", "hold_after"]

REPORT_INTERVAL = 0.5  # seconds between a call server's load reports
REPORT_TIMEOUT = 2.0  # seconds without a report after which a reporting server is suspect (4 missed)
SILENT_GRACE = 6.0  # further seconds of silence after which a suspect (still linked) server is dead
PROBE_TIMEOUT = 4.0  # seconds a suspect's link has to answer a ping before it is dead
SETTLE = 5.0  # seconds a moved participant weighs on its new server on top of the server's reports
MOVE_RATE = 40.0  # participants a second moved off dead servers onto each survivor (rooms and viewers)
MOVE_BURST = 40.0  # participants moved at once onto a survivor after a quiet spell
FLAP_MEMORY = 300.0  # seconds a server's death is remembered for its back-off
BACKOFF_BASE = 2.0  # seconds a server that comes back after its second remembered death is held suspect
BACKOFF_MAX = 60.0  # the longest hold
REMEMBERED_SERVERS = 1024  # names whose deaths are remembered (bounded: names come from the links)
LAG_TICK = 0.1  # seconds between LoopLag's ticks
LAG_TOLERANCE = 0.1  # a tick later than this counts as a stall
MAX_LOAD_FIELD = 10**9  # a report's numbers are bounded: they come from the network


@dataclass(frozen=True, slots=True)
class Load:
    """What a call server says it carries (``service.load``)."""

    participants: int = 0
    rooms: int = 0
    tracks: int = 0
    packets_per_second: float = 0.0  # forwarded (sent to subscribers)

    @classmethod
    def from_payload(cls, payload: dict) -> Load:
        """Validate a ``service.load`` payload; ValueError if a field is missing, negative or absurd."""
        values = []
        for name, kind in (("participants", int), ("rooms", int), ("tracks", int), ("packets_per_second", float)):
            value = payload[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} is not a number")
            if not math.isfinite(value) or not 0 <= value <= MAX_LOAD_FIELD:
                raise ValueError(f"{name} out of range")
            values.append(kind(value))
        return cls(*values)


def hold_after(deaths: int) -> float:
    """How long a server that comes back after ``deaths`` remembered deaths is held suspect: not at all
    after one (a restart, a crash), then ``BACKOFF_BASE`` doubling with each more, at most ``BACKOFF_MAX``."""
    if deaths <= 1:
        return 0.0
    return min(BACKOFF_MAX, BACKOFF_BASE * 2.0 ** (deaths - 2))


@dataclass(slots=True)
class CallServer:
    name: str
    linked_at: float
    load: Load = field(default_factory=Load)
    reported_at: float | None = None  # None: never reported, so never timed out
    rooms: set[str] = field(default_factory=set)  # placed here by this node
    stalled: float = 0.0  # seconds our own loop stalled since its last report (not counted against it)
    probe: int | None = None  # the ping sent to its link while suspect, not yet answered
    probe_deadline: float | None = None  # when that ping counts as unanswered
    answered: bool = False  # its link answered a ping since its last report
    held_until: float = 0.0  # back-off after a flap: suspect until then

    def silent_since(self) -> float | None:
        """Where its silence is counted from: its last report, moved on by our own stalls since."""
        return None if self.reported_at is None else self.reported_at + self.stalled

    def late(self, now: float) -> bool:
        """It reported once and then nothing for ``REPORT_TIMEOUT``: suspect."""
        since = self.silent_since()
        return since is not None and now >= since + REPORT_TIMEOUT

    def trusted(self, now: float) -> bool:
        """It may be given new rooms and viewers: not late, not held after a flap."""
        return not self.late(now) and now >= self.held_until


class Settling:
    """Participants lately moved onto each server, which weigh on its load until ``SETTLE`` has passed.

    A server's load as last heard (its report, an edge's registry record) cannot count participants moved
    onto it since: they are still connecting. Counted on top of that load, they let the survivors of a
    death share its participants by what they will carry, not by what they carried before it. Used by
    :class:`Placement` (rooms on call servers) and :class:`~.edges.ViewerEdges` (viewers on edges)."""

    def __init__(self, period: float = SETTLE) -> None:
        self.period = period
        self._until: dict[str, list[tuple[float, int]]] = {}  # name -> (until, participants) moved there

    def add(self, name: str, participants: int, now: float) -> None:
        """``participants`` were moved onto ``name`` at ``now``."""
        self._until.setdefault(name, []).append((now + self.period, participants))

    def weight(self, name: str, now: float) -> int:
        """Participants moved onto ``name`` in the last ``period`` seconds."""
        recent = [(until, n) for until, n in self._until.get(name, ()) if until > now]
        if recent:
            self._until[name] = recent
        else:
            self._until.pop(name, None)
        return sum(n for _, n in recent)

    def keep(self, names: Collection[str]) -> None:
        """Forget the servers not in ``names`` (gone: a server that comes back starts with none)."""
        for gone in set(self._until) - set(names):
            del self._until[gone]


class Placement:
    """The live call servers of one signaling node and the rooms placed on them."""

    def __init__(self) -> None:
        self.servers: dict[str, CallServer] = {}
        self._room_server: dict[str, str] = {}
        self._deaths: OrderedDict[str, list[float]] = OrderedDict()  # name -> when it died, for back-off
        self.settling = Settling()  # participants moved onto each server lately
        self._probes = 0

    # -- liveness ---------------------------------------------------------------------

    def link(self, name: str, now: float) -> None:
        """A call server's link opened (again: a known name keeps its rooms). One that died lately is held
        suspect for :func:`hold_after` its remembered deaths."""
        if name not in self.servers:
            server = CallServer(name, now)
            server.held_until = now + hold_after(len(self._remembered(name, now)))
            self.servers[name] = server

    def report(self, name: str, load: Load, now: float) -> bool:
        """A load report; False for a server that is not linked. A suspect that reports is trusted again
        (unless held after a flap)."""
        server = self.servers.get(name)
        if server is None:
            return False
        server.load, server.reported_at, server.stalled = load, now, 0.0
        server.probe = server.probe_deadline = None
        server.answered = False
        return True

    def answered(self, name: str, probe: int) -> None:
        """Its link answered ping ``probe``: the process is there; it stays suspect until it reports, and
        is dead if it stays silent through ``SILENT_GRACE``."""
        server = self.servers.get(name)
        if server is not None and server.probe == probe:
            server.probe = server.probe_deadline = None
            server.answered = True

    def stalled(self, seconds: float) -> None:
        """Our own loop did not run for ``seconds``: reports may be waiting unread; nobody is blamed for it."""
        for server in self.servers.values():
            if server.reported_at is not None:
                server.stalled += seconds
            if server.probe_deadline is not None:
                server.probe_deadline += seconds

    def unlink(self, name: str, now: float | None = None) -> list[str]:
        """The server is gone: forget it (its death remembered at ``now`` for its back-off); the rooms that
        were on it (now unplaced)."""
        server = self.servers.pop(name, None)
        if server is None:
            return []
        if now is not None:
            self._remembered(name, now).append(now)
            self._deaths.move_to_end(name)
            while len(self._deaths) > REMEMBERED_SERVERS:
                self._deaths.popitem(last=False)
        for room_id in server.rooms:
            self._room_server.pop(room_id, None)
        self.settling.keep(self.servers)
        return sorted(server.rooms)

    def _remembered(self, name: str, now: float) -> list[float]:
        """Its deaths in the last ``FLAP_MEMORY`` seconds (the list kept for it)."""
        deaths = [t for t in self._deaths.get(name, ()) if t > now - FLAP_MEMORY]
        self._deaths[name] = deaths
        return deaths

    def check(self, now: float) -> tuple[list[tuple[str, int]], list[tuple[str, str]]]:
        """What the clock decides now: the suspects whose links are to be pinged, as (name, probe), and the
        dead, as (name, reason): ``unanswered`` (the ping was not answered) or ``silent`` (no report
        through the grace)."""
        probes, dead = [], []
        for server in self.servers.values():
            since = server.silent_since()
            if since is None or not server.late(now):
                continue
            if now >= since + REPORT_TIMEOUT + SILENT_GRACE:
                dead.append((server.name, "silent"))
            elif server.probe_deadline is not None and now >= server.probe_deadline:
                dead.append((server.name, "unanswered"))
            elif server.probe is None and not server.answered:
                self._probes += 1
                server.probe, server.probe_deadline = self._probes, now + PROBE_TIMEOUT
                probes.append((server.name, server.probe))
        return probes, dead

    def next_deadline(self) -> float | None:
        """When :meth:`check` next has something to decide."""
        deadlines = []
        for server in self.servers.values():
            since = server.silent_since()
            if since is None:
                continue
            if server.probe is None and not server.answered:
                deadlines.append(since + REPORT_TIMEOUT)
            if server.probe_deadline is not None:
                deadlines.append(server.probe_deadline)
            deadlines.append(since + REPORT_TIMEOUT + SILENT_GRACE)
        return min(deadlines) if deadlines else None

    def trusted(self, now: float) -> list[str]:
        """The servers new rooms and viewers go to: the trusted ones, or every linked one when none is."""
        names = [s.name for s in self.servers.values() if s.trusted(now)]
        return names or list(self.servers)

    # -- placement --------------------------------------------------------------------

    def score(self, server: CallServer, weight: Callable[[str], int], now: float) -> tuple:
        """Lower is less loaded: participants (what the server reported plus what was moved onto it in the
        last ``SETTLE`` seconds, or what this node placed there if that is more, so a burst of rooms does not
        all go to one server before its next report), then forwarded packets per second, then rooms, then
        the name."""
        return (self.projected(server, weight, now), server.load.packets_per_second,
                max(server.load.rooms, len(server.rooms)), server.name)

    def projected(self, server: CallServer, weight: Callable[[str], int], now: float) -> int:
        """The participants it will carry: its report plus those moved onto it in the last ``SETTLE``
        seconds, or what this node placed on it if more."""
        placed = sum(weight(room_id) for room_id in server.rooms)
        return max(server.load.participants + self.settling.weight(server.name, now), placed)

    def place(self, room_id: str, weight: Callable[[str], int], now: float, moved: bool = False,
              among: Collection[str] | None = None) -> str | None:
        """Put a room on the least loaded trusted server (``weight(room_id)``: its participants), or of
        ``among`` if given (those of them whose move budget allows it); None if there is none. A room already
        placed stays where it is. ``moved``: it comes off a dead server, so it weighs on top of its new
        server's reports for ``SETTLE`` seconds."""
        current = self._room_server.get(room_id)
        if current is not None:
            return current
        candidates = [self.servers[name] for name in (self.trusted(now) if among is None else among)
                      if name in self.servers]
        if not candidates:
            return None
        best = min(candidates, key=lambda s: self.score(s, weight, now))
        self.assign(room_id, best.name)
        if moved:
            self.settling.add(best.name, max(1, weight(room_id)), now)
        return best.name

    def assign(self, room_id: str, name: str) -> bool:
        """Put a room on a given server (adopted from another node); False if it is not linked."""
        server = self.servers.get(name)
        if server is None:
            return False
        self.release(room_id)
        server.rooms.add(room_id)
        self._room_server[room_id] = name
        return True

    def release(self, room_id: str) -> None:
        """The room ended (or moves)."""
        name = self._room_server.pop(room_id, None)
        if name is not None and name in self.servers:
            self.servers[name].rooms.discard(room_id)

    def server_of(self, room_id: str) -> str | None:
        return self._room_server.get(room_id)

    def __contains__(self, name: str) -> bool:
        return name in self.servers


class MoveBudget:
    """A token bucket in participants: how many may be moved off dead servers now.

    ``MOVE_RATE`` a second, at most ``MOVE_BURST`` saved up. A move larger than the burst (one big room)
    goes when the bucket is full and leaves it in debt, so it is neither split nor starved."""

    def __init__(self, rate: float = MOVE_RATE, burst: float = MOVE_BURST) -> None:
        self.rate, self.burst = rate, burst
        self._tokens = burst
        self._at: float | None = None

    def _refill(self, now: float) -> None:
        if self._at is not None and now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now if self._at is None else max(self._at, now)

    def allows(self, participants: int, now: float) -> bool:
        """The bucket has ``participants`` (or is full, for a move larger than the burst)."""
        self._refill(now)
        return self._tokens >= min(participants, self.burst)

    def take(self, participants: int, now: float) -> bool:
        """Spend ``participants`` if the bucket has them (or is full); False: wait until :meth:`ready_at`."""
        if not self.allows(participants, now):
            return False
        self._tokens -= participants
        return True

    def ready_at(self, participants: int) -> float | None:
        """When :meth:`take` of ``participants`` will succeed (None: now, nothing was refused yet)."""
        if self._at is None:
            return None
        missing = min(participants, self.burst) - self._tokens
        if missing <= 0:
            return self._at
        return self._at + missing / self.rate + 1e-6  # a microsecond on: rounding never leaves it short


class MoveBudgets:
    """One :class:`MoveBudget` per server that receives moves: ``MOVE_RATE`` participants a second each.

    The budget is what a survivor can take (its new participants connect, offer and start their streams),
    so it scales with the survivors: three take 120 a second, and an edge that dies with 300 viewers among
    four evenly loaded ones is emptied in 1.5 s, where one budget for all took 6.5 s. A move goes to the
    least loaded of the servers it may go to, below their common level (:func:`below_level`), whose budget
    allows it now, and waits only when none does: a survivor far less loaded than the others takes the
    dead server's participants alone, at its own rate, rather than have the others overloaded."""

    def __init__(self, rate: float = MOVE_RATE, burst: float = MOVE_BURST) -> None:
        self.rate, self.burst = rate, burst
        self._budgets: dict[str, MoveBudget] = {}
        self.latest = 0.0  # the latest time :meth:`ready` was asked about

    def _of(self, name: str) -> MoveBudget:
        budget = self._budgets.get(name)
        if budget is None:
            budget = self._budgets[name] = MoveBudget(self.rate, self.burst)
        return budget

    def ready(self, names: Collection[str], participants: int, now: float) -> list[str]:
        """Those of ``names`` whose budget takes ``participants`` now."""
        self.latest = max(self.latest, now)
        return [name for name in names if self._of(name).allows(participants, now)]

    def take(self, name: str, participants: int, now: float) -> None:
        """``participants`` were moved onto ``name`` (chosen among :meth:`ready`)."""
        self._of(name).take(participants, now)

    def ready_at(self, names: Collection[str], participants: int) -> float:
        """When the first of ``names`` takes ``participants``: the latest time asked about for a server not
        asked about yet (one that linked since) or for no server at all (the move goes nowhere: at once)."""
        times = [budget.ready_at(participants) if (budget := self._budgets.get(name)) else None for name in names]
        return min((self.latest if t is None else t for t in times), default=self.latest)

    def keep(self, names: Collection[str]) -> None:
        """Forget the servers not in ``names`` (gone: one that links again starts with a full burst)."""
        for gone in set(self._budgets) - set(names):
            del self._budgets[gone]


def below_level(loads: dict[str, tuple[float, float]], coming: float) -> list[str]:
    """The servers (``loads``: name -> (load, capacity)) below the level, as a share of capacity, that
    ``coming`` more participants fill the least loaded of them up to (poured in from the bottom, so the
    most loaded may stay above it). Sending one to any of them ends as even as sending each to the least
    loaded in turn would, only sooner; the least loaded always is one (while something is coming)."""
    order = sorted(loads.values(), key=lambda lc: lc[0] / lc[1])
    total = capacity = 0.0
    level = math.inf
    for i, (load, cap) in enumerate(order):
        total, capacity = total + load, capacity + cap
        level = (total + coming) / capacity  # the first i + 1 share everything
        if i + 1 == len(order) or level <= order[i + 1][0] / order[i + 1][1]:
            break  # the next one is at or above it: it gets none
    return [name for name, (load, cap) in loads.items() if load < level * cap]


class LoopLag:
    """How long the adapter's own event loop was held up (sans-IO: the adapter ticks it).

    The adapter calls :meth:`tick` every ``LAG_TICK`` seconds and :meth:`observe` before it checks any
    deadline; each returns the stall not counted yet (0.0 when on time). A check that runs right after a
    stall then runs before the reports that piled up during it are read: the stall is given to
    :meth:`Placement.stalled` first, so those servers are not blamed for our own lateness."""

    def __init__(self, tick: float = LAG_TICK, tolerance: float = LAG_TOLERANCE) -> None:
        self.period, self.tolerance = tick, tolerance
        self.expected: float | None = None  # when the next tick is due

    def tick(self, now: float) -> float:
        """The periodic tick (due at :attr:`expected`): the stall since it was due; the next is due a tick on."""
        late = 0.0 if self.expected is None else now - self.expected
        self.expected = now + self.period
        return late if late > self.tolerance else 0.0

    def observe(self, now: float) -> float:
        """Before a deadline check: a tick overdue now means the loop stalled; count it once, here."""
        if self.expected is None or now <= self.expected:
            return 0.0
        return self.tick(now)
