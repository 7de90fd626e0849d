"""Codecs as offered and answered, when two of them are the same codec, and
how the codecs of an offer and an answer meet.

A ``Codec`` is what a side can do (name, clock rate, channels, fmtp
parameters, RTCP feedback).  ``match`` decides whether a remote format is the
same codec as a local one (RFC 8829 section 5.3.1: name, clock rate and
channels, plus the codec-specific parameters that change the bitstream:
H.264 profile and packetization-mode, VP9 profile-id).  ``intersect``
answers an offer's codecs, ``answered_codecs`` reads an answer against our
offer, ``assign_payload_types`` numbers the codecs of an offer, and the
``h264_*`` helpers apply the level rules of RFC 6184 section 8.2.2.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from .attributes import Fmtp, RtcpFb, Rtpmap, is_uint, parse_fmtp_parameters
from .h264 import ProfileLevelId, negotiate_levels
from .wire import MediaSection

__all__ = [
    "AUDIO_CODECS",
    "Codec",
    "VIDEO_CODECS",
    "answered_codecs",
    "assign_payload_types",
    "codecs_of",
    "h264_answer_parameters",
    "h264_levels",
    "intersect",
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

# RFC 6184 section 8.1: constrained baseline, level 3.1, packetization mode 1 (what browsers offer first).
H264_BASELINE_PARAMETERS = (
    ("level-asymmetry-allowed", "1"),
    ("packetization-mode", "1"),
    ("profile-level-id", "42e01f"),
)

VIDEO_CODECS = (
    Codec("VP8", 90000, feedback=_FEEDBACK_VIDEO, payload_type=96),
    Codec("H264", 90000, parameters=H264_BASELINE_PARAMETERS, feedback=_FEEDBACK_VIDEO, payload_type=102),
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
            (
                replace(c, rtx_payload_type=rtx[c.payload_type])
                if c.payload_type in rtx
                else c
            )
            for c in result
        ]
    return result


# Dynamic payload types (RFC 3551 section 3), then the range RFC 5761
# section 4 leaves free of RTCP packet types with rtcp-mux.
_DYNAMIC_PTS = tuple(range(96, 128)) + tuple(range(35, 64))


def assign_payload_types(
    codecs: Sequence[Codec],
    video: bool,
    agreed: Sequence[Codec] = (),
    known: Sequence[Codec] = (),
) -> list[Codec]:
    """Payload types for the codecs of an offer: agreed ones kept first,
    then those the peer already mapped (on its payload type), then the
    preferred ones where free, then the first free dynamic ones; RTX for
    video.

    A payload type the peer mapped to another codec is not reused for ours
    (RFC 3264 section 8.3.2: a number keeps its codec in a session).
    """
    reserved = {pt for c in known for pt in (c.payload_type, c.rtx_payload_type) if pt}
    used: set[int] = set()
    chosen: list[Codec] = []
    fixed: list[bool] = []
    for codec in codecs:
        prior = next((a for a in agreed if match(codec, a)), None) or next(
            (k for k in known if k.payload_type not in used and match(codec, k)),
            None,
        )
        if prior is not None and not video:
            prior = replace(prior, rtx_payload_type=None)
        if prior is not None:
            codec = replace(
                codec,
                payload_type=prior.payload_type,
                rtx_payload_type=prior.rtx_payload_type,
            )
            used.update(pt for pt in (prior.payload_type, prior.rtx_payload_type) if pt)
        chosen.append(codec)
        fixed.append(prior is not None)
    for i, codec in enumerate(chosen):
        if fixed[i]:
            continue
        pt, rtx = codec.payload_type, codec.rtx_payload_type
        taken = used | reserved
        pt = pt if pt is not None and pt not in taken else None
        used.update(p for p in (pt,) if p is not None)
        rtx = rtx if rtx is not None and rtx not in taken | {pt} else None
        used.update(p for p in (rtx,) if p is not None)
        chosen[i] = replace(codec, payload_type=pt, rtx_payload_type=rtx)
    # Free numbers the peer never used first, then what is left.
    free = (
        pt for pt in sorted(_DYNAMIC_PTS, key=lambda p: p in reserved) if pt not in used
    )
    result = []
    for codec in chosen:
        if codec.payload_type is None:
            codec = replace(codec, payload_type=next(free))
        if video and codec.rtx_payload_type is None:
            codec = replace(codec, rtx_payload_type=next(free))
        result.append(codec)
    return result


def intersect(
    local: Sequence[Codec], offered: Sequence[Codec], kind: str
) -> tuple[list[Codec], list[Codec], list[tuple[int, int, int]]]:
    """Answer an offer's codecs: (codecs we answer, codecs to send with,
    H.264 (payload type, send level, receive level)).

    Our preference order, the offer's payload types; each offered
    format is used once.
    """
    answer: list[Codec] = []
    send: list[Codec] = []
    levels: list[tuple[int, int, int]] = []
    taken: set[int] = set()
    for ours in local:
        theirs = next(
            (c for c in offered if c.payload_type not in taken and match(ours, c)),
            None,
        )
        if theirs is None:
            continue
        assert theirs.payload_type is not None
        taken.add(theirs.payload_type)
        ours_fb = set(ours.feedback)
        feedback = tuple(fb for fb in theirs.feedback if fb in ours_fb)
        params = ours.parameters
        if ours.name.lower() == "h264":
            params, level = h264_answer_parameters(ours, theirs)
            levels.append((theirs.payload_type, *level))
        rtx = theirs.rtx_payload_type if kind == "video" else None
        answer.append(
            replace(
                ours,
                parameters=params,
                feedback=feedback,
                payload_type=theirs.payload_type,
                rtx_payload_type=rtx,
            )
        )
        send.append(replace(theirs, feedback=feedback, rtx_payload_type=rtx))
    return answer, send, levels


def answered_codecs(
    offered: Sequence[Codec], answered: Sequence[Codec]
) -> tuple[list[Codec], list[Codec], list[tuple[int, int, int]]]:
    """Read an answer's codecs against our offer: (codecs we receive, codecs
    to send with, H.264 (payload type, send level, receive level)).

    RFC 3264 section 6.1: an answer uses the offered payload types, so a
    format is taken only where the offer had the same codec on that number.
    """
    ours = {c.payload_type: c for c in offered}
    recv: list[Codec] = []
    send: list[Codec] = []
    levels: list[tuple[int, int, int]] = []
    for codec in answered:
        mine = ours.get(codec.payload_type)
        if mine is None or not match(mine, codec):
            continue
        fb = tuple(f for f in codec.feedback if f in set(mine.feedback))
        rtx = codec.rtx_payload_type if mine.rtx_payload_type is not None else None
        recv.append(replace(mine, feedback=fb, rtx_payload_type=rtx))
        send.append(replace(codec, feedback=fb, rtx_payload_type=rtx))
        if codec.name.lower() == "h264":
            assert codec.payload_type is not None
            levels.append((codec.payload_type, *h264_levels(mine, codec)))
    return recv, send, levels


def h264_levels(ours: Codec, theirs: Codec) -> tuple[int, int]:
    """(send level, receive level) for us (RFC 6184 section 8.2.2)."""
    try:
        mine = ProfileLevelId.parse(ours.parameter("profile-level-id"))
        peer = ProfileLevelId.parse(theirs.parameter("profile-level-id"))
    except ValueError:
        return (0, 0)
    asymmetry = (
        ours.parameter("level-asymmetry-allowed") == "1"
        and theirs.parameter("level-asymmetry-allowed") == "1"
    )
    return negotiate_levels(mine, peer, asymmetry)


def h264_answer_parameters(
    ours: Codec, theirs: Codec
) -> tuple[tuple[tuple[str, str | None], ...], tuple[int, int]]:
    """Our answer's fmtp for H.264 and the (send, receive) levels.

    Without level asymmetry both sides use the lower level and the answer
    states it (RFC 6184 section 8.2.2); with it we state our own level.
    """
    send, recv = h264_levels(ours, theirs)
    params = list(ours.parameters)
    if send and send == recv:
        try:
            plid = ProfileLevelId.parse(ours.parameter("profile-level-id")).with_level(
                recv
            )
        except ValueError:
            return tuple(params), (send, recv)
        params = [
            (k, str(plid)) if k.lower() == "profile-level-id" else (k, v)
            for k, v in params
        ]
    return tuple(params), (send, recv)


# RFC 3551 section 6: static payload types that may come without an rtpmap.
_STATIC = {
    0: Rtpmap(0, "PCMU", 8000),
    8: Rtpmap(8, "PCMA", 8000),
    9: Rtpmap(9, "G722", 8000),
}
