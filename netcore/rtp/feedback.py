"""RTCP feedback messages (RFC 4585 section 6, RFC 5104, REMB, transport-wide CC).

Every feedback packet starts with the sender SSRC and media source SSRC
(RFC 4585 section 6.1) and carries feedback control information (FCI) that
depends on the packet type (RTPFB 205, PSFB 206) and its FMT:

* RTPFB FMT 1, generic NACK: ``PID(16) BLP(16)`` pairs (RFC 4585 section 6.2.1);
* RTPFB FMT 15, transport-wide CC feedback
  (draft-holmer-rmcat-transport-wide-cc-extensions-01 section 3.1);
* PSFB FMT 1, picture loss indication: no FCI (RFC 4585 section 6.3.1);
* PSFB FMT 4, full intra request: ``SSRC, seq nr, reserved`` entries
  (RFC 5104 section 4.3.1);
* PSFB FMT 15 with "REMB": receiver estimated maximum bitrate
  (draft-alvestrand-rmcat-remb-03 section 2.2).

Anything else is kept as :class:`Feedback` with its raw FCI.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from netcore.errors import UsageError
from netcore.rtp.errors import RtcpParseError
from netcore.rtp.rtcp_header import PSFB, RTPFB, pack_rtcp

__all__ = [
    "Feedback",
    "Nack",
    "TransportFeedback",
    "Pli",
    "Fir",
    "Remb",
    "parse_rtpfb",
    "parse_psfb",
    "NOT_RECEIVED",
    "SMALL_DELTA",
    "LARGE_DELTA",
    "TWCC_FMT",
]

_SSRCS = struct.Struct("!II")
_PID_BLP = struct.Struct("!HH")
_U32 = struct.Struct("!I")
_TWCC_HEADER = struct.Struct("!HHI")  # base seq, status count, ref time(24)+fb count(8)
_U16 = struct.Struct("!H")
_I16 = struct.Struct("!h")
_FIR_ENTRY = struct.Struct("!IB3x")

NACK_FMT = 1
TWCC_FMT = 15
PLI_FMT = 1
FIR_FMT = 4
AFB_FMT = 15  # application layer feedback: REMB


@dataclass(slots=True)
class Feedback:
    """A feedback message of a type or FMT not decoded here; FCI kept raw."""

    packet_type: int
    fmt: int
    sender_ssrc: int
    media_ssrc: int
    fci: bytes = b""

    def serialize(self) -> bytes:
        return pack_rtcp(
            self.packet_type, self.fmt, _SSRCS.pack(self.sender_ssrc, self.media_ssrc) + self.fci
        )


@dataclass(slots=True)
class Nack:
    """Generic NACK: the lost sequence numbers, in serial-number order."""

    sender_ssrc: int
    media_ssrc: int
    lost: list[int] = field(default_factory=list)

    def serialize(self) -> bytes:
        # RFC 4585 section 6.2.1: PID and a bitmask of the 16 following.
        parts = [_SSRCS.pack(self.sender_ssrc, self.media_ssrc)]
        pid: int | None = None
        blp = 0
        for seq in self.lost:
            seq &= 0xFFFF
            if pid is not None:
                d = (seq - pid - 1) & 0xFFFF
                if d < 16:
                    blp |= 1 << d
                    continue
                parts.append(_PID_BLP.pack(pid, blp))
            pid, blp = seq, 0
        if pid is not None:
            parts.append(_PID_BLP.pack(pid, blp))
        return pack_rtcp(RTPFB, NACK_FMT, b"".join(parts))

    @classmethod
    def parse_fci(cls, sender_ssrc: int, media_ssrc: int, fci: bytes) -> Nack:
        if len(fci) % 4:
            raise RtcpParseError("generic NACK FCI is not a multiple of 4 bytes")
        lost = []
        for pid, blp in _PID_BLP.iter_unpack(fci):
            lost.append(pid)
            for d in range(16):
                if blp >> d & 1:
                    lost.append((pid + d + 1) & 0xFFFF)
        return cls(sender_ssrc, media_ssrc, lost)


# draft-holmer-rmcat-transport-wide-cc-extensions-01 section 3.1.1
NOT_RECEIVED = 0
SMALL_DELTA = 1  # received, delta 0..255 ticks in one byte
LARGE_DELTA = 2  # received, delta -32768..32767 ticks in two bytes
_MAX_RUN = 0x1FFF


@dataclass(slots=True)
class TransportFeedback:
    """Transport-wide congestion control feedback.

    ``statuses`` has one symbol per packet from ``base_sequence`` on;
    ``deltas`` one receive delta (in 250 microsecond ticks) per received
    packet, relative to the previous received packet (the first relative to
    ``reference_time`` * 64 ms).  ``reference_time`` is the raw 24-bit field.
    """

    sender_ssrc: int
    media_ssrc: int
    base_sequence: int
    reference_time: int
    fb_pkt_count: int
    statuses: list[int] = field(default_factory=list)
    deltas: list[int] = field(default_factory=list)

    @classmethod
    def from_arrivals(
        cls,
        sender_ssrc: int,
        media_ssrc: int,
        base_sequence: int,
        reference_time: int,
        fb_pkt_count: int,
        deltas: list[int | None],
    ) -> TransportFeedback:
        """Build from one delta (ticks) or None (lost) per packet in order."""
        statuses = []
        received = []
        for d in deltas:
            if d is None:
                statuses.append(NOT_RECEIVED)
            else:
                statuses.append(SMALL_DELTA if 0 <= d <= 255 else LARGE_DELTA)
                received.append(d)
        return cls(
            sender_ssrc, media_ssrc, base_sequence, reference_time, fb_pkt_count,
            statuses, received,
        )

    def arrivals(self) -> list[tuple[int, int | None]]:
        """``(sequence number, arrival delta in ticks or None)`` per packet."""
        out: list[tuple[int, int | None]] = []
        it = iter(self.deltas)
        for i, s in enumerate(self.statuses):
            out.append(((self.base_sequence + i) & 0xFFFF, None if s == 0 else next(it)))
        return out

    def serialize(self) -> bytes:
        statuses = self.statuses
        n = len(statuses)
        if n > 0xFFFF:
            raise UsageError("at most 65535 packet statuses fit")
        if sum(1 for s in statuses if s) != len(self.deltas):
            raise UsageError("one delta per received packet is needed")
        parts = [
            _SSRCS.pack(self.sender_ssrc, self.media_ssrc),
            _TWCC_HEADER.pack(
                self.base_sequence & 0xFFFF,
                n,
                (self.reference_time & 0xFFFFFF) << 8 | (self.fb_pkt_count & 0xFF),
            ),
        ]
        parts.extend(_U16.pack(c) for c in _encode_chunks(statuses))
        for s, d in zip((s for s in statuses if s), self.deltas):
            if s == SMALL_DELTA:
                if not 0 <= d <= 255:
                    raise UsageError(f"small delta {d} is outside 0-255")
                parts.append(bytes((d,)))
            elif s == LARGE_DELTA:
                if not -0x8000 <= d <= 0x7FFF:
                    raise UsageError(f"large delta {d} does not fit 16 bits")
                parts.append(_I16.pack(d))
            else:
                raise UsageError(f"packet status {s} is not 0, 1 or 2")
        return pack_rtcp(RTPFB, TWCC_FMT, b"".join(parts), pad_to_words=True)

    @classmethod
    def parse_fci(cls, sender_ssrc: int, media_ssrc: int, fci: bytes) -> TransportFeedback:
        if len(fci) < 8:
            raise RtcpParseError("transport-wide feedback is shorter than its header")
        base, count, ref_fb = _TWCC_HEADER.unpack_from(fci)
        statuses: list[int] = []
        # (symbol, how many) in order: the deltas are read run by run, so a
        # small packet announcing 65535 statuses costs a few C-level calls,
        # not a Python loop over every status.
        runs: list[list[int]] = []
        pos = 8
        n = len(fci)
        while len(statuses) < count:
            if pos + 2 > n:
                raise RtcpParseError("transport-wide feedback chunks are truncated")
            chunk = (fci[pos] << 8) | fci[pos + 1]
            pos += 2
            left = count - len(statuses)
            if not chunk & 0x8000:  # run length chunk
                symbol = (chunk >> 13) & 3
                if symbol == 3:
                    raise RtcpParseError("reserved packet status symbol 3")
                symbols = [symbol] * min(chunk & _MAX_RUN, left)
            elif not chunk & 0x4000:  # status vector, 14 one-bit symbols
                symbols = [(chunk >> (13 - i)) & 1 for i in range(min(14, left))]
            else:  # status vector, 7 two-bit symbols
                symbols = [(chunk >> (12 - 2 * i)) & 3 for i in range(min(7, left))]
                if 3 in symbols:
                    raise RtcpParseError("reserved packet status symbol 3")
            statuses.extend(symbols)
            if len(symbols) > 14:
                runs.append([symbols[0], len(symbols)])
                continue
            for symbol in symbols:
                if runs and runs[-1][0] == symbol:
                    runs[-1][1] += 1
                else:
                    runs.append([symbol, 1])
        deltas: list[int] = []
        for symbol, k in runs:
            if symbol == SMALL_DELTA:
                if pos + k > n:
                    raise RtcpParseError("transport-wide feedback deltas are truncated")
                deltas.extend(fci[pos : pos + k])
                pos += k
            elif symbol == LARGE_DELTA:
                if pos + 2 * k > n:
                    raise RtcpParseError("transport-wide feedback deltas are truncated")
                deltas.extend(struct.unpack_from(f"!{k}h", fci, pos))
                pos += 2 * k
        return cls(sender_ssrc, media_ssrc, base, ref_fb >> 8, ref_fb & 0xFF, statuses, deltas)


_ONE_BIT_CAPACITY = 14
_TWO_BIT_CAPACITY = 7


def _encode_chunks(statuses: list[int]) -> list[int]:
    """Packet status chunks for ``statuses``, chosen as libwebrtc chooses.

    Symbols gather into a pending chunk while it can still hold them; see
    :class:`_PendingChunk`.  The result is never larger than Chrome's
    feedback for the same arrivals (it is the same).
    """
    chunks: list[int] = []
    pending = _PendingChunk()
    for symbol in statuses:
        if not pending.can_add(symbol):
            chunks.append(pending.emit())
        pending.add(symbol)
    if pending.size:
        chunks.append(pending.encode_last())
    return chunks


class _PendingChunk:
    """The symbols not yet written (libwebrtc's ``LastChunk``).

    It holds any 7 symbols, up to 14 without a large delta, or any number
    (up to 8191) of equal ones.  When the next symbol does not fit, it writes
    a run length chunk if its symbols are all equal, else a one-bit vector if
    it holds 14, else a two-bit vector of its first 7 (the rest stay).  At
    the end: a run if all equal (even a run of one), else a two-bit vector
    up to 7 symbols, else a one-bit vector.
    """

    __slots__ = ("symbols", "size", "all_same", "has_large")

    def __init__(self) -> None:
        self.symbols: list[int] = []  # the first 14 at most; a longer one is a run
        self.size = 0
        self.all_same = True
        self.has_large = False

    def can_add(self, symbol: int) -> bool:
        if self.size < _TWO_BIT_CAPACITY:
            return True
        if self.size < _ONE_BIT_CAPACITY and not self.has_large and symbol != LARGE_DELTA:
            return True
        return self.size < _MAX_RUN and self.all_same and self.symbols[0] == symbol

    def add(self, symbol: int) -> None:
        if self.size < _ONE_BIT_CAPACITY:
            self.symbols.append(symbol)
        self.size += 1
        self.all_same = self.all_same and symbol == self.symbols[0]
        self.has_large = self.has_large or symbol == LARGE_DELTA

    def emit(self) -> int:
        if self.all_same:
            chunk = self.symbols[0] << 13 | self.size
            self._restart([])
        elif self.size == _ONE_BIT_CAPACITY:
            chunk = _one_bit(self.symbols)
            self._restart([])
        else:
            chunk = _two_bit(self.symbols[:_TWO_BIT_CAPACITY])
            self._restart(self.symbols[_TWO_BIT_CAPACITY:])
        return chunk

    def encode_last(self) -> int:
        if self.all_same:
            return self.symbols[0] << 13 | self.size
        if self.size <= _TWO_BIT_CAPACITY:
            return _two_bit(self.symbols)
        return _one_bit(self.symbols)

    def _restart(self, symbols: list[int]) -> None:
        self.symbols = []
        self.size = 0
        self.all_same = True
        self.has_large = False
        for symbol in symbols:
            self.add(symbol)


def _one_bit(symbols: list[int]) -> int:
    bits = 0x8000
    for k, sym in enumerate(symbols):
        bits |= sym << (13 - k)
    return bits


def _two_bit(symbols: list[int]) -> int:
    bits = 0xC000
    for k, sym in enumerate(symbols):
        bits |= sym << (12 - 2 * k)
    return bits


@dataclass(slots=True)
class Pli:
    """Picture loss indication (RFC 4585 section 6.3.1)."""

    sender_ssrc: int
    media_ssrc: int

    def serialize(self) -> bytes:
        return pack_rtcp(PSFB, PLI_FMT, _SSRCS.pack(self.sender_ssrc, self.media_ssrc))


@dataclass(slots=True)
class Fir:
    """Full intra request (RFC 5104 section 4.3.1): ``(ssrc, seq_nr)`` entries."""

    sender_ssrc: int
    media_ssrc: int = 0  # RFC 5104 section 4.3.1.2: SHALL be 0
    entries: list[tuple[int, int]] = field(default_factory=list)

    def serialize(self) -> bytes:
        fci = b"".join(_FIR_ENTRY.pack(ssrc, seq & 0xFF) for ssrc, seq in self.entries)
        return pack_rtcp(PSFB, FIR_FMT, _SSRCS.pack(self.sender_ssrc, self.media_ssrc) + fci)

    @classmethod
    def parse_fci(cls, sender_ssrc: int, media_ssrc: int, fci: bytes) -> Fir:
        if len(fci) % 8:
            raise RtcpParseError("FIR FCI is not a multiple of 8 bytes")
        return cls(sender_ssrc, media_ssrc, list(_FIR_ENTRY.iter_unpack(fci)))


@dataclass(slots=True)
class Remb:
    """Receiver estimated maximum bitrate (draft-alvestrand-rmcat-remb-03)."""

    sender_ssrc: int
    bitrate: int  # bits per second; encoded as an 18-bit mantissa and exponent
    ssrcs: list[int] = field(default_factory=list)
    media_ssrc: int = 0

    def serialize(self) -> bytes:
        if len(self.ssrcs) > 255:
            raise UsageError("at most 255 SSRCs in a REMB")
        exponent = 0
        mantissa = self.bitrate
        while mantissa > 0x3FFFF:
            mantissa >>= 1
            exponent += 1
        if exponent > 63:
            raise UsageError("bitrate does not fit a REMB")
        fci = b"REMB" + bytes(
            (len(self.ssrcs), exponent << 2 | mantissa >> 16, (mantissa >> 8) & 0xFF, mantissa & 0xFF)
        )
        fci += b"".join(_U32.pack(s) for s in self.ssrcs)
        return pack_rtcp(PSFB, AFB_FMT, _SSRCS.pack(self.sender_ssrc, self.media_ssrc) + fci)

    @classmethod
    def parse_fci(cls, sender_ssrc: int, media_ssrc: int, fci: bytes) -> Remb:
        if len(fci) < 8:
            raise RtcpParseError("REMB is shorter than its header")
        num = fci[4]
        if len(fci) < 8 + 4 * num:
            raise RtcpParseError("REMB SSRC list is truncated")
        exponent = fci[5] >> 2
        mantissa = (fci[5] & 3) << 16 | fci[6] << 8 | fci[7]
        ssrcs = list(struct.unpack_from(f"!{num}I", fci, 8))
        return cls(sender_ssrc, mantissa << exponent, ssrcs, media_ssrc)


AnyFeedback = Feedback | Nack | TransportFeedback | Pli | Fir | Remb


def _ssrcs(payload: bytes) -> tuple[int, int]:
    if len(payload) < 8:
        raise RtcpParseError("feedback message is shorter than its two SSRCs")
    return _SSRCS.unpack_from(payload)


def parse_rtpfb(fmt: int, payload: bytes) -> AnyFeedback:
    """Decode a transport-layer feedback payload (after the common header)."""
    sender, media = _ssrcs(payload)
    fci = payload[8:]
    if fmt == NACK_FMT:
        return Nack.parse_fci(sender, media, fci)
    if fmt == TWCC_FMT:
        return TransportFeedback.parse_fci(sender, media, fci)
    return Feedback(RTPFB, fmt, sender, media, fci)


def parse_psfb(fmt: int, payload: bytes) -> AnyFeedback:
    """Decode a payload-specific feedback payload (after the common header)."""
    sender, media = _ssrcs(payload)
    fci = payload[8:]
    if fmt == PLI_FMT and not fci:
        return Pli(sender, media)
    if fmt == FIR_FMT:
        return Fir.parse_fci(sender, media, fci)
    if fmt == AFB_FMT and fci[:4] == b"REMB":
        return Remb.parse_fci(sender, media, fci)
    return Feedback(PSFB, fmt, sender, media, fci)
