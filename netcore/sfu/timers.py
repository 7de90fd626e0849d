"""The participants' transport deadlines, kept in a heap.

The core's ``next_deadline`` is asked after every datagram and timer, and
used to ask each participant's transport in turn: with N subscribers each
sending RTCP, that is N transports asked N times over, the cost growing
with the square of the room.  Here each transport's deadline is asked
again only after the core has called into that transport (every such call
marks it for draining, and a drained participant is refreshed here), so a
datagram or a timer costs O(log N).  A sweep every :data:`SWEEP` seconds
asks every transport again, bounding the lateness of a timer whose change
was not seen.
"""

from __future__ import annotations

from heapq import heappop, heappush
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from netcore.sfu.participant import Participant

__all__ = ["TransportTimers", "SWEEP"]

SWEEP = 0.25  # seconds between asking every transport again


class TransportTimers:
    """When each participant's transport wants ``handle_timeout`` next."""

    __slots__ = ("_due", "_heap", "_count", "_next_sweep")

    def __init__(self) -> None:
        self._due: dict[str, float] = {}  # participant id -> its transport's deadline
        self._heap: list[tuple[float, int, str]] = []
        self._count = 0
        self._next_sweep: float | None = None

    def refresh(self, participant: Participant) -> None:
        """Ask the participant's transport again (after the core called into it)."""
        deadline = participant.transport.next_deadline()
        pid = participant.id
        if deadline is None:
            self._due.pop(pid, None)
            return
        if self._due.get(pid) == deadline:
            return
        self._due[pid] = deadline
        self._count += 1
        heappush(self._heap, (deadline, self._count, pid))

    def forget(self, participant_id: str) -> None:
        self._due.pop(participant_id, None)

    def next_deadline(self) -> float | None:
        heap, due = self._heap, self._due
        while heap and due.get(heap[0][2]) != heap[0][0]:
            heappop(heap)  # stale: refreshed since, or gone
        best = heap[0][0] if heap else None
        sweep = self._next_sweep
        if due and sweep is not None and (best is None or sweep < best):
            best = sweep
        return best

    def due(self, now: float, participants: dict[str, Participant]) -> Iterable[Participant]:
        """The participants whose transport deadline has come (each once), after a sweep when one is due."""
        if self._next_sweep is None or now >= self._next_sweep:
            self._next_sweep = now + SWEEP
            for participant in participants.values():
                self.refresh(participant)
        heap, due = self._heap, self._due
        fired = []
        while heap and heap[0][0] <= now:
            deadline, _, pid = heappop(heap)
            participant = participants.get(pid)
            if participant is None or due.get(pid) != deadline:
                continue
            del due[pid]  # asked again when drained
            fired.append(participant)
        return fired
