"""H.264 RTP payload format (RFC 6184), packetization mode 1.

Three payload structures (RFC 6184 section 5.2), told apart by the NAL unit
type in the first byte:

* 1-23, single NAL unit packet: the NAL unit as is;
* 24, STAP-A: ``[size(16) NAL]...`` several small NAL units of one frame;
* 28, FU-A: FU indicator, FU header ``S E R type(5)``, then a fragment of a
  NAL unit too large for one packet.

The depacketizer outputs Annex B (4-byte start codes), which decoders and
PyAV take directly.  A key frame is an IDR picture (type 5); a decoder
joining mid-stream also needs the SPS (7) and PPS (8), so
:func:`h264_frame_is_keyframe` asks for all three.
"""

from __future__ import annotations

import struct
from typing import Iterable

from netcore.errors import UsageError
from netcore.rtp.errors import RtpParseError
from netcore.rtp.fragment import split_balanced

__all__ = [
    "NAL_IDR",
    "NAL_SPS",
    "NAL_PPS",
    "STAP_A",
    "FU_A",
    "split_annexb",
    "H264Packetizer",
    "h264_depacketize",
    "h264_nal_types",
    "h264_is_keyframe",
    "h264_frame_is_keyframe",
]

NAL_SLICE = 1
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9
STAP_A = 24
FU_A = 28
START_CODE = b"\x00\x00\x00\x01"
_U16 = struct.Struct("!H")


def split_annexb(stream: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream (3- or 4-byte start codes)."""
    nals = []
    i = stream.find(b"\x00\x00\x01")
    while i != -1:
        start = i + 3
        j = stream.find(b"\x00\x00\x01", start)
        if j == -1:
            nal = stream[start:]
        else:
            # A 4-byte start code (or trailing_zero_8bits) ends with 00 00 01.
            end = j
            while end > start and stream[end - 1] == 0:
                end -= 1
            nal = stream[start:end]
        if nal:
            nals.append(nal)
        i = j
    return nals


class H264Packetizer:
    """Turns the NAL units of one access unit into RTP payloads.

    Consecutive NAL units that fit together go into one STAP-A; a NAL unit
    larger than ``max_payload_size`` is split into balanced FU-A fragments.
    """

    def __init__(self, max_payload_size: int = 1200) -> None:
        if max_payload_size < 16:
            raise UsageError("max_payload_size is too small for H.264")
        self.max_payload_size = max_payload_size

    def packetize(self, nals: Iterable[bytes]) -> list[bytes]:
        """Payloads for one access unit; the caller sets the marker on the last."""
        out: list[bytes] = []
        pending: list[bytes] = []  # NAL units waiting to be aggregated
        size = 1  # STAP-A header byte
        limit = self.max_payload_size
        for nal in nals:
            if not nal:
                continue
            if len(nal) > limit:
                self._flush(pending, out)
                pending, size = [], 1
                out.extend(self._fragment(nal))
                continue
            if size + 2 + len(nal) > limit:
                self._flush(pending, out)
                pending, size = [], 1
            pending.append(nal)
            size += 2 + len(nal)
        self._flush(pending, out)
        return out

    @staticmethod
    def _flush(pending: list[bytes], out: list[bytes]) -> None:
        if len(pending) == 1:
            out.append(pending[0])  # single NAL unit packet
        elif pending:
            # RFC 6184 section 5.7.1: F is the OR, NRI the maximum of the units.
            f = 0
            nri = 0
            for nal in pending:
                f |= nal[0] & 0x80
                nri = max(nri, nal[0] & 0x60)
            parts = [bytes((f | nri | STAP_A,))]
            for nal in pending:
                parts.append(_U16.pack(len(nal)))
                parts.append(nal)
            out.append(b"".join(parts))

    def _fragment(self, nal: bytes) -> list[bytes]:
        # RFC 6184 section 5.8: the NAL header is not sent, its F/NRI go in
        # the FU indicator and its type in the FU header.
        indicator = (nal[0] & 0xE0) | FU_A
        nal_type = nal[0] & 0x1F
        pieces = split_balanced(nal[1:], self.max_payload_size - 2)
        out = []
        last = len(pieces) - 1
        for i, piece in enumerate(pieces):
            header = nal_type | (0x80 if i == 0 else 0) | (0x40 if i == last else 0)
            out.append(bytes((indicator, header)) + piece)
        return out


def h264_depacketize(payloads: Iterable[bytes]) -> bytes:
    """Annex B bytes of the NAL units in ``payloads`` (one access unit, in order).

    Raises :class:`RtpParseError` on truncated aggregates, fragments out of
    order, or NAL types mode 1 does not allow (STAP-B, MTAP, FU-B).
    """
    out: list[bytes] = []
    fragment: list[bytes] | None = None  # FU-A in progress
    for payload in payloads:
        if not payload:
            raise RtpParseError("H.264 payload is empty")
        nal_type = payload[0] & 0x1F
        if fragment is not None and nal_type != FU_A:
            raise RtpParseError("H.264 FU-A fragment is not finished")
        if 1 <= nal_type <= 23:
            out.append(START_CODE)
            out.append(payload)
        elif nal_type == STAP_A:
            pos = 1
            n = len(payload)
            if n < 3:
                raise RtpParseError("H.264 STAP-A holds no NAL unit")
            while pos < n:
                if pos + 2 > n:
                    raise RtpParseError("H.264 STAP-A size is truncated")
                size = (payload[pos] << 8) | payload[pos + 1]
                pos += 2
                if size == 0 or pos + size > n:
                    raise RtpParseError("H.264 STAP-A NAL unit is truncated")
                out.append(START_CODE)
                out.append(payload[pos : pos + size])
                pos += size
        elif nal_type == FU_A:
            if len(payload) < 3:
                raise RtpParseError("H.264 FU-A is truncated")
            header = payload[1]
            if header & 0x80:
                if fragment is not None:
                    raise RtpParseError("H.264 FU-A starts twice")
                fragment = [bytes(((payload[0] & 0xE0) | (header & 0x1F),))]
            elif fragment is None:
                raise RtpParseError("H.264 FU-A continues without a start")
            fragment.append(payload[2:])
            if header & 0x40:
                out.append(START_CODE)
                out.append(b"".join(fragment))
                fragment = None
        else:
            raise RtpParseError(f"H.264 NAL unit type {nal_type} is not supported")
    if fragment is not None:
        raise RtpParseError("H.264 FU-A fragment is not finished")
    return b"".join(out)


def h264_nal_types(payload: bytes) -> list[int]:
    """NAL unit types that start in this payload; never raises."""
    if not payload:
        return []
    t = payload[0] & 0x1F
    if t == STAP_A:
        types = []
        pos = 1
        while pos + 2 < len(payload):
            types.append(payload[pos + 2] & 0x1F)
            pos += 2 + ((payload[pos] << 8) | payload[pos + 1])
        return types
    if t == FU_A:
        if len(payload) >= 2 and payload[1] & 0x80:
            return [payload[1] & 0x1F]
        return []
    return [t]


def h264_is_keyframe(payload: bytes) -> bool:
    """The packet carries the start of an IDR slice or an SPS (for forwarding:
    a receiver can start decoding at this frame)."""
    types = h264_nal_types(payload)
    return NAL_IDR in types or NAL_SPS in types


def h264_frame_is_keyframe(payloads: Iterable[bytes]) -> bool:
    """The access unit has an IDR slice and the SPS and PPS to decode it."""
    seen: set[int] = set()
    for payload in payloads:
        seen.update(h264_nal_types(payload))
    return {NAL_IDR, NAL_SPS, NAL_PPS} <= seen
