"""Classify a datagram by its first byte (RFC 7983, RFC 9443; RFC 5761).

Every demultiplexer in netcore (ICE sockets, the TURN server's listener, the
call server) uses this instead of trying parsers in turn: the first byte tells
STUN, DTLS, TURN ChannelData and RTP/RTCP apart, and for RTP/RTCP the second
byte tells which of the two it is (RFC 5761 section 4: RTCP packet types
192-223 fall where RTP would carry marker + payload type 64-95).
"""

from __future__ import annotations

import enum

__all__ = ["PacketKind", "classify", "media_first"]


class PacketKind(enum.IntEnum):
    UNKNOWN = 0
    STUN = 1
    ZRTP = 2
    DTLS = 3
    CHANNEL_DATA = 4
    RTP = 5
    RTCP = 6


def _first_byte_table() -> tuple[PacketKind, ...]:
    # RFC 9443 section 3 (updating RFC 7983): the ranges of the first byte.
    table = [PacketKind.UNKNOWN] * 256
    for b in range(0, 4):
        table[b] = PacketKind.STUN
    for b in range(16, 20):
        table[b] = PacketKind.ZRTP
    for b in range(20, 64):
        table[b] = PacketKind.DTLS
    for b in range(64, 80):
        table[b] = PacketKind.CHANNEL_DATA
    for b in range(128, 192):
        table[b] = PacketKind.RTP  # refined to RTCP by the second byte
    return tuple(table)


_BY_FIRST_BYTE = _first_byte_table()


def classify(data: bytes | bytearray | memoryview) -> PacketKind:
    """Return the kind of ``data`` from its first two bytes; never raises."""
    if not data:
        return PacketKind.UNKNOWN
    kind = _BY_FIRST_BYTE[data[0]]
    if kind is PacketKind.RTP:
        if len(data) < 2:
            return PacketKind.UNKNOWN
        if 192 <= data[1] <= 223:  # RFC 5761 section 4
            return PacketKind.RTCP
    return kind


def media_first(datagrams: list) -> list:
    """``datagrams`` (each with a ``kind``, as :class:`~netcore.net.Receive`) with RTCP moved after the rest.

    A call server that read several datagrams in one wake-up handles the
    media before the subscribers' feedback read beside it: a feedback costs
    the loop as much as a media packet, and the media is what waits in the
    latency tail (docs/sfu.md). Only RTCP moves, later and in its own order,
    so nothing is handled before what it depends on: RTP stays behind the
    DTLS that gives its keys and the STUN that binds its address.
    """
    rtcp = [d for d in datagrams if d.kind is PacketKind.RTCP]
    if not rtcp or len(rtcp) == len(datagrams):
        return datagrams
    return [d for d in datagrams if d.kind is not PacketKind.RTCP] + rtcp
