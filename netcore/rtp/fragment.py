"""Splitting a frame or NAL unit into payload-sized pieces of balanced size.

Both VP8 (RFC 7741) and H.264 FU-A (RFC 6184) packetizers cut data that
does not fit one packet.  Balanced pieces (all within one byte of each
other, as libwebrtc does) avoid a tiny last packet.
"""

from __future__ import annotations

__all__ = ["split_balanced"]


def split_balanced(data: bytes, room: int) -> list[bytes]:
    """``data`` cut into the fewest pieces of at most ``room`` bytes, balanced."""
    count = max(1, -(-len(data) // room))
    base, extra = divmod(len(data), count)
    pieces = []
    pos = 0
    for i in range(count):
        size = base + (1 if i < extra else 0)
        pieces.append(data[pos : pos + size])
        pos += size
    return pieces
