"""Every track of a room on one clock: fits from sender reports, arrival times as a fallback.

A sender report (RFC 3550 section 6.4.1) pairs the sender's wallclock (NTP)
with the RTP timestamp of the same instant; all tracks of one sender share
its wallclock, which is what lip sync rests on (RFC 3550 section 6.4.1,
RFC 7273).  The first report alone is not enough: a sender whose audio
clock runs a little fast or slow against its wallclock drifts away from
its video by a few seconds an hour (the drift recordings are known for).
So for each track

* ``rtp -> sender wallclock`` is a Theil-Sen line (the median of the slopes
  between pairs of reports; a quarter of the reports may be wild without
  moving it) through all its reports, its slope checked against the
  nominal clock rate, its intercept at the report that lags least (a
  sender that computes a report's RTP time from the last packet it sent
  lags by however late that packet left; it never leads);
* ``sender wallclock -> recorder clock`` is one line per participant, over
  the reports of all its tracks: Theil-Sen slope (the two clocks drift
  too), intercept at the fastest report (arrival minus wallclock at its
  minimum: the network only ever adds delay);
* a track without sender reports is placed by its packets' arrival times:
  RTP time at the nominal rate, shifted so the fastest packet arrived on
  time.

Room time is the recorder's clock minus the room's start (the manifest).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netcore.record.journal import SenderInfo
from netcore.rtp.reports import ntp_to_seconds

__all__ = ["theil_sen", "TrackClock", "fit_wallclock", "fit_track", "arrival_clock"]

MAX_FIT_POINTS = 256  # reports used in a fit (evenly spread): O(n**2) pairs
MAX_RATE_ERROR = 0.01
ENVELOPE_QUANTILE = 0.05
# A clock rate is fitted only over this much time and this many reports: drift is slow
# (100 ppm is 1 ms in 10 s), the lag of one report is not.
MIN_SLOPE_SPAN = 30.0
MIN_SLOPE_REPORTS = 6  # the least lag, with one report in twenty allowed to be wild  # a fitted clock rate further than 1 % from nominal is not believed


def theil_sen(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slope (median of pairwise slopes) and intercept (median of ``y - slope * x``)."""
    if len(x) > MAX_FIT_POINTS:
        pick = np.linspace(0, len(x) - 1, MAX_FIT_POINTS).astype(int)
        x, y = x[pick], y[pick]
    i, j = np.triu_indices(len(x), k=1)
    dx = x[j] - x[i]
    keep = dx != 0
    if not keep.any():
        return 1.0, float(np.median(y - x))
    slope = float(np.median((y[j] - y[i])[keep] / dx[keep]))
    return slope, float(np.median(y - slope * x))


@dataclass(frozen=True, slots=True)
class TrackClock:
    """Room time of a track's unwrapped RTP timestamp: ``offset + rtp * scale``."""

    offset: float
    scale: float  # seconds per RTP tick
    source: str  # "sender-reports" or "arrival"

    def to_room(self, rtp: int | float) -> float:
        return self.offset + rtp * self.scale


@dataclass(frozen=True, slots=True)
class WallclockMap:
    """A participant's wallclock (Unix seconds from NTP) to the recorder's clock."""

    offset: float
    slope: float

    def __call__(self, wallclock: float) -> float:
        return self.offset + self.slope * wallclock


def fit_wallclock(reports: list[tuple[float, float]]) -> WallclockMap:
    """From ``(wallclock, arrival)`` of a participant's reports (every track of it)."""
    w = np.array([r[0] for r in reports], dtype=float)
    a = np.array([r[1] for r in reports], dtype=float)
    w0 = float(w.min())
    slope = 1.0
    if len(w) >= MIN_SLOPE_REPORTS and w.max() - w0 >= MIN_SLOPE_SPAN:
        fitted, _ = theil_sen(w - w0, a)
        if abs(fitted - 1.0) < MAX_RATE_ERROR:
            slope = fitted
    offset = float(np.min(a - slope * (w - w0)))  # the fastest report
    return WallclockMap(offset - slope * w0, slope)


def fit_track(reports: list[tuple[int, SenderInfo]], clock_rate: int, wallclock: WallclockMap,
              origin: float) -> TrackClock:
    """A track's clock from ``(unwrapped rtp, sender info)`` of its reports."""
    rtp = np.array([r[0] for r in reports], dtype=float)
    ntp = np.array([ntp_to_seconds(r[1].ntp_timestamp) for r in reports], dtype=float)
    nominal = 1.0 / clock_rate
    r0, n0 = float(rtp.min()), float(ntp.min())
    scale = nominal
    if len(rtp) >= MIN_SLOPE_REPORTS and ntp.max() - n0 >= MIN_SLOPE_SPAN:
        fitted, _ = theil_sen(rtp - r0, ntp - n0)
        if abs(fitted / nominal - 1.0) < MAX_RATE_ERROR:
            scale = fitted
    # The report that lags least: a sender that extrapolates a report's RTP time from the
    # last packet it sent can only lag (a late packet), never lead; one that stamps capture
    # time puts every report on the line, where the least is the line too.
    intercept = float(np.quantile((ntp - n0) - scale * (rtp - r0), ENVELOPE_QUANTILE, method="lower"))
    # wallclock of rtp = n0 + intercept + scale * (rtp - r0); then onto the recorder's clock
    base = wallclock(n0 + intercept - scale * r0) - origin
    return TrackClock(base, scale * wallclock.slope, "sender-reports")


def arrival_clock(packets: list[tuple[int, float]], clock_rate: int, origin: float,
                  capture: float = 0.0) -> TrackClock:
    """A track's clock from ``(unwrapped rtp, arrival)`` of its packets: the fastest one on time.

    ``capture``: how long a packet's media takes to capture before it can be sent (an audio
    packet leaves after its last sample, 20 ms after the first, which its timestamp names).
    """
    rtp = np.array([p[0] for p in packets], dtype=float)
    arrival = np.array([p[1] for p in packets], dtype=float)
    scale = 1.0 / clock_rate
    return TrackClock(float(np.min(arrival - rtp * scale)) - capture - origin, scale, "arrival")
