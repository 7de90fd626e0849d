"""Call servers: which are alive, how loaded, and which room is on which (sans-IO).

Each ``netcore-sfu`` keeps a link to ``/v1/service`` and reports its load
there every ``REPORT_INTERVAL`` (``service.load``: participants, rooms,
tracks, forwarded packets per second; docs/signaling.md). :class:`Placement`
keeps one :class:`CallServer` per linked server and the room -> server map:

- a room that moves to the call server goes to the least loaded live one
  (:meth:`Placement.place`, the order of :meth:`Placement.score`);
- a server is dead when its link closes (:meth:`Placement.unlink`) or when
  it has reported once and then missed ``REPORT_TIMEOUT`` seconds of
  reports (:meth:`Placement.expired`, at :meth:`Placement.next_deadline`);
  its rooms are returned for the owner to place again.

A server that never reported (an older call server) is live while linked
and weighs what signaling itself placed on it. Time is given (``now``),
nothing here touches a socket or a clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["REPORT_INTERVAL", "REPORT_TIMEOUT", "Load", "CallServer", "Placement"]

REPORT_INTERVAL = 0.5  # seconds between a call server's load reports
REPORT_TIMEOUT = 2.0  # seconds without a report after which a reporting server is dead (4 missed)
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


@dataclass(slots=True)
class CallServer:
    name: str
    linked_at: float
    load: Load = field(default_factory=Load)
    reported_at: float | None = None  # None: never reported, so never timed out
    rooms: set[str] = field(default_factory=set)  # placed here by this node


class Placement:
    """The live call servers of one signaling node and the rooms placed on them."""

    def __init__(self, report_timeout: float = REPORT_TIMEOUT) -> None:
        self.report_timeout = report_timeout
        self.servers: dict[str, CallServer] = {}
        self._room_server: dict[str, str] = {}

    # -- liveness ---------------------------------------------------------------------

    def link(self, name: str, now: float) -> None:
        """A call server's link opened (again: a known name keeps its rooms)."""
        if name not in self.servers:
            self.servers[name] = CallServer(name, now)

    def report(self, name: str, load: Load, now: float) -> bool:
        """A load report; False for a server that is not linked."""
        server = self.servers.get(name)
        if server is None:
            return False
        server.load, server.reported_at = load, now
        return True

    def unlink(self, name: str) -> list[str]:
        """The server is gone: forget it; the rooms that were on it (now unplaced)."""
        server = self.servers.pop(name, None)
        if server is None:
            return []
        for room_id in server.rooms:
            self._room_server.pop(room_id, None)
        return sorted(server.rooms)

    def expired(self, now: float) -> list[str]:
        """Servers that reported once and then stayed silent ``report_timeout`` seconds."""
        return [s.name for s in self.servers.values()
                if s.reported_at is not None and now >= s.reported_at + self.report_timeout]

    def next_deadline(self) -> float | None:
        deadlines = [s.reported_at + self.report_timeout for s in self.servers.values() if s.reported_at is not None]
        return min(deadlines) if deadlines else None

    # -- placement --------------------------------------------------------------------

    def score(self, server: CallServer, weight: Callable[[str], int]) -> tuple:
        """Lower is less loaded: participants (the larger of what the server reported and what
        this node placed there since, so a burst of rooms does not all go to one server before
        its next report), then forwarded packets per second, then rooms, then the name."""
        placed = sum(weight(room_id) for room_id in server.rooms)
        return (max(server.load.participants, placed), server.load.packets_per_second,
                max(server.load.rooms, len(server.rooms)), server.name)

    def place(self, room_id: str, weight: Callable[[str], int]) -> str | None:
        """Put a room on the least loaded live server (``weight(room_id)``: its participants);
        None if no server is linked. A room already placed stays where it is."""
        current = self._room_server.get(room_id)
        if current is not None:
            return current
        if not self.servers:
            return None
        best = min(self.servers.values(), key=lambda s: self.score(s, weight))
        self.assign(room_id, best.name)
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
