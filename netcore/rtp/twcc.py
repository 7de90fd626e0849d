"""Transport-wide congestion control feedback, receiver side (sans-IO).

draft-holmer-rmcat-transport-wide-cc-extensions-01: every packet carries a
transport-wide sequence number in a header extension; the receiver reports
when each arrived, and the sender's bandwidth estimator (in browsers) uses
the reports.  :class:`TwccRecorder` records ``(sequence number, arrival)``
and builds :class:`~netcore.rtp.feedback.TransportFeedback` packets;
:func:`arrival_times` reads them back into seconds.

The media source SSRC of each feedback packet is an SSRC the remote side
sends (the last one recorded): libwebrtc acts only on transport feedback
whose media SSRC is one of its own (its RTCP receiver drops the rest, so
that feedback reaching every stream is used once), and a browser that
never hears its feedback backs its estimate off to its floor.

A packet that arrives after a feedback reported its number lost (it was
overtaken on the path: reordering, not loss) is reported again, as received:
the next feedback starts at its number and repeats what was reported since
(libwebrtc's receiver does the same; a sender takes a received report of a
number it had as lost as a correction). Without that, a path that reorders
within tens of milliseconds read as a percent or two more loss than it had,
every packet overtaken across a feedback's edge a permanent loss. Numbers
reported more than :data:`REREPORT_TIME` of arrivals ago are not gone back to.

Times: ``reference_time`` counts 64 ms units of the receiver's clock (24
bits), deltas 250 microsecond ticks (section 3.1).  Delta times are kept
quantized while building, so rounding errors never accumulate: each
reported arrival is within 125 microseconds of the recorded one.
"""

from __future__ import annotations

from typing import Sequence

from netcore.rtp.feedback import TransportFeedback
from netcore.rtp.sequence import SequenceUnwrapper

__all__ = ["TwccRecorder", "arrival_times", "arrival_times_of", "TICK", "REFERENCE_UNIT"]

TICK = 0.00025  # seconds per delta tick
REFERENCE_UNIT = 0.064  # seconds per reference time unit
_MAX_STATUSES = 0xFFFF
REREPORT_TIME = 0.5  # seconds of arrivals whose numbers a late packet may be reported again among


def arrival_times(fb: TransportFeedback) -> list[tuple[int, float | None]]:
    """``(sequence number, arrival in seconds or None)`` per reported packet.

    Seconds are on the receiver's clock modulo 2**24 reference units.
    """
    return arrival_times_of(fb.base_sequence, fb.reference_time, fb.statuses, fb.deltas)


def arrival_times_of(base_sequence: int, reference_time: int, statuses: Sequence[int],
                     deltas: Sequence[int]) -> list[tuple[int, float | None]]:
    """:func:`arrival_times` of a feedback's fields (``netcore.cc._feedback.Accounting.feedback_twcc``
    computes the same times, in the same order of operations, without the list)."""
    ref = reference_time
    if ref & 0x800000:  # section 3.1: a signed 24-bit value
        ref -= 0x1000000
    t = ref * REFERENCE_UNIT
    out: list[tuple[int, float | None]] = []
    received = iter(deltas)
    for i, status in enumerate(statuses):
        seq = (base_sequence + i) & 0xFFFF
        if status == 0:
            out.append((seq, None))
        else:
            t += next(received) * TICK
            out.append((seq, t))
    return out


