"""VP8 RTP payload format (RFC 7741): descriptor, packetizer, depacketizer.

Each payload starts with the VP8 payload descriptor (RFC 7741 section 4.2)::

     X R N S R PID(3)
    [I L T K RSV(4)]            when X
    [M PictureID(7 or 15)]      when I
    [TL0PICIDX(8)]              when L
    [TID(2) Y KEYIDX(5)]        when T or K

A frame starts in the packet with S=1 and PID=0; the marker bit ends it
(section 4.1).  The first payload byte of a frame is the VP8 payload header
whose low bit P is 0 for a key frame (section 4.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from netcore.errors import UsageError
from netcore.rtp.errors import RtpParseError
from netcore.rtp.fragment import split_balanced

__all__ = [
    "Vp8Descriptor",
    "Vp8Packetizer",
    "vp8_depacketize",
    "vp8_is_keyframe",
    "vp8_keyframe_size",
    "vp8_starts_frame",
    "vp8_temporal_id",
]


@dataclass(slots=True)
class Vp8Descriptor:
    """The VP8 payload descriptor; optional fields are None when absent."""

    start_of_partition: bool = False  # S
    partition_index: int = 0  # PID
    non_reference: bool = False  # N
    picture_id: int | None = None
    long_picture_id: bool = True  # M: 15-bit picture ID on the wire
    tl0picidx: int | None = None
    tid: int | None = None
    layer_sync: bool = False  # Y, meaningful with tid
    keyidx: int | None = None

    def serialize(self) -> bytes:
        b0 = (0x20 if self.non_reference else 0) | (0x10 if self.start_of_partition else 0)
        b0 |= self.partition_index & 0x07
        i, l, t, k = (
            self.picture_id is not None,
            self.tl0picidx is not None,
            self.tid is not None,
            self.keyidx is not None,
        )
        if not (i or l or t or k):
            return bytes((b0,))
        out = bytearray((b0 | 0x80, i << 7 | l << 6 | t << 5 | k << 4))
        if i:
            pid = self.picture_id
            assert pid is not None
            if self.long_picture_id:
                out += bytes((0x80 | (pid >> 8) & 0x7F, pid & 0xFF))
            else:
                out.append(pid & 0x7F)
        if l:
            out.append(self.tl0picidx & 0xFF)  # type: ignore[operator]
        if t or k:
            out.append(
                ((self.tid or 0) & 3) << 6
                | (0x20 if self.layer_sync else 0)
                | ((self.keyidx or 0) & 0x1F)
            )
        return bytes(out)

    @classmethod
    def parse(cls, payload: bytes) -> tuple[Vp8Descriptor, int]:
        """The descriptor and the offset of the VP8 data after it."""
        n = len(payload)
        if n < 1:
            raise RtpParseError("VP8 payload is empty")
        b0 = payload[0]
        d = cls(bool(b0 & 0x10), b0 & 0x07, bool(b0 & 0x20))
        pos = 1
        if b0 & 0x80:
            if n < 2:
                raise RtpParseError("VP8 descriptor extension byte is missing")
            x = payload[1]
            pos = 2
            if x & 0x80:
                if pos >= n:
                    raise RtpParseError("VP8 picture ID is truncated")
                if payload[pos] & 0x80:
                    if pos + 2 > n:
                        raise RtpParseError("VP8 long picture ID is truncated")
                    d.picture_id = (payload[pos] & 0x7F) << 8 | payload[pos + 1]
                    pos += 2
                else:
                    d.picture_id = payload[pos]
                    d.long_picture_id = False
                    pos += 1
            if x & 0x40:
                if pos >= n:
                    raise RtpParseError("VP8 TL0PICIDX is truncated")
                d.tl0picidx = payload[pos]
                pos += 1
            if x & 0x30:
                if pos >= n:
                    raise RtpParseError("VP8 TID/KEYIDX byte is truncated")
                tk = payload[pos]
                if x & 0x20:
                    d.tid = tk >> 6
                    d.layer_sync = bool(tk & 0x20)
                if x & 0x10:
                    d.keyidx = tk & 0x1F
                pos += 1
        return d, pos


def vp8_starts_frame(payload: bytes) -> bool:
    """S=1 and PID=0: the first packet of a frame (RFC 7741 section 4.1)."""
    return bool(payload) and payload[0] & 0x17 == 0x10


def vp8_temporal_id(payload: bytes) -> int | None:
    """The TID of a payload (RFC 7741 section 4.2), None when it has none or is cut short; read in place,
    without building a descriptor (a call server reads it for every packet it receives)."""
    if len(payload) < 2 or not payload[0] & 0x80:
        return None
    x = payload[1]
    if not x & 0x20:
        return None
    pos = 2
    if x & 0x80:
        pos += 2 if len(payload) > 2 and payload[2] & 0x80 else 1
    if x & 0x40:
        pos += 1
    return payload[pos] >> 6 if pos < len(payload) else None


def vp8_is_keyframe(payload: bytes) -> bool:
    """The packet starts a key frame (RFC 7741 section 4.3: P bit is 0).

    Never raises: malformed payloads are simply not key frames.
    """
    if not vp8_starts_frame(payload):
        return False
    try:
        _, pos = Vp8Descriptor.parse(payload)
    except RtpParseError:
        return False
    return pos < len(payload) and not payload[pos] & 0x01


def vp8_keyframe_size(payload: bytes) -> tuple[int, int] | None:
    """(width, height) from the first packet of a VP8 key frame (RFC 6386 section 9.1: 3-byte frame tag,
    start code 9d 01 2a, two 14-bit sizes with 2-bit scales), None if it is not one or is cut short."""
    if not vp8_is_keyframe(payload):
        return None
    _, pos = Vp8Descriptor.parse(payload)
    header = payload[pos:pos + 10]
    if len(header) < 10 or header[3:6] != b"\x9d\x01\x2a":
        return None
    return (header[6] | header[7] << 8) & 0x3FFF, (header[8] | header[9] << 8) & 0x3FFF


class Vp8Packetizer:
    """Splits VP8 frames into payloads, each with a 15-bit picture ID.

    Payload sizes are balanced (all within one byte of each other) rather
    than full packets and a small tail, as libwebrtc does.  A frame of a
    temporally scalable stream is given its TID (and Y, layer sync); every
    payload then carries TL0PICIDX as well, the running count of TL0
    frames, which a TL0 frame increments (RFC 7741 section 4.2).
    """

    def __init__(self, max_payload_size: int = 1200, picture_id: int = 0, tl0picidx: int = 0) -> None:
        if max_payload_size < 8:
            raise UsageError("max_payload_size is too small for a VP8 descriptor")
        self.max_payload_size = max_payload_size
        self.picture_id = picture_id & 0x7FFF
        self.tl0picidx = tl0picidx & 0xFF

    def packetize(self, frame: bytes, tid: int | None = None, layer_sync: bool = False) -> list[bytes]:
        """Payloads for one frame; the caller sets the marker on the last."""
        if not frame:
            raise UsageError("an empty VP8 frame cannot be sent")
        tl0 = None
        if tid is not None:
            if tid == 0:
                self.tl0picidx = (self.tl0picidx + 1) & 0xFF
            tl0 = self.tl0picidx
        fields = {"picture_id": self.picture_id, "tl0picidx": tl0, "tid": tid, "layer_sync": layer_sync}
        first = Vp8Descriptor(True, 0, **fields).serialize()
        rest = Vp8Descriptor(False, 0, **fields).serialize()
        self.picture_id = (self.picture_id + 1) & 0x7FFF
        pieces = split_balanced(frame, self.max_payload_size - len(first))
        payloads = [first + pieces[0]]
        payloads.extend(rest + piece for piece in pieces[1:])
        return payloads


def vp8_depacketize(payloads: Iterable[bytes]) -> bytes:
    """The VP8 frame carried by ``payloads`` (one frame, in order).

    Raises :class:`RtpParseError` when the first does not start a frame.
    """
    parts = []
    for i, payload in enumerate(payloads):
        d, pos = Vp8Descriptor.parse(payload)
        if i == 0 and not (d.start_of_partition and d.partition_index == 0):
            raise RtpParseError("VP8 frame does not start with S=1, PID=0")
        parts.append(payload[pos:])
    if not parts:
        raise RtpParseError("no VP8 payloads")
    return b"".join(parts)
