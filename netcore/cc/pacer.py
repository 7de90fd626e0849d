"""A pacer: packets leave at a set rate in short bursts, not as the encoder makes them.

An encoder hands over a whole key frame at once; sent back to back it fills
the bottleneck's queue and the delay-based estimator reads congestion that
is only our own burst. The pacer (a leaky bucket, as libwebrtc's) lets out
at most ``rate * interval`` bytes every ``interval`` (5 ms), at ``factor``
(2.5) times the target so that a frame still leaves within a frame time.

Budget: while packets wait, every second that passes is credited, up to
:data:`MAX_ELAPSED` at once, even when the caller comes late (a busy
process's timer fires every 15-30 ms, not every 5): crediting one interval
per call made a late caller send at a fraction of the rate, and the queue
then grew to its time bound. After idle time only one interval is
credited: no burst. Audio (and retransmissions) go first.

Queue time: nothing waits longer than ``max_queue_time`` (500 ms). As the
oldest packet nears it, the rate rises so that what is queued leaves by
then (libwebrtc's queue time limit, with its drain rate): a backlog after
the target fell is spread, not dumped at once when its time is up. Probe
packets do not go through the pacer: a probe cluster has a rate of its own
(:class:`netcore.cc.probe.ProbeCluster`).
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

__all__ = ["Pacer"]

T = TypeVar("T")

INTERVAL = 0.005
PACING_FACTOR = 2.5
MAX_ELAPSED = 0.03  # seconds of budget credited at once to a caller that came late


class Pacer(Generic[T]):
    """Queues ``(item, size)`` and releases them at the pacing rate; sans-IO."""

    def __init__(self, rate: float, *, factor: float = PACING_FACTOR, interval: float = INTERVAL,
                 max_queue_time: float = 0.5) -> None:
        self.rate = rate * factor  # bits per second
        self.factor = factor
        self.interval = interval
        self.max_queue_time = max_queue_time
        self._audio: deque[tuple[T, int, float]] = deque()
        self._video: deque[tuple[T, int, float]] = deque()
        self._budget = 0.0  # bytes that may leave now
        self._last: float | None = None
        self.queued_bytes = 0

    def set_rate(self, target: float) -> None:
        self.rate = target * self.factor

    def enqueue(self, item: T, size: int, now: float, *, audio: bool = False) -> None:
        if not self._audio and not self._video:
            self._refill(now)  # the idle time before this packet earns no burst
        (self._audio if audio else self._video).append((item, size, now))
        self.queued_bytes += size

    def poll(self, now: float) -> list[T]:
        """The items that may leave at ``now``, in order (audio first)."""
        self._refill(now)
        out: list[T] = []
        for queue in (self._audio, self._video):
            while queue and (self._budget > 0 or now - queue[0][2] >= self.max_queue_time):
                item, size, _ = queue.popleft()
                self._budget -= size
                self.queued_bytes -= size
                out.append(item)
        return out

    def _rate(self, now: float) -> float:
        """The pacing rate, raised so that what is queued leaves before its oldest packet's time is up."""
        oldest = min((q[0][2] for q in (self._audio, self._video) if q), default=None)
        if oldest is None:
            return self.rate
        left = max(self.interval, self.max_queue_time - (now - oldest))
        return max(self.rate, self.queued_bytes * 8 / left)

    def _refill(self, now: float) -> None:
        rate = self._rate(now)
        if self._last is None:
            self._last = now
            self._budget = rate * self.interval / 8
            return
        elapsed = now - self._last
        self._last = now
        if self._audio or self._video:
            # Packets waited all that time: it is all credited (a debt first), up to MAX_ELAPSED.
            credit = rate * min(elapsed, MAX_ELAPSED) / 8
            self._budget = min(self._budget + credit, max(credit, rate * self.interval / 8))
        else:
            # Idle: the budget carries at most one interval's worth, so no burst after idle time.
            self._budget = min(self._budget + rate * elapsed / 8, rate * self.interval / 8)

    def next_deadline(self, now: float) -> float | None:
        if not self._audio and not self._video:
            return None
        if self._budget > 0:
            return now
        rate = self._rate(now)
        wait = -self._budget * 8 / rate if rate > 0 else self.interval
        return now + max(wait, 0.001)

    def __len__(self) -> int:
        return len(self._audio) + len(self._video)
