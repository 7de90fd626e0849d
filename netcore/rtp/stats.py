"""Receiver statistics of one RTP source (RFC 3550 appendix A.1, A.3, A.8).

:class:`ReceiverStatistics` is fed every packet of a source (sequence
number, RTP timestamp, arrival time) and yields what a reception report
block needs: the extended highest sequence number, cumulative and fraction
lost, and the interarrival jitter.  A new source is on probation until
``MIN_SEQUENTIAL`` packets arrive in sequence, and a jump of more than
``MAX_DROPOUT`` restarts counting once two sequential packets confirm it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ReceiverStatistics", "LossReport", "MAX_DROPOUT", "MAX_MISORDER", "MIN_SEQUENTIAL"]

RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000  # RFC 3550 appendix A.1
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2
PACKETS_LOST_MIN = -(1 << 23)
PACKETS_LOST_MAX = (1 << 23) - 1


@dataclass(frozen=True, slots=True)
class LossReport:
    """The loss fields of one report block (RFC 3550 section 6.4.1)."""

    fraction_lost: int  # 8-bit fixed point, since the previous report
    packets_lost: int  # cumulative, clamped to 24-bit signed
    highest_sequence: int  # extended, 32 bits
    jitter: int  # RTP timestamp units


class ReceiverStatistics:
    """Appendix A.1 ``source`` state plus the A.8 jitter estimate."""

    __slots__ = (
        "clock_rate",
        "max_seq",
        "cycles",
        "base_seq",
        "bad_seq",
        "probation",
        "received",
        "expected_prior",
        "received_prior",
        "transit",
        "_jitter",
        "octets",
        "_seen",
    )

    def __init__(self, clock_rate: int, probation: int = MIN_SEQUENTIAL) -> None:
        """``probation`` sequential packets validate the source (0: trusted)."""
        self.clock_rate = clock_rate
        self.probation = probation
        self.transit: int | None = None
        self._jitter = 0.0
        self.octets = 0
        self._seen = False
        self._init_seq(0)

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1  # so seq == bad_seq is false
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0

    @property
    def validated(self) -> bool:
        """The source passed probation and was counted."""
        return self._seen and self.probation == 0 and self.received > 0

    def update(self, seq: int, timestamp: int, arrival: float, size: int = 0) -> bool:
        """Account one packet; returns False while it is not (yet) valid.

        ``arrival`` is the receive time in seconds (any origin); ``size`` the
        payload octets, summed in ``octets``.
        """
        if not self._update_seq(seq):
            return False
        self.octets += size
        # RFC 3550 appendix A.8: transit time in timestamp units, mod 2**32.
        transit = (int(arrival * self.clock_rate) - timestamp) & 0xFFFFFFFF
        last = self.transit
        self.transit = transit
        if last is not None:
            d = (transit - last) & 0xFFFFFFFF
            if d >= 0x80000000:
                d = 0x100000000 - d
            self._jitter += (d - self._jitter) / 16.0
        return True

    def _update_seq(self, seq: int) -> bool:
        # RFC 3550 appendix A.1, init_seq() for the first packet and update_seq().
        if not self._seen:
            self._seen = True
            self._init_seq(seq)
            if self.probation:
                self.max_seq = (seq - 1) & 0xFFFF
            else:
                self.received = 1
                return True
        udelta = (seq - self.max_seq) & 0xFFFF
        if self.probation:
            # Packets must be in sequence to leave probation.
            if seq == (self.max_seq + 1) & 0xFFFF:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    return True
            else:
                self.probation = MIN_SEQUENTIAL - 1
                self.max_seq = seq
            return False
        if udelta < MAX_DROPOUT:
            # In order, with a permissible gap.
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD  # wrapped
            self.max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            # A very large jump: restart if the next packet confirms it.
            if seq == self.bad_seq:
                self._init_seq(seq)
            else:
                self.bad_seq = (seq + 1) & 0xFFFF
                return False
        # else: duplicate or reordered packet, counted but max_seq stays.
        self.received += 1
        return True

    @property
    def extended_highest_sequence(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        """Packets expected since the base (RFC 3550 appendix A.3)."""
        if not self.validated:
            return 0
        return self.extended_highest_sequence - self.base_seq + 1

    @property
    def packets_lost(self) -> int:
        """Cumulative lost, negative with duplicates, clamped to 24 bits signed."""
        lost = self.expected - self.received
        return max(PACKETS_LOST_MIN, min(PACKETS_LOST_MAX, lost))

    @property
    def jitter(self) -> int:
        """Interarrival jitter in RTP timestamp units (RFC 3550 A.8)."""
        return int(self._jitter)

    @property
    def jitter_seconds(self) -> float:
        return self._jitter / self.clock_rate

    def report(self) -> LossReport:
        """The loss fields for the next report block; starts a new interval."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        self.expected_prior = expected
        received_interval = self.received - self.received_prior
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            fraction = 0
        else:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        return LossReport(
            fraction_lost=fraction,
            packets_lost=self.packets_lost,
            highest_sequence=self.extended_highest_sequence & 0xFFFFFFFF,
            jitter=self.jitter & 0xFFFFFFFF,
        )