class TwccRecorder:
    """Arrival times of transport-wide sequence numbers, and their feedback.

    At most ``max_packets`` unreported arrivals are kept; beyond that the
    oldest are dropped (and the sender sees them as lost).
    """

    def __init__(self, sender_ssrc: int, media_ssrc: int = 0, max_packets: int = 10000) -> None:
        """``media_ssrc`` until a recorded packet names one (see :meth:`record`)."""
        self.sender_ssrc = sender_ssrc
        self.media_ssrc = media_ssrc
        self.max_packets = max_packets
        self._unwrap = SequenceUnwrapper()
        self._arrivals: dict[int, float] = {}
        self._next: int | None = None  # first sequence number not yet reported
        self._reported: dict[int, float] = {}  # arrivals reported over the last REREPORT_TIME
        self._reported_from: int | None = None  # the numbers from here on were reported that recently
        self._rewind: int | None = None  # the next feedback starts here: a late arrival's number
        self._fb_count = 0
        self.late = 0  # arrivals for numbers already reported (reported again when recent enough)

    def __len__(self) -> int:
        return len(self._arrivals)

    def record(self, sequence_number: int, arrival: float, ssrc: int | None = None) -> None:
        """One packet with this transport-wide number arrived at ``arrival`` (s).

        ``ssrc`` (the packet's) becomes the media source SSRC of the next
        feedback: it must name a stream of the sender for libwebrtc to use it.
        """
        if ssrc is not None:
            self.media_ssrc = ssrc
        seq = self._unwrap.unwrap(sequence_number)
        if self._next is not None and seq < self._next:
            self.late += 1
            if seq in self._reported or self._reported_from is None or seq < self._reported_from:
                return  # a duplicate, or reported too long ago to go back to
            self._rewind = seq if self._rewind is None else min(self._rewind, seq)
        self._arrivals.setdefault(seq, arrival)
        if len(self._arrivals) > self.max_packets:
            oldest = min(self._arrivals)
            del self._arrivals[oldest]
            self._next = max(self._next or oldest, oldest + 1)

    def build(self) -> list[TransportFeedback]:
        """Feedback for everything recorded since the last call (maybe none).

        Numbers not received are reported as such.  A new packet starts
        wherever a delta would not fit in 16 bits or the status count would
        overflow.
        """
        if not self._arrivals:
            return []
        arrivals = self._arrivals
        first = min(arrivals) if self._next is None else self._next
        if self._rewind is not None:
            first = self._rewind
        if self._reported_from is None:
            self._reported_from = first
        last = max(arrivals)
        reported = self._reported
        out = []
        current: TransportFeedback | None = None
        prev = 0.0
        for seq in range(first, last + 1):
            t = arrivals.get(seq)
            if t is None:
                t = reported.get(seq)  # reported before: again, as it was (a late one is among them)
            if t is None:
                if current is not None:
                    current.statuses.append(0)
                continue
            if current is None:
                # Leading losses are reported too: the packet starts at `first`.
                current, prev = self._start(first, t)
                current.statuses.extend([0] * (seq - first))
            ticks = round((t - prev) / TICK)
            if not -0x8000 <= ticks <= 0x7FFF or len(current.statuses) == _MAX_STATUSES:
                out.append(current)
                current, prev = self._start(seq, t)
                ticks = round((t - prev) / TICK)
            current.statuses.append(1 if 0 <= ticks <= 255 else 2)
            current.deltas.append(ticks)
            prev += ticks * TICK
        if current is not None:
            out.append(current)
        self._remember(arrivals, self._rewind is not None)
        self._arrivals = {}
        self._rewind = None
        self._next = last + 1 if self._next is None else max(self._next, last + 1)
        return out

    def _remember(self, arrivals: dict[int, float], rewound: bool) -> None:
        """Keep what was just reported, in number order, for :data:`REREPORT_TIME` of arrivals."""
        reported = self._reported
        reported.update(sorted(arrivals.items()))
        if rewound:  # a late number went in behind newer ones
            reported = self._reported = dict(sorted(reported.items()))
        oldest_kept = max(arrivals.values()) - REREPORT_TIME
        while reported and (len(reported) > self.max_packets or reported[next(iter(reported))] < oldest_kept):
            seq = next(iter(reported))
            del reported[seq]
            self._reported_from = seq + 1

    def _start(self, seq: int, t: float) -> tuple[TransportFeedback, float]:
        ref = int(t // REFERENCE_UNIT)
        fb = TransportFeedback(
            self.sender_ssrc, self.media_ssrc, seq & 0xFFFF, ref & 0xFFFFFF, self._fb_count
        )
        self._fb_count = (self._fb_count + 1) & 0xFF
        return fb, ref * REFERENCE_UNIT

