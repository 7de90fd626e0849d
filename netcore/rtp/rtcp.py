"""RTCP packets (RFC 3550 section 6) and compound parsing (RFC 5506).

SR, RR, SDES, BYE and APP are decoded here; the feedback messages of
RFC 4585/5104 live in :mod:`netcore.rtp.feedback`; packet types nobody
decodes come back as :class:`UnknownRtcp` with their raw payload.

:func:`parse_rtcp` walks a compound packet.  By default it accepts
reduced-size RTCP (RFC 5506: any single packet, no SR/RR first); with
``reduced_size=False`` it applies the RFC 3550 appendix A.2 validity checks
(the first packet is SR or RR, only the last one is padded).  A bad
sub-packet raises :class:`RtcpParseError` carrying the ones parsed before it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Iterable

from netcore.errors import UsageError
from netcore.rtp.errors import RtcpParseError
from netcore.rtp.feedback import (
    AnyFeedback,
    Feedback,
    Fir,
    Nack,
    Pli,
    Remb,
    TransportFeedback,
    TWCC_FMT,
    parse_psfb,
    parse_rtpfb,
)
from netcore.rtp.rtcp_header import APP, BYE, PSFB, RR, RTCP_HEADER, RTPFB, SDES, SR, pack_rtcp

__all__ = [
    "RtcpParseError",
    "ReportBlock",
    "SenderReport",
    "ReceiverReport",
    "SdesChunk",
    "Sdes",
    "Bye",
    "App",
    "UnknownRtcp",
    "RtcpPacket",
    "parse_rtcp",
    "serialize_rtcp",
    "Feedback",
    "Nack",
    "TransportFeedback",
    "Pli",
    "Fir",
    "Remb",
    "SDES_CNAME",
]

_BLOCK = struct.Struct("!IIIIII")
_SENDER_INFO = struct.Struct("!IQIII")  # SSRC + sender info
_U32 = struct.Struct("!I")
_APP_HEADER = struct.Struct("!I4s")

# RFC 3550 section 6.5: SDES item types
SDES_END = 0
SDES_CNAME = 1
SDES_NAME = 2
SDES_EMAIL = 3
SDES_PHONE = 4
SDES_LOC = 5
SDES_TOOL = 6
SDES_NOTE = 7
SDES_PRIV = 8


@dataclass(slots=True)
class ReportBlock:
    """One reception report block (RFC 3550 section 6.4.1)."""

    ssrc: int
    fraction_lost: int = 0
    packets_lost: int = 0  # cumulative, 24-bit signed
    highest_sequence: int = 0  # extended highest sequence number received
    jitter: int = 0
    lsr: int = 0  # middle 32 bits of the NTP timestamp of the last SR
    dlsr: int = 0  # delay since that SR, 1/65536 seconds

    def serialize(self) -> bytes:
        return _BLOCK.pack(
            self.ssrc,
            (self.fraction_lost & 0xFF) << 24 | (self.packets_lost & 0xFFFFFF),
            self.highest_sequence,
            self.jitter,
            self.lsr,
            self.dlsr,
        )

    @classmethod
    def parse(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, fl, high, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        lost = fl & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        return cls(ssrc, fl >> 24, lost, high, jitter, lsr, dlsr)


def _blocks(data: bytes, offset: int, count: int) -> list[ReportBlock]:
    if len(data) < offset + 24 * count:
        raise RtcpParseError("report blocks are truncated")
    return [ReportBlock.parse(data, offset + 24 * i) for i in range(count)]


def _check_blocks(reports: list[ReportBlock], extension: bytes) -> None:
    if len(reports) > 31:
        raise UsageError("at most 31 report blocks fit in one report")
    if len(extension) % 4:
        raise UsageError("profile-specific extension is not a multiple of 4 bytes")


@dataclass(slots=True)
class SenderReport:
    """SR (RFC 3550 section 6.4.1): sender info and reception reports."""

    ssrc: int
    ntp_timestamp: int  # 64-bit NTP format
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: list[ReportBlock] = field(default_factory=list)
    extension: bytes = b""  # profile-specific extension

    def serialize(self) -> bytes:
        _check_blocks(self.reports, self.extension)
        payload = _SENDER_INFO.pack(
            self.ssrc, self.ntp_timestamp, self.rtp_timestamp, self.packet_count, self.octet_count
        )
        payload += b"".join(r.serialize() for r in self.reports) + self.extension
        return pack_rtcp(SR, len(self.reports), payload)

    @classmethod
    def parse(cls, count: int, payload: bytes) -> SenderReport:
        if len(payload) < 24:
            raise RtcpParseError("SR is shorter than its sender info")
        ssrc, ntp, rtp, packets, octets = _SENDER_INFO.unpack_from(payload)
        reports = _blocks(payload, 24, count)
        return cls(ssrc, ntp, rtp, packets, octets, reports, payload[24 + 24 * count :])


@dataclass(slots=True)
class ReceiverReport:
    """RR (RFC 3550 section 6.4.2)."""

    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)
    extension: bytes = b""

    def serialize(self) -> bytes:
        _check_blocks(self.reports, self.extension)
        payload = _U32.pack(self.ssrc) + b"".join(r.serialize() for r in self.reports)
        return pack_rtcp(RR, len(self.reports), payload + self.extension)

    @classmethod
    def parse(cls, count: int, payload: bytes) -> ReceiverReport:
        if len(payload) < 4:
            raise RtcpParseError("RR is shorter than its SSRC")
        reports = _blocks(payload, 4, count)
        return cls(_U32.unpack_from(payload)[0], reports, payload[4 + 24 * count :])


@dataclass(slots=True)
class SdesChunk:
    """One SSRC and its items ``(type, value)`` (RFC 3550 section 6.5)."""

    ssrc: int
    items: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def cname(self) -> bytes | None:
        for t, v in self.items:
            if t == SDES_CNAME:
                return v
        return None


@dataclass(slots=True)
class Sdes:
    """SDES (RFC 3550 section 6.5)."""

    chunks: list[SdesChunk] = field(default_factory=list)

    def serialize(self) -> bytes:
        if len(self.chunks) > 31:
            raise UsageError("at most 31 SDES chunks fit in one packet")
        parts = []
        for chunk in self.chunks:
            body = [_U32.pack(chunk.ssrc)]
            for t, v in chunk.items:
                if not 1 <= t <= 255 or len(v) > 255:
                    raise UsageError(f"SDES item {t} of {len(v)} bytes is invalid")
                body.append(bytes((t, len(v))) + v)
            data = b"".join(body)
            # A null item ends the chunk, then zeros to the next word.
            parts.append(data + bytes(4 - len(data) % 4))
        return pack_rtcp(SDES, len(self.chunks), b"".join(parts))

    @classmethod
    def parse(cls, count: int, payload: bytes) -> Sdes:
        chunks = []
        pos = 0
        n = len(payload)
        for _ in range(count):
            if pos + 4 > n:
                raise RtcpParseError("SDES chunk is truncated")
            chunk = SdesChunk(_U32.unpack_from(payload, pos)[0])
            pos += 4
            while True:
                if pos >= n:
                    raise RtcpParseError("SDES chunk has no end item")
                t = payload[pos]
                if t == SDES_END:
                    pos = (pos + 4) & ~3  # skip the null octets to the next word
                    break
                if pos + 2 > n or pos + 2 + payload[pos + 1] > n:
                    raise RtcpParseError("SDES item is truncated")
                length = payload[pos + 1]
                chunk.items.append((t, payload[pos + 2 : pos + 2 + length]))
                pos += 2 + length
            chunks.append(chunk)
        return cls(chunks)


@dataclass(slots=True)
class Bye:
    """BYE (RFC 3550 section 6.6): the leaving sources and an optional reason."""

    ssrcs: list[int] = field(default_factory=list)
    reason: bytes | None = None

    def serialize(self) -> bytes:
        if len(self.ssrcs) > 31:
            raise UsageError("at most 31 SSRCs fit in one BYE")
        payload = b"".join(_U32.pack(s) for s in self.ssrcs)
        if self.reason is not None:
            if len(self.reason) > 255:
                raise UsageError("BYE reason is longer than 255 bytes")
            text = bytes((len(self.reason),)) + self.reason
            payload += text + bytes(-len(text) % 4)
        return pack_rtcp(BYE, len(self.ssrcs), payload)

    @classmethod
    def parse(cls, count: int, payload: bytes) -> Bye:
        end = 4 * count
        if len(payload) < end:
            raise RtcpParseError("BYE SSRC list is truncated")
        ssrcs = list(struct.unpack_from(f"!{count}I", payload))
        reason = None
        if len(payload) > end:
            length = payload[end]
            if end + 1 + length > len(payload):
                raise RtcpParseError("BYE reason is truncated")
            reason = payload[end + 1 : end + 1 + length]
        return cls(ssrcs, reason)


@dataclass(slots=True)
class App:
    """APP (RFC 3550 section 6.7): subtype, SSRC, 4-byte name, data."""

    subtype: int
    ssrc: int
    name: bytes
    data: bytes = b""

    def serialize(self) -> bytes:
        if len(self.name) != 4 or len(self.data) % 4:
            raise UsageError("APP name is 4 bytes and data a multiple of 4")
        return pack_rtcp(APP, self.subtype, _APP_HEADER.pack(self.ssrc, self.name) + self.data)

    @classmethod
    def parse(cls, count: int, payload: bytes) -> App:
        if len(payload) < 8:
            raise RtcpParseError("APP is shorter than its SSRC and name")
        ssrc, name = _APP_HEADER.unpack_from(payload)
        return cls(count, ssrc, name, payload[8:])


@dataclass(slots=True)
class UnknownRtcp:
    """A packet type not decoded here (XR, ...), kept raw."""

    packet_type: int
    count: int
    payload: bytes

    def serialize(self) -> bytes:
        # The layout is unknown, so a body that is not whole words (seen
        # only after padding was stripped) gets padding back.
        return pack_rtcp(self.packet_type, self.count, self.payload, pad_to_words=True)


RtcpPacket = SenderReport | ReceiverReport | Sdes | Bye | App | UnknownRtcp | AnyFeedback

def _allows_part_words(packet_type: int, count: int) -> bool:
    """Whether a padded body may end inside a 32-bit word.

    SR, RR, SDES, BYE, APP (RFC 3550 sections 6.4-6.7) and the feedback
    messages (RFC 4585 section 6.1) are whole words; transport-wide feedback
    pads its byte-sized deltas (draft-holmer-rmcat-transport-wide-cc-extensions-01
    section 3.1), and a type not decoded here is kept raw either way.
    """
    if packet_type == RTPFB:
        return count == TWCC_FMT
    return packet_type not in _PARSERS


_PARSERS = {
    SR: SenderReport.parse,
    RR: ReceiverReport.parse,
    SDES: Sdes.parse,
    BYE: Bye.parse,
    APP: App.parse,
    RTPFB: parse_rtpfb,
    PSFB: parse_psfb,
}


def parse_rtcp(data: bytes, reduced_size: bool = True) -> list[RtcpPacket]:
    """Parse a compound (or, with ``reduced_size``, single) RTCP packet.

    Raises :class:`RtcpParseError` only; its ``packets`` are the sub-packets
    before the bad one.
    """
    packets: list[RtcpPacket] = []
    pos = 0
    n = len(data)
    if n == 0:
        raise RtcpParseError("empty RTCP packet")
    try:
        while pos < n:
            if pos + 4 > n:
                raise RtcpParseError("RTCP header is truncated")
            b0, packet_type, words = RTCP_HEADER.unpack_from(data, pos)
            if b0 >> 6 != 2:
                raise RtcpParseError(f"RTCP version {b0 >> 6} is not 2")
            end = pos + 4 + 4 * words
            if end > n:
                raise RtcpParseError("RTCP length overruns the datagram")
            payload = data[pos + 4 : end]
            if b0 & 0x20:
                # RFC 3550 section 6.4.1: the last octet counts the padding.
                if not payload or not payload[-1] or payload[-1] > len(payload):
                    raise RtcpParseError("RTCP padding length is invalid")
                if not reduced_size and end != n:
                    raise RtcpParseError("only the last RTCP packet may be padded")
                payload = payload[: -payload[-1]]
                if len(payload) % 4 and not _allows_part_words(packet_type, b0 & 0x1F):
                    raise RtcpParseError("RTCP padding cuts into a 32-bit word")
            if not reduced_size and pos == 0 and packet_type not in (SR, RR):
                raise RtcpParseError("a compound RTCP packet starts with SR or RR")
            parser = _PARSERS.get(packet_type)
            count = b0 & 0x1F
            if parser is None:
                packets.append(UnknownRtcp(packet_type, count, payload))
            else:
                packets.append(parser(count, payload))
            pos = end
    except RtcpParseError as exc:
        raise RtcpParseError(str(exc), tuple(packets)) from None
    return packets


def serialize_rtcp(packets: Iterable[RtcpPacket]) -> bytes:
    """A compound packet: the packets' serializations back to back."""
    return b"".join(p.serialize() for p in packets)
