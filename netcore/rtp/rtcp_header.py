"""The common RTCP header (RFC 3550 section 6.4.1) shared by every packet type.

``V=2 | P | count/fmt (5) | PT (8) | length (16, 32-bit words minus one)``
"""

from __future__ import annotations

import struct

from netcore.errors import UsageError

__all__ = ["RTCP_HEADER", "pack_rtcp", "SR", "RR", "SDES", "BYE", "APP", "RTPFB", "PSFB"]

RTCP_HEADER = struct.Struct("!BBH")

# RFC 3550 section 12.1, RFC 4585 section 6.1
SR = 200
RR = 201
SDES = 202
BYE = 203
APP = 204
RTPFB = 205
PSFB = 206


def pack_rtcp(packet_type: int, count: int, payload: bytes, pad_to_words: bool = False) -> bytes:
    """Header plus ``payload`` (a multiple of 4 bytes, or padded with the P bit).

    With ``pad_to_words`` a payload that is not a multiple of 4 gets RFC 3550
    padding: zeros and a final count octet, and the P bit set.
    """
    if not 0 <= count <= 31:
        raise UsageError(f"RTCP count/fmt {count} does not fit in 5 bits")
    b0 = 0x80 | count
    pad = -len(payload) % 4
    if pad:
        if not pad_to_words:
            raise UsageError("RTCP payload is not a multiple of 4 bytes")
        payload = payload + bytes(pad - 1) + bytes((pad,))
        b0 |= 0x20
    words = len(payload) // 4
    if words > 0xFFFF:
        raise UsageError("RTCP packet is longer than 65535 words")
    return RTCP_HEADER.pack(b0, packet_type, words) + payload
