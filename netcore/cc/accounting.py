"""The estimator's per-packet feedback accounting, sans-IO: the sent history and what each report feeds.

Every transport-wide feedback (ten a second per subscriber of the call
server) is matched, number by number, against the history of sent packets;
each packet reported received goes to the acknowledged rate, the
inter-arrival grouping, the trendline and the over-use detector. That loop
was the largest Python cost per subscriber of ``netcore-sfu`` (about
100 µs a feedback), so it is kept here apart from the decisions that
follow a feedback (:class:`~netcore.cc.estimator.BandwidthEstimator`:
AIMD, the loss-based bound, probes), in two implementations that decide
alike, to the bit:

* :class:`FeedbackAccounting` in Python (this module), the fallback and
  the reference;
* ``netcore.cc._feedback.Accounting`` in C (``netcore/cc/_feedback.c``),
  the same operations on doubles in the same order, used when built.

:func:`new_accounting` picks one (``NETCORE_CC_ACCOUNTING=python`` forces
the Python one). Probe packets are handed back to the estimator rather
than counted here: their results only touch the rate controls, which
nothing in this loop reads, so handling them after the loop is the same.
"""

from __future__ import annotations

import os
from typing import Iterable, Protocol, Sequence

from netcore.cc.delay import (BURST, MAX_DELTAS, SMOOTHING, THRESHOLD_GAIN, WINDOW, BandwidthUsage, InterArrival,
                              OveruseDetector, TrendlineEstimator)
from netcore.cc.loss import AckedBitrate
from netcore.rtp.twcc import arrival_times_of

try:
    from netcore.cc import _feedback
except ImportError:  # no C compiler at install time: the Python accounting, the same decisions
    _feedback = None  # type: ignore[assignment]

__all__ = ["HISTORY", "ACKED_WINDOW", "Accounting", "FeedbackAccounting", "new_accounting", "compiled_accounting",
           "compiled_available"]

HISTORY = 8192  # sent packets remembered for feedback; far more than one feedback interval
ACKED_WINDOW = 0.5  # the acknowledged rate's window (seconds of arrival time)
ENV = "NETCORE_CC_ACCOUNTING"  # "python" selects the Python accounting, "c" (the default when built) the compiled

# (cluster, send time, arrival, size) of a probe packet reported received
ProbeArrival = tuple[int, float, float, int]


class Accounting(Protocol):
    """What both implementations offer the estimator."""

    usage: BandwidthUsage

    def sent(self, transport_seq: int, size: int, now: float, probe_cluster: int | None = None) -> None: ...

    def sent_many(self, sent: Iterable[tuple[int, int, float]]) -> int: ...

    def feedback(self, arrivals: list[tuple[int, float | None]], now: float
                 ) -> tuple[int, int, int, list[ProbeArrival] | None]: ...

    def feedback_twcc(self, base_sequence: int, reference_time: int, statuses: Sequence[int],
                      deltas: Sequence[int], now: float) -> tuple[int, int, int, list[ProbeArrival] | None]: ...

    @property
    def acked_rate(self) -> float | None: ...

    def history(self) -> list[tuple[int, float, int, int | None]]: ...

    def state(self) -> tuple: ...


class _Sent:
    __slots__ = ("send_time", "size", "probe_cluster", "reported_lost")

    def __init__(self, send_time: float, size: int, probe_cluster: int | None) -> None:
        self.send_time = send_time
        self.size = size
        self.probe_cluster = probe_cluster
        self.reported_lost = False


