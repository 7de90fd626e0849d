"""Loss-based bound and the acknowledged bitrate (draft-ietf-rmcat-gcc-02 sections 5.5, 6).

:class:`LossBasedControl` keeps a second estimate from the loss fraction,
counted over at least :data:`MIN_PACKETS` reported packets: over 10 % lost,
it falls by half the loss (at most once per round trip and 300 ms); under
2 %, it rises 8 % (at most once per :attr:`increase_interval`; the draft
says 5 %, libwebrtc 8 %, which keeps pace with the delay-based increase);
in between, it holds (section 6). The sender uses the smaller of this and the
delay-based estimate, so a link that drops without queuing (a policer, a
lossy radio) still slows us down.

:class:`AckedBitrate` measures what the receiver actually got: bytes of
packets reported received over a sliding window of arrival time (section
5.5's R_hat, over 500 ms).
"""

from __future__ import annotations

from collections import deque

__all__ = ["LossBasedControl", "AckedBitrate"]

LOW_LOSS = 0.02
HIGH_LOSS = 0.10
MIN_PACKETS = 20  # fewer reported packets say too little about the loss
INCREASE = 1.08


class LossBasedControl:
    """The loss-based target bitrate (bits per second)."""

    def __init__(self, initial: float, minimum: float = 30_000, maximum: float = 10_000_000,
                 increase_interval: float = 1.0) -> None:
        self.rate = float(initial)
        self.minimum = float(minimum)
        self.maximum = float(maximum)
        self.increase_interval = increase_interval
        self.loss = 0.0
        self._last_increase: float | None = None
        self._last_decrease: float | None = None
        self._received = 0
        self._lost = 0
        self.rtt = 0.1

    def update(self, received: int, lost: int, now: float) -> float:
        """Feed one feedback's counts; return the bound (changed once enough packets are counted).

        ``lost`` is below zero when the feedback took back more losses than it reported: numbers
        an earlier one had as lost, received after all (overtaken on the path). A correction
        counts against the losses of the window it comes in, and what is left of it against the
        next: a loss already counted in a window that has been judged is not counted twice.
        """
        self._received += received
        self._lost += lost
        total = self._received + max(self._lost, 0)
        if total < MIN_PACKETS:
            return self.rate
        self.loss = max(self._lost, 0) / total
        self._received = 0
        self._lost = min(self._lost, 0)
        if self.loss > HIGH_LOSS:
            if self._last_decrease is None or now - self._last_decrease >= self.rtt + 0.3:
                self.rate *= 1 - 0.5 * self.loss
                self._last_decrease = now
        elif self.loss < LOW_LOSS:
            if self._last_increase is None or now - self._last_increase >= self.increase_interval:
                self.rate *= INCREASE
                self._last_increase = now
        self.rate = min(max(self.rate, self.minimum), self.maximum)
        return self.rate

    def raise_to(self, rate: float) -> None:
        """Let the bound follow a delay-based estimate that a probe or low loss has shown."""
        self.rate = min(max(self.rate, rate), self.maximum)


class AckedBitrate:
    """Bits per second received over the last ``window`` seconds of arrivals."""

    def __init__(self, window: float = 0.5) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()
        self._bytes = 0

    def add(self, arrival: float, size: int) -> None:
        self._samples.append((arrival, size))
        self._bytes += size
        while self._samples and self._samples[0][0] < arrival - self.window:
            self._bytes -= self._samples.popleft()[1]

    @property
    def rate(self) -> float | None:
        """None until the window holds enough time to measure."""
        if len(self._samples) < 2:
            return None
        span = self._samples[-1][0] - self._samples[0][0]
        if span < self.window / 2:
            return None
        return (self._bytes - self._samples[0][1]) * 8 / span
