"""Key-frame detection per codec, from the first packet of a frame.

A forwarder switching layers or a receiver joining a stream needs to know
where it may start decoding without reassembling or decoding anything.
Each detector takes one RTP payload and never raises: a malformed payload
is simply not a key frame.

* VP8 (RFC 7741 section 4.3): see :func:`netcore.rtp.vp8.vp8_is_keyframe`.
* H.264 (RFC 6184): see :func:`netcore.rtp.h264.h264_is_keyframe`.
* VP9 (RFC 9628 section 4.2): B=1 (start of a frame), P=0 (not
  inter-picture predicted) and, with layer indices, spatial layer 0.
* AV1 (AV1 RTP payload format, section 4.4): the aggregation header's N bit
  marks the first packet of a coded video sequence, which starts with a
  key frame.
"""

from __future__ import annotations

from typing import Callable

from netcore.rtp.h264 import h264_is_keyframe
from netcore.rtp.vp8 import vp8_is_keyframe

__all__ = ["vp9_is_keyframe", "av1_is_keyframe", "KEYFRAME_DETECTORS"]


def vp9_is_keyframe(payload: bytes) -> bool:
    """The packet starts a VP9 key frame at its base spatial layer."""
    if not payload:
        return False
    b0 = payload[0]  # I P L F B E V Z
    if b0 & 0x40 or not b0 & 0x08:
        return False
    if not b0 & 0x20:  # no layer indices: a non-scalable stream
        return True
    pos = 1
    if b0 & 0x80:  # picture ID, 7 or 15 bits (M)
        if len(payload) < 2:
            return False
        pos += 2 if payload[1] & 0x80 else 1
    if pos >= len(payload):
        return False
    return (payload[pos] >> 1) & 0x07 == 0  # TID(3) U SID(3) D


def av1_is_keyframe(payload: bytes) -> bool:
    """The packet is the first of an AV1 coded video sequence (N=1, Z=0)."""
    return bool(payload) and payload[0] & 0x88 == 0x08


KEYFRAME_DETECTORS: dict[str, Callable[[bytes], bool]] = {
    "VP8": vp8_is_keyframe,
    "VP9": vp9_is_keyframe,
    "H264": h264_is_keyframe,
    "AV1": av1_is_keyframe,
}
"""By SDP encoding name (``a=rtpmap``), upper case."""
