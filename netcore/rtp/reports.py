"""RTCP report generation (RFC 3550 section 6.4) as a sans-IO core.

:class:`RtcpReporter` is told about every RTP packet sent and received and
every RTCP packet received, each with ``now``; asked for a report it
returns an SR (when we sent media since the last report) or an RR, with one
block per validated remote source.  From the LSR/DLSR of blocks about our
SSRC it measures the round-trip time (RFC 3550 section 6.4.1), and from
each remote SR it keeps the NTP-to-RTP timestamp mapping of that source,
which recording and lip sync need.

Time: ``now`` is the caller's monotonic clock in seconds; ``wallclock_offset`` is
added to it to get seconds since the Unix epoch (the adapter computes it
once, e.g. ``time.time() - loop.time()``), so the core never reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from netcore.rtp.packet import RtpPacket
from netcore.rtp.rtcp import (
    SDES_CNAME,
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    Sdes,
    SdesChunk,
    SenderReport,
    serialize_rtcp,
)
from netcore.rtp.stats import ReceiverStatistics

__all__ = [
    "NTP_UNIX_OFFSET",
    "ntp_from_seconds",
    "ntp_to_seconds",
    "ntp_middle",
    "NtpRtpMapping",
    "RtcpReporter",
]

NTP_UNIX_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01
MAX_SOURCES = 64  # remote sources tracked; more are ignored (memory bound)
MAX_BLOCKS = 31  # RFC 3550 section 6.4: a 5-bit count


def ntp_from_seconds(unix_seconds: float) -> int:
    """64-bit NTP timestamp (RFC 5905 section 6) of a Unix time."""
    return int((unix_seconds + NTP_UNIX_OFFSET) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


def ntp_to_seconds(ntp: int) -> float:
    """Unix seconds of a 64-bit NTP timestamp."""
    return ntp / (1 << 32) - NTP_UNIX_OFFSET


def ntp_middle(ntp: int) -> int:
    """The middle 32 bits (the "compact" NTP format of LSR, RFC 3550 6.4.1)."""
    return (ntp >> 16) & 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class NtpRtpMapping:
    """One source's wallclock/RTP correspondence, from its latest SR."""

    ntp_timestamp: int
    rtp_timestamp: int
    clock_rate: int

    def to_seconds(self, rtp_timestamp: int) -> float:
        """Sender wallclock (Unix seconds) of an RTP timestamp near the SR."""
        d = (rtp_timestamp - self.rtp_timestamp) & 0xFFFFFFFF
        if d >= 0x80000000:
            d -= 0x100000000
        return ntp_to_seconds(self.ntp_timestamp) + d / self.clock_rate

    def to_rtp(self, unix_seconds: float) -> int:
        """RTP timestamp of a sender wallclock time."""
        elapsed = unix_seconds - ntp_to_seconds(self.ntp_timestamp)
        return (self.rtp_timestamp + round(elapsed * self.clock_rate)) & 0xFFFFFFFF


class _Source:
    __slots__ = ("stats", "lsr", "sr_arrival", "mapping")

    def __init__(self, clock_rate: int, probation: int) -> None:
        self.stats = ReceiverStatistics(clock_rate, probation)
        self.lsr = 0
        self.sr_arrival = 0.0
        self.mapping: NtpRtpMapping | None = None


