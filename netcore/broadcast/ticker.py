"""A periodic deadline for the sans-IO parts of the input manager (the card's frames, the mix's)."""

from __future__ import annotations

__all__ = ["Ticker"]


class Ticker:
    """Every ``interval`` seconds from :meth:`start` until :meth:`stop`; a late caller is not given a burst of
    the periods it missed, only told how many passed."""

    __slots__ = ("interval", "_next")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._next: float | None = None

    @property
    def running(self) -> bool:
        return self._next is not None

    def start(self, now: float) -> None:
        """Due at once (a running ticker keeps its time)."""
        if self._next is None:
            self._next = now

    def stop(self) -> None:
        self._next = None

    def next_deadline(self) -> float | None:
        return self._next

    def due(self, now: float) -> int:
        """How many periods ended by ``now`` (0: none; more than one after a stall); the next deadline moves
        past ``now``."""
        if self._next is None or now < self._next:
            return 0
        periods = int((now - self._next) / self.interval) + 1
        self._next += periods * self.interval
        return periods
