"""NACK generation (RFC 4585 section 6.2.1) for a receiver, sans-IO.

Sequence numbers come in already unwrapped (64-bit, see
:mod:`netcore.rtp.sequence`).  A gap above the highest number seen puts the
missing numbers on a list; each is NACKed after ``reorder_delay`` (a
packet merely reordered fills its gap before that), then again each time
its retransmission is overdue: a round trip plus the path's ``jitter``
(set by the owner) after the last NACK, at most ``max_retries`` times,
after which it is given up.  A shorter spacing only NACKs packets whose
retransmission is still on its way, and they arrive twice.
The list is bounded by ``max_missing``: on a larger gap the oldest numbers
are given up at once.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NackGenerator", "NackConfig"]


@dataclass(frozen=True, slots=True)
class NackConfig:
    max_retries: int = 10
    reorder_delay: float = 0.005  # seconds before the first NACK of a gap
    min_interval: float = 0.02  # retry spacing floor; RTT + jitter is used when larger
    max_missing: int = 1000  # hard bound on tracked missing numbers


class _Missing:
    __slots__ = ("retries", "due", "first_nack")

    def __init__(self, due: float) -> None:
        self.retries = 0
        self.due = due
        self.first_nack: float | None = None  # when it was first NACKed


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

    def __len__(self) -> int:
        return len(self._missing)

    def is_missing(self, seq: int) -> bool:
        return seq in self._missing

    def reset(self) -> None:
        self.highest = None
        self._missing.clear()
        self._next_due = None

    def handle_packet(self, seq: int, now: float) -> tuple[int, int]:
        """Account an arrival.

        Returns ``(retries, given_up)``: how many NACKs this packet answered
        (0: it was not NACKed), and how many numbers were given up at once
        because the gap overflowed ``max_missing``.
        """
        highest = self.highest
        if highest is None:
            self.highest = seq
            return 0, 0
        if seq > highest:
            due = now + self.config.reorder_delay
            first = max(highest + 1, seq - self.config.max_missing)
            missing = self._missing
            for s in range(first, seq):
                missing[s] = _Missing(due)
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
        if entry is not None and entry.retries:
            self.recovered += 1
            return entry.retries, 0
        return 0, 0

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
