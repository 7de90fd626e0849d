"""NACK generation (RFC 4585 section 6.2.1) for a receiver, sans-IO.

Sequence numbers come in already unwrapped (64-bit, see
:mod:`netcore.rtp.sequence`).  A gap above the highest number seen puts the
missing numbers on a list; each is NACKed after the reorder hold (a
packet merely reordered fills its gap before that), then again each time
its retransmission is overdue: a round trip plus the path's ``jitter``
(set by the owner) after the last NACK, at most ``max_retries`` times,
after which it is given up.  A shorter spacing only NACKs packets whose
retransmission is still on its way, and they arrive twice.
The list is bounded by ``max_missing``: on a larger gap the oldest numbers
are given up at once.

The reorder hold adapts to the path: it is the 95th percentile of how late
the last :data:`REORDER_SAMPLES` reordered packets came after their gap was
seen (originals, not repairs), between ``reorder_delay`` and
``max_reorder_delay`` and at most half the round trip (a longer hold delays
each real repair more than a needless one costs).  On a path with 30 ms of
jitter two thirds of the NACKs sent after a fixed 5 ms asked for packets
that came 5-25 ms later: their repairs took the retransmission budget the
real losses needed.  Without reordering for :data:`REORDER_MEMORY` the hold
falls back to ``reorder_delay``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["NackGenerator", "NackConfig", "REORDER_SAMPLES", "REORDER_MEMORY"]

REORDER_SAMPLES = 32  # reordered arrivals whose lateness sets the hold
REORDER_MEMORY = 10.0  # seconds without one: the hold returns to its floor


@dataclass(frozen=True, slots=True)
class NackConfig:
    max_retries: int = 10
    reorder_delay: float = 0.005  # seconds before the first NACK of a gap, at least ...
    max_reorder_delay: float = 0.04  # ... and at most, however late reordered packets come
    min_interval: float = 0.02  # retry spacing floor; RTT + jitter is used when larger
    max_missing: int = 1000  # hard bound on tracked missing numbers


class _Missing:
    __slots__ = ("retries", "due", "first_nack", "seen")

    def __init__(self, due: float, seen: float) -> None:
        self.retries = 0
        self.due = due
        self.first_nack: float | None = None  # when it was first NACKed
        self.seen = seen  # when its gap was seen


class NackGenerator:
    """Tracks missing sequence numbers and says when to NACK or give up."""

    def __init__(self, config: NackConfig = NackConfig(), rtt: float = 0.1) -> None:
        self.config = config
        self.rtt = rtt
        self.jitter = 0.0  # the path's delay variation, added to the retry spacing
        self.highest: int | None = None
        self._missing: dict[int, _Missing] = {}
        # No entry is due before this (it may be early after removals: poll
        # then finds nothing and recomputes it).
        self._next_due: float | None = None
        self.nacks_sent = 0  # sequence numbers NACKed, retries included
        self.recovered = 0  # missing packets that arrived after a NACK
        self.given_up = 0
        self.reorder_hold = config.reorder_delay  # seconds from a gap to its first NACK (see the module)
        self._lateness: deque[float] = deque(maxlen=REORDER_SAMPLES)
        self._last_reordered = float("-inf")

    def __len__(self) -> int:
        return len(self._missing)

    def is_missing(self, seq: int) -> bool:
        return seq in self._missing

    def reset(self) -> None:
        self.highest = None
        self._missing.clear()
        self._next_due = None

    def handle_packet(self, seq: int, now: float, retransmitted: bool | None = None) -> tuple[int, int]:
        """Account an arrival (``retransmitted``: it came as a repair; None: not known).

        Returns ``(retries, given_up)``: how many NACKs this packet answered
        (0: it was not NACKed), and how many numbers were given up at once
        because the gap overflowed ``max_missing``.
        """
        highest = self.highest
        if highest is None:
            self.highest = seq
            return 0, 0
        if seq > highest:
            if now - self._last_reordered > REORDER_MEMORY and self._lateness:
                self._lateness.clear()
                self.reorder_hold = self.config.reorder_delay
            due = now + self.reorder_hold
            first = max(highest + 1, seq - self.config.max_missing)
            missing = self._missing
            for s in range(first, seq):
                missing[s] = _Missing(due, now)
            if first < seq and (self._next_due is None or due < self._next_due):
                self._next_due = due
            given_up = first - highest - 1
            self.highest = seq
            excess = len(missing) - self.config.max_missing
            if excess > 0:
                for s in sorted(missing)[:excess]:
                    del missing[s]
                given_up += excess
            self.given_up += given_up
            return 0, given_up
        entry = self._missing.pop(seq, None)
        if entry is None:
            return 0, 0
        if self._is_reordered(entry, now, retransmitted):
            self._reordered(now - entry.seen, now)
        if entry.retries:
            self.recovered += 1
            return entry.retries, 0
        return 0, 0

    def _is_reordered(self, entry: _Missing, now: float, retransmitted: bool | None) -> bool:
        """Whether the packet that filled ``entry``'s gap is the original, come late."""
        if retransmitted is not None:
            return not retransmitted
        # not known (repairs on the original SSRC): before any repair could have come back
        return entry.first_nack is None or now - entry.first_nack < self.rtt / 2

    def _reordered(self, lateness: float, now: float) -> None:
        self._last_reordered = now
        samples = self._lateness
        samples.append(lateness)
        ordered = sorted(samples)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        config = self.config
        ceiling = min(config.max_reorder_delay, self.rtt / 2)
        self.reorder_hold = max(config.reorder_delay, min(p95, ceiling))

    def retries(self, seq: int) -> int:
        """How many times ``seq`` was NACKed (0 when it is not missing)."""
        entry = self._missing.get(seq)
        return entry.retries if entry is not None else 0

    def first_nack(self, seq: int) -> float | None:
        """When ``seq`` was first NACKed (None when it is not missing or not NACKed yet)."""
        entry = self._missing.get(seq)
        return entry.first_nack if entry is not None else None

    def latest_first_nack(self, low: int, high: int) -> float | None:
        """The latest time a number in ``[low, high]`` that is missing and not given up was,
        or will be, NACKed for the first time; None when none is missing."""
        missing = self._missing
        if high - low < len(missing):
            entries = [missing[seq] for seq in range(low, high + 1) if seq in missing]
        else:
            entries = [entry for seq, entry in missing.items() if low <= seq <= high]
        if not entries:
            return None
        return max(entry.due if entry.first_nack is None else entry.first_nack for entry in entries)

    @property
    def retry_interval(self) -> float:
        """The spacing of NACKs of one number: a round trip plus the path's jitter."""
        return max(self.rtt + self.jitter, self.config.min_interval)

    def forget_through(self, seq: int) -> int:
        """Stop tracking numbers up to ``seq`` (played or skipped); returns how many."""
        gone = [s for s in self._missing if s <= seq]
        for s in gone:
            del self._missing[s]
        return len(gone)

    def poll(self, now: float) -> tuple[list[int], int]:
        """``(to_nack, given_up)`` at ``now``; the NACKed ones are rescheduled."""
        to_nack: list[int] = []
        given_up = 0
        interval = self.retry_interval
        for seq, entry in list(self._missing.items()):
            if entry.due > now:
                continue
            if entry.retries >= self.config.max_retries:
                del self._missing[seq]
                given_up += 1
                continue
            entry.retries += 1
            if entry.first_nack is None:
                entry.first_nack = now
            entry.due = now + interval
            to_nack.append(seq)
        self.nacks_sent += len(to_nack)
        self._next_due = min((e.due for e in self._missing.values()), default=None)
        self.given_up += given_up
        to_nack.sort()
        return to_nack, given_up

    def next_deadline(self) -> float | None:
        if not self._missing:
            return None
        return self._next_due