class FeedbackAccounting:
    """The sent history (bounded, oldest first out) and the delay chain fed from each feedback."""

    def __init__(self) -> None:
        self._sent: dict[int, _Sent] = {}
        self._inter_arrival = InterArrival()
        self._trendline = TrendlineEstimator()
        self._detector = OveruseDetector()
        self._acked = AckedBitrate(ACKED_WINDOW)

    def sent(self, transport_seq: int, size: int, now: float, probe_cluster: int | None = None) -> None:
        """Remember a packet that carries transport-wide sequence number ``transport_seq`` (16 bits)."""
        sent = self._sent
        sent[transport_seq & 0xFFFF] = _Sent(now, size, probe_cluster)
        if len(sent) > HISTORY:
            del sent[next(iter(sent))]

    def sent_many(self, sent: Iterable[tuple[int, int, float]]) -> int:
        """Packets sent outside any probe, ``(transport_seq, size, send time)`` in send order; their bytes."""
        history = self._sent
        total = 0
        for seq, size, at in sent:
            history[seq & 0xFFFF] = _Sent(at, size, None)
            total += size
        while len(history) > HISTORY:
            del history[next(iter(history))]
        return total

    def feedback(self, arrivals: list[tuple[int, float | None]], now: float
                 ) -> tuple[int, int, int, list[ProbeArrival] | None]:
        """One feedback's ``(sequence number, arrival or None)`` list, in sequence order: ``(received, lost,
        unknown, probe packets received or None)``; ``lost`` is below zero when late reports took back more
        earlier losses than this one reports."""
        received = lost = unknown = 0
        probes: list[ProbeArrival] | None = None
        history = self._sent
        for seq, arrival in arrivals:
            packet = history.get(seq & 0xFFFF)
            if packet is None:
                unknown += 1
                continue
            if arrival is None:
                if not packet.reported_lost:
                    packet.reported_lost = True
                    lost += 1
                continue
            del history[seq & 0xFFFF]
            if packet.reported_lost:
                lost -= 1  # reported lost before, received after all (a late report)
            received += 1
            self._acked.add(arrival, packet.size)
            if packet.probe_cluster is not None:
                if probes is None:
                    probes = []
                probes.append((packet.probe_cluster, packet.send_time, arrival, packet.size))
            deltas = self._inter_arrival.add(packet.send_time, arrival, packet.size)
            if deltas is not None:
                send_delta, arrival_delta, _ = deltas
                self._trendline.update(send_delta, arrival_delta, arrival)
                self._detector.detect(self._trendline.modified_trend, send_delta, now)
        return received, lost, unknown, probes

    def feedback_twcc(self, base_sequence: int, reference_time: int, statuses: Sequence[int],
                      deltas: Sequence[int], now: float) -> tuple[int, int, int, list[ProbeArrival] | None]:
        """:meth:`feedback` of a transport-wide feedback packet's fields (its arrival times, as
        :func:`netcore.rtp.twcc.arrival_times` reads them)."""
        return self.feedback(arrival_times_of(base_sequence, reference_time, statuses, deltas), now)

    @property
    def usage(self) -> BandwidthUsage:
        return self._detector.state

    @property
    def acked_rate(self) -> float | None:
        return self._acked.rate

    def history(self) -> list[tuple[int, float, int, int | None]]:
        """``(seq, send time, size, probe cluster)`` of every remembered packet, oldest first."""
        return [(k, v.send_time, v.size, v.probe_cluster) for k, v in self._sent.items()]

    def state(self) -> tuple:
        """Everything the next decisions depend on, for comparing the two implementations."""
        t, d = self._trendline, self._detector
        return (self.history(), [v.reported_lost for v in self._sent.values()], self.usage, self.acked_rate,
                t.trend, t.deltas, t._accumulated, t._smoothed, list(t._points),
                d.threshold, d._over_since, d._over_count, d._previous_trend, d._last_update)


def compiled_available() -> bool:
    return _feedback is not None


def compiled_accounting() -> Accounting:
    """The C accounting, with this package's constants (``RuntimeError`` when it is not built)."""
    if _feedback is None:
        raise RuntimeError("netcore.cc._feedback is not built (setup.py build_ext)")
    d = OveruseDetector()
    return _feedback.Accounting(HISTORY, ACKED_WINDOW, BURST, WINDOW, SMOOTHING, THRESHOLD_GAIN, MAX_DELTAS,
                                d.threshold, d.k_up, d.k_down, d.overuse_time, tuple(BandwidthUsage))


def new_accounting() -> Accounting:
    """The compiled accounting when built and not turned off by ``NETCORE_CC_ACCOUNTING=python``."""
    if _feedback is not None and os.environ.get(ENV, "c") != "python":
        return compiled_accounting()
    return FeedbackAccounting()
