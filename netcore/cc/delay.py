"""Delay-based congestion detection (draft-ietf-rmcat-gcc-02 section 5, trendline variant).

A queue building up at the bottleneck shows as packets arriving further
apart than they were sent. Three steps turn transport-wide feedback into a
signal:

1. :class:`InterArrival` groups packets sent within :data:`BURST` of each
   other (a frame, a pacer burst) and gives, for each pair of consecutive
   groups, the send-time delta and the arrival-time delta (section 5.1).
2. :class:`TrendlineEstimator` accumulates the delay variation (arrival
   delta minus send delta), smooths it, and fits a line through the last
   :data:`WINDOW` points: the slope is the trend of the queuing delay. It
   replaces the draft's Kalman filter, as libwebrtc does.
3. :class:`OveruseDetector` compares the trend, scaled, with an adaptive
   threshold (section 5.4): over it for long enough is OVERUSE, under its
   negative is UNDERUSE, else NORMAL. The threshold follows the trend
   slowly so that a competing TCP flow does not starve us (section 5.4).

All times are seconds on the caller's clocks: send times on the sender's,
arrival times on the receiver's; only differences are used, so the two
clocks need no offset.
"""

from __future__ import annotations

import enum
from collections import deque

__all__ = ["BandwidthUsage", "InterArrival", "TrendlineEstimator", "OveruseDetector"]

BURST = 0.005  # packets sent within 5 ms form one group (section 5.1)
WINDOW = 20  # points in the trendline's linear regression
SMOOTHING = 0.9  # exponential smoothing of the accumulated delay
THRESHOLD_GAIN = 4.0  # scales the slope before it meets the threshold
MAX_DELTAS = 60  # the slope counts at most this many deltas' worth


class BandwidthUsage(enum.Enum):
    NORMAL = "normal"
    UNDERUSE = "underuse"
    OVERUSE = "overuse"


class _Group:
    __slots__ = ("first_send", "last_send", "last_arrival", "size")

    def __init__(self, send: float, arrival: float, size: int) -> None:
        self.first_send = send
        self.last_send = send
        self.last_arrival = arrival
        self.size = size


class InterArrival:
    """Send and arrival deltas between consecutive groups of packets (section 5.1)."""

    def __init__(self, burst: float = BURST) -> None:
        self.burst = burst
        self._current: _Group | None = None
        self._previous: _Group | None = None

    def add(self, send: float, arrival: float, size: int) -> tuple[float, float, int] | None:
        """Add one received packet, in send order; when it starts a new group,
        return ``(send_delta, arrival_delta, size_delta)`` of the two groups before it."""
        current = self._current
        if current is None:
            self._current = _Group(send, arrival, size)
            return None
        if send < current.first_send:
            return None  # reordered into an older group: ignored
        if self._same_group(current, send, arrival):
            current.last_send = max(current.last_send, send)
            current.last_arrival = max(current.last_arrival, arrival)
            current.size += size
            return None
        result = None
        previous = self._previous
        if previous is not None:
            result = (current.last_send - previous.last_send,
                      current.last_arrival - previous.last_arrival,
                      current.size - previous.size)
        self._previous = current
        self._current = _Group(send, arrival, size)
        return result

    def _same_group(self, group: _Group, send: float, arrival: float) -> bool:
        if send - group.first_send <= self.burst:
            return True
        # A packet that arrives in the same burst as the group but was sent
        # later belongs to it too (the network delivered them together).
        arrival_delta = arrival - group.last_arrival
        return arrival_delta < 0 or (arrival_delta - (send - group.last_send) < 0 and arrival_delta <= self.burst)


