"""Codecs as offered and answered, and when two of them are the same codec.

A ``Codec`` is what a side can do (name, clock rate, channels, fmtp
parameters, RTCP feedback).  ``match`` decides whether a remote format is the
same codec as a local one (RFC 8829 section 5.3.1: name, clock rate and
channels, plus the codec-specific parameters that change the bitstream:
H.264 profile and packetization-mode, VP9 profile-id).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .attributes import Fmtp, RtcpFb, Rtpmap, is_uint, parse_fmtp_parameters
from .h264 import ProfileLevelId
from .wire import MediaSection

__all__ = [
    "AUDIO_CODECS",
    "Codec",
    "VIDEO_CODECS",
    "codecs_of",
    "match",
]

Parameters = tuple[tuple[str, "str | None"], ...]


@dataclass(frozen=True)
class Codec:
    """One RTP format: name/clock/channels, fmtp parameters, RTCP feedback.

    ``payload_type`` is a preference when offering and the value read from a
    description otherwise; ``rtx_payload_type`` is the RTX format bound to it
    with ``apt`` (RFC 4588).
    """

    name: str
    clock_rate: int
    channels: int | None = None
    parameters: Parameters = ()
    feedback: tuple[tuple[str, str | None], ...] = ()
    payload_type: int | None = None
    rtx_payload_type: int | None = None

    def parameter(self, key: str) -> str | None:
        key = key.lower()
        for k, v in self.parameters:
            if k.lower() == key:
                return v
        return None

    @property
    def mime(self) -> str:
        return f"{self.name.lower()}/{self.clock_rate}"

    def rtpmap(self, payload_type: int) -> Rtpmap:
        return Rtpmap(payload_type, self.name, self.clock_rate, self.channels)


_FEEDBACK_VIDEO = (
    ("goog-remb", None),
    ("transport-cc", None),
    ("ccm", "fir"),
    ("nack", None),
    ("nack", "pli"),
)

AUDIO_CODECS = (
    Codec(
        "opus",
        48000,
        2,
        (("minptime", "10"), ("useinbandfec", "1")),
        (("transport-cc", None),),
        payload_type=111,
    ),
    Codec("PCMU", 8000, payload_type=0),
    Codec("PCMA", 8000, payload_type=8),
)

VIDEO_CODECS = (
    Codec("VP8", 90000, feedback=_FEEDBACK_VIDEO, payload_type=96),
    Codec(
        "H264",
        90000,
        parameters=(
            ("level-asymmetry-allowed", "1"),
            ("packetization-mode", "1"),
            ("profile-level-id", "42e01f"),
        ),
        feedback=_FEEDBACK_VIDEO,
        payload_type=102,
    ),
)

# Formats that are never codecs of their own: they ride on another one.
_AUXILIARY = frozenset(("rtx",))


def _channels(codec_channels: int | None, kind_audio: bool) -> int:
    # RFC 8866 section 6.6: absent encoding parameters mean one channel.
    return (codec_channels or 1) if kind_audio else (codec_channels or 0)


def _h264_compatible(a: Codec, b: Codec) -> bool:
    # RFC 6184 section 8.2.2: same profile and packetization-mode.
    if (a.parameter("packetization-mode") or "0") != (
        b.parameter("packetization-mode") or "0"
    ):
        return False
    try:
        pa = ProfileLevelId.parse(a.parameter("profile-level-id"))
        pb = ProfileLevelId.parse(b.parameter("profile-level-id"))
    except ValueError:
        return False
    return pa.profile == pb.profile


def match(local: Codec, remote: Codec) -> bool:
    """Whether ``remote`` (read from a description) is the same codec."""
    if local.name.lower() != remote.name.lower():
        return False
    if local.clock_rate != remote.clock_rate:
        return False
    audio = local.clock_rate != 90000
    if _channels(local.channels, audio) != _channels(remote.channels, audio):
        return False
    name = local.name.lower()
    if name == "h264":
        return _h264_compatible(local, remote)
    if name == "vp9":
        return (local.parameter("profile-id") or "0") == (
            remote.parameter("profile-id") or "0"
        )
    return True


def codecs_of(media: MediaSection) -> list[Codec]:
    """The codecs of an m= section in ``m=`` format order, RTX folded in.

    Formats without an rtpmap are static payload types (RFC 3551) that we
    know only by number; they are returned with the RFC 3551 name when we
    know it and skipped otherwise.
    """
    rtpmaps: dict[int, Rtpmap] = {}
    fmtps: dict[str, Fmtp] = {}
    feedback: dict[str, list[RtcpFb]] = {}
    for line in media.lines:
        name = line.name
        if name == "rtpmap":
            rtpmaps.setdefault(line.value.payload_type, line.value)
        elif name == "fmtp":
            fmtps.setdefault(line.value.format, line.value)
        elif name == "rtcp-fb":
            feedback.setdefault(line.value.format, []).append(line.value)
    rtx: dict[int, int] = {}  # apt -> rtx payload type
    result: list[Codec] = []
    for fmt in media.formats:
        if not is_uint(fmt):
            continue
        pt = int(fmt)
        rtpmap = rtpmaps.get(pt) or _STATIC.get(pt)
        if rtpmap is None:
            continue
        fmtp = fmtps.get(fmt)
        params = tuple(parse_fmtp_parameters(fmtp.parameters).items()) if fmtp else ()
        if rtpmap.encoding_name.lower() in _AUXILIARY:
            apt = dict(params).get("apt")
            if is_uint(apt):
                rtx.setdefault(int(apt), pt)
            continue
        fbs = feedback.get(fmt, []) + feedback.get("*", [])
        result.append(
            Codec(
                rtpmap.encoding_name,
                rtpmap.clock_rate,
                rtpmap.channels,
                params,
                tuple((fb.type, fb.parameter) for fb in fbs),
                pt,
            )
        )
    if rtx:
        result = [
            replace(c, rtx_payload_type=rtx[c.payload_type])
            if c.payload_type in rtx
            else c
            for c in result
        ]
    return result


# RFC 3551 section 6: static payload types that may come without an rtpmap.
_STATIC = {
    0: Rtpmap(0, "PCMU", 8000),
    8: Rtpmap(8, "PCMA", 8000),
    9: Rtpmap(9, "G722", 8000),
}
