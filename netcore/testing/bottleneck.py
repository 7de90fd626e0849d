"""A one-way bottleneck link in virtual time: capacity, a drop-tail queue, delay and loss.

For congestion control tests: :meth:`Bottleneck.send` says when a packet
sent at ``now`` arrives, or that it was dropped (the queue held more than
``max_queue_delay`` of data, or random loss). Capacity can change at any
time (:attr:`Bottleneck.capacity`), as a link does when a phone moves.
"""

from __future__ import annotations

import random

__all__ = ["Bottleneck"]


class Bottleneck:
    """Serialises packets at ``capacity`` bit/s behind a queue of at most ``max_queue_delay`` seconds."""

    def __init__(self, capacity: float, *, delay: float = 0.025, max_queue_delay: float = 0.3,
                 loss: float = 0.0, seed: int = 0) -> None:
        self.capacity = capacity
        self.delay = delay
        self.max_queue_delay = max_queue_delay
        self.loss = loss
        self._rng = random.Random(seed)
        self._busy_until = 0.0
        self.sent = 0
        self.dropped = 0

    def queue_delay(self, now: float) -> float:
        return max(0.0, self._busy_until - now)

    def send(self, size: int, now: float) -> float | None:
        """The arrival time of a ``size``-byte packet sent at ``now``, or None when dropped."""
        self.sent += 1
        if self.queue_delay(now) > self.max_queue_delay:
            self.dropped += 1
            return None
        start = max(now, self._busy_until)
        self._busy_until = start + size * 8 / self.capacity
        if self.loss and self._rng.random() < self.loss:
            self.dropped += 1
            return None
        return self._busy_until + self.delay
