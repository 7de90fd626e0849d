"""RTP retransmission payload format (RFC 4588).

An RTX packet carries the original sequence number (OSN) in the first two
bytes of its payload, then the original payload (RFC 4588 section 4).  It
keeps the original timestamp, marker, CSRCs and header extensions, and has
its own SSRC, sequence space and payload type.  Padding is not carried over.
"""

from __future__ import annotations

import struct

from netcore.rtp.errors import RtpParseError
from netcore.rtp.packet import RtpPacket

__all__ = ["wrap_rtx", "unwrap_rtx"]

_OSN = struct.Struct("!H")
_M_PT_SEQ = struct.Struct("!BH")
_SSRC = struct.Struct("!I")


def _with_payload(
    packet: RtpPacket, payload_type: int, sequence_number: int, ssrc: int, payload: bytes
) -> bytes:
    data = packet.data
    header = bytearray(data[: packet.payload_offset])
    header[0] &= 0xDF  # RFC 4588 section 4: padding is not retransmitted
    _M_PT_SEQ.pack_into(header, 1, (data[1] & 0x80) | payload_type, sequence_number)
    _SSRC.pack_into(header, 8, ssrc)
    return bytes(header) + payload


def wrap_rtx(
    packet: RtpPacket, payload_type: int, sequence_number: int, ssrc: int
) -> RtpPacket:
    """The RTX packet retransmitting ``packet`` on the RTX stream."""
    payload = _OSN.pack(packet.sequence_number) + packet.payload
    return RtpPacket.parse(
        _with_payload(packet, payload_type, sequence_number, ssrc, payload)
    )


def unwrap_rtx(rtx: RtpPacket, payload_type: int, ssrc: int) -> RtpPacket:
    """The original packet recovered from RTX packet ``rtx``.

    Raises :class:`RtpParseError` when the payload has no room for the OSN.
    """
    payload = rtx.payload
    if len(payload) < 2:
        raise RtpParseError("RTX payload is shorter than the original sequence number")
    osn = _OSN.unpack_from(payload)[0]
    return RtpPacket.parse(_with_payload(rtx, payload_type, osn, ssrc, payload[2:]))