class TrendlineEstimator:
    """The slope of the smoothed accumulated delay over the last ``window`` groups."""

    def __init__(self, window: int = WINDOW, smoothing: float = SMOOTHING) -> None:
        self.window = window
        self.smoothing = smoothing
        self._first_arrival: float | None = None
        self._accumulated = 0.0
        self._smoothed = 0.0
        self._points: deque[tuple[float, float]] = deque(maxlen=window)
        self.deltas = 0
        self.trend = 0.0

    def update(self, send_delta: float, arrival_delta: float, arrival: float) -> float:
        """Add one group's deltas (seconds); return the trend (seconds of delay per second)."""
        if self._first_arrival is None:
            self._first_arrival = arrival
        self.deltas = min(self.deltas + 1, MAX_DELTAS)
        self._accumulated += arrival_delta - send_delta
        self._smoothed = self.smoothing * self._smoothed + (1 - self.smoothing) * self._accumulated
        self._points.append((arrival - self._first_arrival, self._smoothed))
        if len(self._points) == self.window:
            self.trend = _slope(self._points) or self.trend
        return self.trend

    @property
    def modified_trend(self) -> float:
        """The trend as the detector sees it: scaled by the deltas seen (up to 60) and the gain.

        The slope has no unit (seconds of delay per second); scaled so, it
        meets a threshold of 12.5 at a queue growing by about 50 ms a second.
        """
        return self.deltas * self.trend * THRESHOLD_GAIN


def _slope(points: deque[tuple[float, float]]) -> float | None:
    """Least-squares slope of ``(x, y)`` points, or None when all x are equal.

    Run for every packet group of every feedback (each subscriber's, ten a
    second): plain loops rather than four generator passes, the same
    additions in the same order, so the same result to the bit, at half the
    cost.
    """
    n = len(points)
    sum_x = sum_y = 0.0
    for x, y in points:
        sum_x += x
        sum_y += y
    mean_x = sum_x / n
    mean_y = sum_y / n
    numerator = denominator = 0.0
    for x, y in points:
        dx = x - mean_x
        numerator += dx * (y - mean_y)
        denominator += dx ** 2
    return numerator / denominator if denominator else None


class OveruseDetector:
    """Adaptive-threshold over-use detector (section 5.4).

    The threshold (ms) rises towards a larger trend slowly (``k_up``) and
    falls towards a smaller one faster (``k_down``), within [6, 600] ms;
    outliers more than 15 ms past it do not move it. OVERUSE needs the trend
    above the threshold for :attr:`overuse_time` and not falling.
    """

    def __init__(self, threshold: float = 12.5, k_up: float = 0.0087, k_down: float = 0.039,
                 overuse_time: float = 0.010) -> None:
        self.threshold = threshold
        self.k_up = k_up
        self.k_down = k_down
        self.overuse_time = overuse_time
        self.state = BandwidthUsage.NORMAL
        self._over_since: float | None = None
        self._over_count = 0
        self._previous_trend = 0.0
        self._last_update: float | None = None

    def detect(self, modified_trend: float, send_delta: float, now: float) -> BandwidthUsage:
        if modified_trend > self.threshold:
            if self._over_since is None:
                self._over_since = now - send_delta / 2
            self._over_count += 1
            if (now - self._over_since >= self.overuse_time and self._over_count > 1
                    and modified_trend >= self._previous_trend):
                self._over_since = None
                self._over_count = 0
                self.state = BandwidthUsage.OVERUSE
        elif modified_trend < -self.threshold:
            self._over_since = None
            self._over_count = 0
            self.state = BandwidthUsage.UNDERUSE
        else:
            self._over_since = None
            self._over_count = 0
            self.state = BandwidthUsage.NORMAL
        self._previous_trend = modified_trend
        self._adapt(modified_trend, now)
        return self.state

    def _adapt(self, modified_trend: float, now: float) -> None:
        if self._last_update is None:
            self._last_update = now
        magnitude = abs(modified_trend)
        if magnitude > self.threshold + 15.0:
            self._last_update = now  # an outlier: do not chase it
            return
        k = self.k_down if magnitude < self.threshold else self.k_up
        elapsed = min(now - self._last_update, 0.1)
        self.threshold += k * (magnitude - self.threshold) * elapsed * 1000.0
        self.threshold = min(max(self.threshold, 6.0), 600.0)
        self._last_update = now