class RtcpReporter:
    """Sender and receiver report state of one local SSRC."""

    def __init__(
        self,
        ssrc: int,
        clock_rate: int,
        wallclock_offset: float = 0.0,
        probation: int = 2,
    ) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.wallclock_offset = wallclock_offset
        self.probation = probation
        self.packet_count = 0
        self.octet_count = 0
        self._last_sent_ts: int | None = None
        self._last_sent_at = 0.0
        self._captured: tuple[int, float] | None = None  # (RTP timestamp, its sampling instant)
        self._sent_since_report = False
        self._sources: dict[int, _Source] = {}
        self.rtt: float | None = None  # seconds, from the latest usable block
        self.dropped_sources = 0

    # --- inputs --------------------------------------------------------------

    def handle_rtp_sent(self, packet: RtpPacket, now: float) -> None:
        """Count a packet we sent (RFC 3550 section 6.4.1 sender info)."""
        self.packet_count = (self.packet_count + 1) & 0xFFFFFFFF
        self.octet_count = (self.octet_count + packet.payload_end - packet.payload_offset) & 0xFFFFFFFF
        self._last_sent_ts = packet.timestamp
        self._last_sent_at = now
        self._sent_since_report = True

    def media_captured(self, rtp_timestamp: int, capture_time: float) -> None:
        """The sampling instant (``now``'s clock) of a frame's RTP timestamp: the SR's RTP timestamp
        is extrapolated from the latest one (RFC 3550 section 6.4.1: the same time as its NTP
        timestamp), not from when a packet was sent, which is later by the encoding (and by the
        encoder's lookahead for audio) and would put audio and video out of step by as much."""
        self._captured = (rtp_timestamp, capture_time)

    def handle_rtp_received(self, packet: RtpPacket, now: float, clock_rate: int | None = None) -> bool:
        """Account a received packet; False while its source is on probation."""
        source = self._source(packet.ssrc, clock_rate or self.clock_rate)
        if source is None:
            return False
        return source.stats.update(
            packet.sequence_number, packet.timestamp, now, packet.payload_end - packet.payload_offset
        )

    def handle_rtcp(self, packets: list[RtcpPacket], now: float) -> None:
        """Take LSR and the NTP/RTP mapping from SRs, RTT from blocks about us."""
        for p in packets:
            if isinstance(p, SenderReport):
                source = self._source(p.ssrc, self.clock_rate)
                if source is not None:
                    source.lsr = ntp_middle(p.ntp_timestamp)
                    source.sr_arrival = now
                    source.mapping = NtpRtpMapping(
                        p.ntp_timestamp, p.rtp_timestamp, source.stats.clock_rate
                    )
            if isinstance(p, (SenderReport, ReceiverReport)):
                for block in p.reports:
                    if block.ssrc == self.ssrc:
                        self._update_rtt(block, now)
            elif isinstance(p, Bye):
                for ssrc in p.ssrcs:  # RFC 3550 section 6.3.7
                    self.remove_source(ssrc)

    def _update_rtt(self, block: ReportBlock, now: float) -> None:
        # RFC 3550 section 6.4.1: RTT = A - LSR - DLSR, in 1/65536 s.
        if block.lsr == 0:
            return
        a = ntp_middle(ntp_from_seconds(now + self.wallclock_offset))
        rtt = (a - block.lsr - block.dlsr) & 0xFFFFFFFF
        if rtt < 0x80000000:  # a negative RTT means a bogus block: ignore it
            self.rtt = rtt / 65536.0

    def _source(self, ssrc: int, clock_rate: int) -> _Source | None:
        source = self._sources.get(ssrc)
        if source is None:
            if len(self._sources) >= MAX_SOURCES:
                self.dropped_sources += 1
                return None
            source = self._sources[ssrc] = _Source(clock_rate, self.probation)
        return source

    def remove_source(self, ssrc: int) -> None:
        """Forget a source (after its BYE or a timeout)."""
        self._sources.pop(ssrc, None)

    # --- outputs -------------------------------------------------------------

    def statistics(self, ssrc: int) -> ReceiverStatistics | None:
        source = self._sources.get(ssrc)
        return source.stats if source else None

    def mapping(self, ssrc: int) -> NtpRtpMapping | None:
        """The NTP-to-RTP mapping of a remote source from its latest SR."""
        source = self._sources.get(ssrc)
        return source.mapping if source else None

    def report_blocks(self, now: float) -> list[ReportBlock]:
        """One block per validated source (starting a new loss interval)."""
        blocks = []
        for ssrc, source in self._sources.items():
            if not source.stats.validated or len(blocks) == MAX_BLOCKS:
                continue
            loss = source.stats.report()
            dlsr = 0
            if source.lsr:
                dlsr = min(0xFFFFFFFF, int((now - source.sr_arrival) * 65536))
            blocks.append(
                ReportBlock(
                    ssrc,
                    loss.fraction_lost,
                    loss.packets_lost,
                    loss.highest_sequence,
                    loss.jitter,
                    source.lsr,
                    dlsr,
                )
            )
        return blocks

    def report(self, now: float) -> SenderReport | ReceiverReport:
        """SR if we sent RTP since the last report, else RR (RFC 3550 6.4)."""
        blocks = self.report_blocks(now)
        if not self._sent_since_report or self._last_sent_ts is None:
            return ReceiverReport(self.ssrc, blocks)
        self._sent_since_report = False
        # The RTP timestamp that corresponds to the NTP time of this report: from the capture
        # clock when the media source said when it sampled, else from the last packet sent.
        timestamp, at = self._captured or (self._last_sent_ts, self._last_sent_at)
        rtp = (timestamp + round((now - at) * self.clock_rate)) & 0xFFFFFFFF
        return SenderReport(
            self.ssrc,
            ntp_from_seconds(now + self.wallclock_offset),
            rtp,
            self.packet_count,
            self.octet_count,
            blocks,
        )

    def compound(self, now: float, cname: bytes) -> bytes:
        """A compound packet: the report, then SDES with our CNAME (RFC 3550
        section 6.1: every compound packet carries both)."""
        return serialize_rtcp([self.report(now), Sdes([SdesChunk(self.ssrc, [(SDES_CNAME, cname)])])])
