"""The receive side's per-SSRC state: loss detection for NACKs (RFC 4585 section 6.2.1) and TWCC arrivals.

Each media SSRC whose codec has ``a=rtcp-fb nack`` gets a
:class:`~netcore.jitter.nack.NackGenerator` (the same schedule the jitter
buffer runs: first NACK after a reorder delay, then once per round trip, at
most ten times); packets recovered through RTX fill their gap. Every
packet carrying a transport-wide sequence number is recorded in one
:class:`~netcore.rtp.twcc.TwccRecorder` for the feedback the transport sends.
"""

from __future__ import annotations

from netcore.jitter.nack import NackConfig, NackGenerator
from netcore.peer.config import MediaConfig
from netcore.rtp.packet import RtpPacket
from netcore.rtp.sequence import SequenceUnwrapper
from netcore.rtp.twcc import TwccRecorder

__all__ = ["IncomingStream", "Receiver"]


class IncomingStream:
    """One remote media SSRC."""

    __slots__ = ("media", "ssrc", "unwrap", "nack", "packets", "retransmitted")

    def __init__(self, media: MediaConfig, ssrc: int, nack: bool, rtt: float) -> None:
        self.media = media
        self.ssrc = ssrc
        self.unwrap = SequenceUnwrapper()
        self.nack = NackGenerator(NackConfig(), rtt) if nack else None
        self.packets = 0
        self.retransmitted = 0


class Receiver:
    """Loss tracking of every remote media SSRC and the transport-wide arrivals."""

    def __init__(self, rtcp_ssrc: int, rtt: float = 0.1) -> None:
        self.streams: dict[int, IncomingStream] = {}
        self.twcc = TwccRecorder(rtcp_ssrc)
        self._rtt = rtt

    @property
    def rtt(self) -> float:
        return self._rtt

    @rtt.setter
    def rtt(self, value: float) -> None:
        self._rtt = value
        for stream in self.streams.values():
            if stream.nack is not None:
                stream.nack.rtt = value

    def packet(self, media: MediaConfig, packet: RtpPacket, now: float, retransmitted: bool) -> None:
        """Account a media packet (original or unwrapped from RTX) of ``media``."""
        stream = self.streams.get(packet.ssrc)
        if stream is None:
            codec = media.codec(packet.payload_type)
            nack = codec is not None and codec.nack and media.kind == "video"
            stream = self.streams[packet.ssrc] = IncomingStream(media, packet.ssrc, nack, self._rtt)
        stream.packets += 1
        stream.retransmitted += retransmitted
        if stream.nack is not None:
            stream.nack.handle_packet(stream.unwrap.unwrap(packet.sequence_number), now, retransmitted)

    def forget_through(self, ssrc: int, sequence_number: int) -> None:
        """Media SSRC ``ssrc`` was played or skipped up to ``sequence_number`` (16 bits): stop
        NACKing anything up to it, as nothing there can still be used (a NACK for it would only
        fetch a retransmission that congests the link the loss came from)."""
        stream = self.streams.get(ssrc)
        if stream is not None and stream.nack is not None:
            stream.nack.forget_through(stream.unwrap.peek(sequence_number))

    def poll_nacks(self, now: float) -> list[tuple[int, list[int]]]:
        """``(media ssrc, 16-bit sequence numbers)`` to NACK now."""
        out = []
        for stream in self.streams.values():
            nack = stream.nack
            if nack is None:
                continue
            due = nack.next_deadline()
            if due is None or due > now:
                continue
            lost, _ = nack.poll(now)
            if lost:
                out.append((stream.ssrc, [s & 0xFFFF for s in lost]))
        return out

    def next_deadline(self) -> float | None:
        best = None
        for stream in self.streams.values():
            nack = stream.nack
            if nack is not None and (d := nack.next_deadline()) is not None and (best is None or d < best):
                best = d
        return best

    @property
    def nacks_sent(self) -> int:
        return sum(s.nack.nacks_sent for s in self.streams.values() if s.nack is not None)

    @property
    def recovered(self) -> int:
        return sum(s.nack.recovered for s in self.streams.values() if s.nack is not None)
