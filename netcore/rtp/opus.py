"""Opus over RTP (RFC 7587): pass-through with the audio level extension.

One Opus packet is one RTP payload, unchanged (RFC 7587 section 4.2); the
RTP clock is always 48 kHz.  What a forwarder or jitter buffer needs is the
packet's duration, read from the TOC byte (RFC 6716 section 3.1), and the
RFC 6464 audio level carried in a header extension, which lets the call
server pick active speakers without decoding audio.
"""

from __future__ import annotations

from netcore.rtp.errors import RtpParseError
from netcore.rtp.extensions import URI_AUDIO_LEVEL, AudioLevel, HeaderExtensionMap
from netcore.rtp.packet import RtpPacket

__all__ = ["OPUS_CLOCK_RATE", "opus_duration", "opus_packet", "opus_audio_level"]

OPUS_CLOCK_RATE = 48000

# RFC 6716 section 3.1 table 2: frame size in 48 kHz samples per config.
_FRAME_SAMPLES = (
    [480, 960, 1920, 2880] * 3  # SILK NB, MB, WB: 10, 20, 40, 60 ms
    + [480, 960] * 2  # Hybrid SWB, FB: 10, 20 ms
    + [120, 240, 480, 960] * 4  # CELT NB, WB, SWB, FB: 2.5, 5, 10, 20 ms
)


def opus_duration(payload: bytes) -> int:
    """Duration of an Opus packet in 48 kHz samples (RFC 6716 section 3.2).

    Raises :class:`RtpParseError` for an empty packet, a missing frame
    count byte, or more than 120 ms of audio (rule R5).
    """
    if not payload:
        raise RtpParseError("Opus packet is empty")
    toc = payload[0]
    frame = _FRAME_SAMPLES[toc >> 3]
    code = toc & 3
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    else:
        if len(payload) < 2:
            raise RtpParseError("Opus code 3 packet has no frame count byte")
        frames = payload[1] & 0x3F
        if frames == 0:
            raise RtpParseError("Opus code 3 packet has zero frames")
    total = frame * frames
    if total > 5760:  # 120 ms
        raise RtpParseError("Opus packet is longer than 120 ms")
    return total


def opus_packet(
    payload: bytes,
    *,
    payload_type: int,
    sequence_number: int,
    timestamp: int,
    ssrc: int,
    marker: bool = False,
    audio_level: AudioLevel | None = None,
    extensions: HeaderExtensionMap | None = None,
) -> RtpPacket:
    """An RTP packet carrying ``payload`` as is, with the audio level when
    ``extensions`` negotiates it.  ``marker`` starts a talkspurt after DTX."""
    elements: list[tuple[int, bytes]] = []
    if audio_level is not None and extensions is not None:
        if extensions.id_of(URI_AUDIO_LEVEL) is not None:
            elements = extensions.encode({URI_AUDIO_LEVEL: audio_level})
    return RtpPacket.build(
        payload_type=payload_type,
        sequence_number=sequence_number,
        timestamp=timestamp,
        ssrc=ssrc,
        payload=payload,
        marker=marker,
        extensions=elements,
    )


def opus_audio_level(packet: RtpPacket, extensions: HeaderExtensionMap) -> AudioLevel | None:
    """The RFC 6464 level of a packet, or None when it carries none."""
    return extensions.value(packet, URI_AUDIO_LEVEL)
