"""AIMD rate control driven by the over-use signal (draft-ietf-rmcat-gcc-02 section 5.5).

The controller is a small state machine over the detector's signal::

    signal \\ state   HOLD       INCREASE   DECREASE
    OVERUSE           DECREASE   DECREASE   DECREASE
    NORMAL            INCREASE   INCREASE   HOLD
    UNDERUSE          HOLD       HOLD       HOLD

INCREASE grows the rate multiplicatively (8 % a second) while far from the
rate where the last decrease happened, and additively (about one packet per
response time) near it, so it probes gently where the link gave way before.
DECREASE sets the rate to ``beta`` (0.85) times the measured acknowledged
rate, and remembers that rate as the link's capacity estimate. The rate
never goes above 1.5 times the acknowledged rate (section 5.5), so an
application that sends little cannot build a large estimate it has not
shown the link can carry.
"""

from __future__ import annotations

import enum

from netcore.cc.delay import BandwidthUsage

__all__ = ["RateControlState", "AimdRateControl"]


class RateControlState(enum.Enum):
    HOLD = "hold"
    INCREASE = "increase"
    DECREASE = "decrease"


_TRANSITIONS: dict[tuple[BandwidthUsage, RateControlState], RateControlState] = {
    (BandwidthUsage.OVERUSE, RateControlState.HOLD): RateControlState.DECREASE,
    (BandwidthUsage.OVERUSE, RateControlState.INCREASE): RateControlState.DECREASE,
    (BandwidthUsage.OVERUSE, RateControlState.DECREASE): RateControlState.DECREASE,
    (BandwidthUsage.NORMAL, RateControlState.HOLD): RateControlState.INCREASE,
    (BandwidthUsage.NORMAL, RateControlState.INCREASE): RateControlState.INCREASE,
    (BandwidthUsage.NORMAL, RateControlState.DECREASE): RateControlState.HOLD,
    (BandwidthUsage.UNDERUSE, RateControlState.HOLD): RateControlState.HOLD,
    (BandwidthUsage.UNDERUSE, RateControlState.INCREASE): RateControlState.HOLD,
    (BandwidthUsage.UNDERUSE, RateControlState.DECREASE): RateControlState.HOLD,
}

BETA = 0.85  # decrease factor (section 5.5)
ETA = 1.08  # multiplicative increase per second
MAX_OVER_ACKED = 1.5  # the rate stays below this times the acknowledged rate


class AimdRateControl:
    """The delay-based target bitrate (bits per second)."""

    def __init__(self, initial: float, minimum: float = 30_000, maximum: float = 10_000_000) -> None:
        self.rate = float(initial)
        self.minimum = float(minimum)
        self.maximum = float(maximum)
        self.state = RateControlState.INCREASE
        self.rtt = 0.1
        self._capacity: float | None = None  # acked rate at the last decrease (link capacity estimate)
        self._capacity_deviation = 0.0  # relative spread of those estimates
        self._last_change: float | None = None
        self._decreased_at: float | None = None
        self._before_change = self.rate

    def update(self, usage: BandwidthUsage, acked: float | None, now: float) -> float:
        """Feed the detector's signal and the acknowledged rate; return the new target."""
        self.state = _TRANSITIONS[(usage, self.state)]
        if self._last_change is None:
            self._last_change = now
        elapsed = min(now - self._last_change, 1.0)
        self._before_change = self.rate
        if self.state is RateControlState.INCREASE:
            self._increase(acked, elapsed)
        elif self.state is RateControlState.DECREASE:
            self._decrease(acked, now)
        self._last_change = now
        return self.rate

    def _increase(self, acked: float | None, elapsed: float) -> None:
        if acked is not None and self._capacity is not None:
            if acked > self._capacity + 3 * self._capacity_deviation * self._capacity:
                self._capacity = None  # the link got faster: search again multiplicatively
        if self._capacity is not None:
            self.rate += self._additive_increase() * elapsed
        else:
            self.rate *= ETA ** elapsed
        if acked is not None:
            # Only an increase is held to what the link has shown it carries;
            # a rate set higher by a probe stays.
            limit = MAX_OVER_ACKED * acked + 10_000
            if self.rate > limit:
                self.rate = max(limit, self._before_change)
        self.rate = min(max(self.rate, self.minimum), self.maximum)

    def _additive_increase(self) -> float:
        """About one average packet per response time, in bit/s per second (libwebrtc's rule)."""
        response_time = self.rtt + 0.1
        bits_per_frame = self.rate / 30
        packets_per_frame = max(1, -(-int(bits_per_frame) // (1200 * 8)))
        return max(4_000.0, bits_per_frame / packets_per_frame / response_time)

    def _decrease(self, acked: float | None, now: float) -> None:
        self.state = RateControlState.HOLD  # wait for NORMAL before increasing again
        if acked is None:
            return
        if self._decreased_at is not None and now - self._decreased_at < self.rtt:
            return  # one decrease per round trip: the next feedback still shows the old queue
        self._decreased_at = now
        target = BETA * acked
        if target < self.rate:
            self.rate = max(target, self.minimum)
        if self._capacity is None:
            self._capacity = acked
            self._capacity_deviation = 0.1
        else:
            relative = (acked - self._capacity) / self._capacity
            self._capacity = 0.95 * self._capacity + 0.05 * acked
            self._capacity_deviation = min(max(0.95 * self._capacity_deviation + 0.05 * abs(relative), 0.02), 0.4)

    def set_estimate(self, rate: float) -> None:
        """Jump to ``rate`` (a probe measured the link at it)."""
        self.rate = min(max(rate, self.minimum), self.maximum)
        self._capacity = None
