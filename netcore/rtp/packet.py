"""The RTP packet (RFC 3550 section 5.1): lazy parse, serialize, in-place rewrite.

The forwarding hot path (the call server) parses millions of packets, looks
at a few header fields and sends them on with another SSRC, sequence number
and timestamp.  So :class:`RtpPacket` keeps the raw bytes, unpacks the fixed
header once with a precompiled ``struct.Struct`` and records where the CSRC
list, header extension and payload sit; CSRCs, extensions and the payload
are only sliced when asked for.  :func:`rewrite_header` changes the header
of a copy without decoding anything else.

Parse then serialize is byte-exact: :meth:`RtpPacket.serialize` returns the
bytes that were parsed (padding and unknown extension profiles included).
"""

from __future__ import annotations

import struct
from typing import Iterable, Sequence

from netcore.errors import UsageError
from netcore.rtp.errors import RtpParseError
from netcore.rtp.extensions import decode_extensions, encode_extensions

__all__ = [
    "RtpParseError",
    "RtpPacket",
    "RTP_HEADER_SIZE",
    "rewrite_header",
]

RTP_HEADER_SIZE = 12

# RFC 3550 section 5.1: V=2 P X CC | M PT | sequence number | timestamp | SSRC
_HEADER = struct.Struct("!BBHII")
_M_PT_SEQ_TS_SSRC = struct.Struct("!BHII")
_EXT_HEADER = struct.Struct("!HH")
_U32 = struct.Struct("!I")


class RtpPacket:
    """One RTP packet, parsed lazily from its raw bytes.

    The fixed-header fields are plain attributes (read them, do not assign
    them: use :func:`rewrite_header` or :meth:`build` to change a packet).
    ``payload``, ``csrcs`` and ``extensions`` are sliced from ``data`` on
    access.  The packet keeps a reference to ``data``: parse ``bytes`` (or
    a copy), not a receive buffer that will be reused.
    """

    __slots__ = (
        "data",
        "marker",
        "payload_type",
        "sequence_number",
        "timestamp",
        "ssrc",
        "csrc_count",
        "_ext_offset",
        "payload_offset",
        "payload_end",
    )

    data: bytes
    marker: bool
    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    csrc_count: int
    _ext_offset: int  # offset of the 4-byte extension header, or 0
    payload_offset: int
    payload_end: int  # len(data) minus the padding

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Validate the header of ``data`` and return the packet view.

        Raises :class:`RtpParseError` (and nothing else) on malformed input.
        """
        n = len(data)
        if n < RTP_HEADER_SIZE:
            raise RtpParseError(f"RTP packet of {n} bytes is shorter than its header")
        b0, m_pt, seq, ts, ssrc = _HEADER.unpack_from(data)
        if b0 >> 6 != 2:  # RFC 3550 section 5.1: V=2
            raise RtpParseError(f"RTP version {b0 >> 6} is not 2")
        cc = b0 & 0x0F
        pos = RTP_HEADER_SIZE + 4 * cc
        ext = 0
        if b0 & 0x10:  # RFC 3550 section 5.3.1
            if n < pos + 4:
                raise RtpParseError("RTP header extension header is truncated")
            ext = pos
            pos += 4 + 4 * ((data[pos + 2] << 8) | data[pos + 3])
        end = n
        if b0 & 0x20:  # RFC 3550 section 5.1: the last octet counts the padding
            pad = data[-1]
            if pad == 0:
                raise RtpParseError("RTP padding length is zero")
            end = n - pad
        if end < pos:
            raise RtpParseError("RTP header, extension or padding overrun the packet")
        p = cls.__new__(cls)
        p.data = data
        p.marker = m_pt > 127
        p.payload_type = m_pt & 0x7F
        p.sequence_number = seq
        p.timestamp = ts
        p.ssrc = ssrc
        p.csrc_count = cc
        p._ext_offset = ext
        p.payload_offset = pos
        p.payload_end = end
        return p

    @classmethod
    def build(
        cls,
        *,
        payload_type: int,
        sequence_number: int,
        timestamp: int,
        ssrc: int,
        payload: bytes = b"",
        marker: bool = False,
        csrcs: Sequence[int] = (),
        extensions: Iterable[tuple[int, bytes]] = (),
        extension_profile: int | None = None,
        extension_data: bytes | None = None,
        padding: int = 0,
    ) -> RtpPacket:
        """Serialize a packet from its fields and return its view.

        ``extensions`` are ``(id, value)`` elements written in the one-byte
        form when every element allows it, else the two-byte form (RFC 8285
        section 4); ``extension_profile`` with ``extension_data`` writes an
        opaque extension instead.  ``padding`` bytes (0 or 1-255) are zeros
        ending with the count.
        """
        if not 0 <= payload_type <= 127:
            raise UsageError(f"payload type {payload_type} is outside 0-127")
        if len(csrcs) > 15:
            raise UsageError("at most 15 CSRCs fit in an RTP header")
        if not 0 <= padding <= 255:
            raise UsageError("padding is 0-255 bytes")
        elements = extensions if isinstance(extensions, list) else list(extensions)
        if elements:
            if extension_data is not None:
                raise UsageError("give either extensions or extension_data")
            extension_profile, extension_data = encode_extensions(elements)
        b0 = 0x80 | len(csrcs)
        if padding:
            b0 |= 0x20
        if extension_data is not None:
            if extension_profile is None or len(extension_data) % 4:
                raise UsageError("extension data needs a profile and a 4-byte multiple")
            b0 |= 0x10
        cc = len(csrcs)
        m_pt = (0x80 if marker else 0) | payload_type
        seq = sequence_number & 0xFFFF
        ts = timestamp & 0xFFFFFFFF
        try:
            parts = [_HEADER.pack(b0, m_pt, seq, ts, ssrc)]
            if cc:
                parts.append(struct.pack(f"!{cc}I", *csrcs))
        except struct.error:
            raise UsageError("SSRC and CSRCs are 32-bit unsigned integers") from None
        ext_offset = 0
        payload_offset = RTP_HEADER_SIZE + 4 * cc
        if extension_data is not None:
            ext_offset = payload_offset
            parts.append(_EXT_HEADER.pack(extension_profile, len(extension_data) // 4))
            parts.append(extension_data)
            payload_offset += 4 + len(extension_data)
        parts.append(payload)
        if padding:
            parts.append(bytes(padding - 1) + bytes((padding,)))
        # Fill the view directly: the same fields parse() would find.
        p = cls.__new__(cls)
        p.data = data = b"".join(parts)
        p.marker = bool(marker)
        p.payload_type = payload_type
        p.sequence_number = seq
        p.timestamp = ts
        p.ssrc = ssrc
        p.csrc_count = cc
        p._ext_offset = ext_offset
        p.payload_offset = payload_offset
        p.payload_end = len(data) - padding
        return p

    def serialize(self) -> bytes:
        """The packet's bytes: exactly what was parsed or built."""
        return self.data

    __bytes__ = serialize

    @property
    def version(self) -> int:
        return self.data[0] >> 6

    @property
    def padding(self) -> int:
        """Number of padding bytes at the end (0 without the P bit)."""
        return len(self.data) - self.payload_end

    @property
    def payload(self) -> bytes:
        return self.data[self.payload_offset : self.payload_end]

    @property
    def header_size(self) -> int:
        """Bytes before the payload: fixed header, CSRCs and extension."""
        return self.payload_offset

    @property
    def csrcs(self) -> tuple[int, ...]:
        cc = self.csrc_count
        return struct.unpack_from(f"!{cc}I", self.data, RTP_HEADER_SIZE)

    @property
    def extension_profile(self) -> int | None:
        """The 16-bit "defined by profile" field, or None without an extension."""
        if not self._ext_offset:
            return None
        return _EXT_HEADER.unpack_from(self.data, self._ext_offset)[0]

    @property
    def extension_data(self) -> bytes:
        """The raw extension words after the profile/length header."""
        off = self._ext_offset
        if not off:
            return b""
        return self.data[off + 4 : self.payload_offset]

    @property
    def extensions(self) -> list[tuple[int, bytes]]:
        """The RFC 8285 elements ``(id, value)``, in wire order.

        Empty for no extension or a profile other than the one-byte (0xBEDE)
        and two-byte (0x100X) forms.  Decoded on every access; raises
        :class:`RtpParseError` when an element overruns the extension.
        """
        off = self._ext_offset
        if not off:
            return []
        profile = (self.data[off] << 8) | self.data[off + 1]
        return decode_extensions(profile, self.data, off + 4, self.payload_offset)

    def extension(self, ext_id: int) -> bytes | None:
        """The value of the first element with ``ext_id``, or None.

        The one-byte form (what browsers send) is scanned in place, without
        building the element list.
        """
        off = self._ext_offset
        if not off:
            return None
        data = self.data
        if data[off] != 0xBE or data[off + 1] != 0xDE:
            for i, value in self.extensions:
                if i == ext_id:
                    return value
            return None
        # RFC 8285 section 4.2, as in decode_extensions().
        pos = off + 4
        end = self.payload_offset
        while pos < end:
            b = data[pos]
            if b == 0:
                pos += 1
                continue
            i = b >> 4
            if i == 15:
                return None
            pos += 1
            length = (b & 0x0F) + 1
            if pos + length > end:
                raise RtpParseError("one-byte header extension element overruns")
            if i == ext_id:
                return data[pos : pos + length]
            pos += length
        return None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RtpPacket):
            return NotImplemented
        return self.data == other.data

    def __hash__(self) -> int:
        return hash(self.data)

    def __repr__(self) -> str:
        return (
            f"RtpPacket(pt={self.payload_type}, seq={self.sequence_number}, "
            f"ts={self.timestamp}, ssrc={self.ssrc:#010x}, marker={self.marker}, "
            f"{self.payload_end - self.payload_offset} payload bytes)"
        )


def rewrite_header(
    data: bytes | bytearray,
    ssrc: int,
    sequence_number: int,
    timestamp: int,
    payload_type: int,
) -> bytearray:
    """A copy of RTP ``data`` with a new SSRC, sequence number, timestamp and PT.

    The forwarding hot path: one copy, one ``pack_into``; the marker bit,
    CSRCs, extensions, payload and padding are kept byte for byte.  ``data``
    must have been validated (by :meth:`RtpPacket.parse`) beforehand.
    """
    buf = bytearray(data)
    _M_PT_SEQ_TS_SSRC.pack_into(
        buf, 1, (buf[1] & 0x80) | payload_type, sequence_number, timestamp, ssrc
    )
    return buf

