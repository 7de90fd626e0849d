"""Capability limits: bandwidth, resolution and frame rate a side can take.

Each side states the most it can receive; the negotiated call uses, in each
category, the minimum of the two.  The statements travel in standard SDP:

* bandwidth: ``b=TIAS`` in bit/s (RFC 3890) and ``b=AS`` in kbit/s
  (RFC 8866 section 5.8), TIAS preferred when reading;
* resolution: ``a=imageattr:* recv [x=[16:W],y=[16:H]]`` (RFC 6236) and the
  codec's ``max-fs`` in 16x16 macroblocks (RFC 7741 for VP8, RFC 6184 and the
  H.264 level's MaxFS for H.264);
* frame rate: ``a=framerate`` (RFC 8866 section 6.8) and ``max-fr``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from netcore.errors import UsageError

from .attributes import Bandwidth, ImageAttr, is_uint
from .wire import Line, MediaSection, Section

__all__ = [
    "Limits",
    "bandwidth_of",
    "codec_limit_parameters",
    "limits_of",
    "write_limits",
]


def _min(a, b):  # None means "no limit stated"
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


@dataclass(frozen=True)
class Limits:
    """What a side can take; every field None means no limit stated."""

    max_bitrate: int | None = None  # bit/s
    max_width: int | None = None
    max_height: int | None = None
    max_framerate: float | None = None
    max_fs: int | None = None  # frame size in 16x16 macroblocks

    def __post_init__(self) -> None:
        # imageattr states a resolution as x and y together (RFC 6236).
        if (self.max_width is None) != (self.max_height is None):
            raise UsageError("max_width and max_height go together")

    def minimum(self, other: Limits) -> Limits:
        """The per-category minimum of two statements."""
        return Limits(
            _min(self.max_bitrate, other.max_bitrate),
            _min(self.max_width, other.max_width),
            _min(self.max_height, other.max_height),
            _min(self.max_framerate, other.max_framerate),
            _min(self.frame_size, other.frame_size),
        )

    @property
    def frame_size(self) -> int | None:
        """max_fs, or the macroblocks of max_width x max_height."""
        if self.max_width is not None and self.max_height is not None:
            return _min(
                self.max_fs,
                math.ceil(self.max_width / 16) * math.ceil(self.max_height / 16),
            )
        return self.max_fs


def bandwidth_of(section: Section, session: Section | None = None) -> int | None:
    """bit/s from b=TIAS, else b=AS; media level first, then session."""
    for level in (section, session):
        if level is None:
            continue
        found = level.bandwidths
        if "TIAS" in found:
            return found["TIAS"]
        if "AS" in found:
            return found["AS"] * 1000
    return None


def limits_of(
    section: MediaSection,
    session: Section | None,
    payload_type: int | None,
    codec_parameters: dict[str, str | None] | None = None,
) -> Limits:
    """What the writer of ``section`` said it can receive."""
    width = height = None
    for attr in section.get_all("imageattr"):
        if attr.format in ("*", str(payload_type)):
            try:
                found = attr.max_resolution("recv")
            except ValueError:
                found = None
            if found is not None:
                width = _min(width, found[0])
                height = _min(height, found[1])
    framerate = section.get("framerate")
    max_fs = None
    params = {k.lower(): v for k, v in (codec_parameters or {}).items()}
    if is_uint(params.get("max-fr")):
        framerate = _min(framerate, float(params["max-fr"]))
    if is_uint(params.get("max-fs")):
        max_fs = int(params["max-fs"])
    return Limits(bandwidth_of(section, session), width, height, framerate, max_fs)


def write_limits(section: MediaSection, limits: Limits, video: bool) -> None:
    """Append our statements: b= lines go right after c= (RFC 8866 order)."""
    if limits.max_bitrate is not None:
        at = 1
        for i, line in enumerate(section.lines):
            if line.raw[0] == "c":
                at = i + 1
        section.lines[at:at] = [
            Line.field("b", Bandwidth("AS", math.ceil(limits.max_bitrate / 1000))),
            Line.field("b", Bandwidth("TIAS", limits.max_bitrate)),
        ]
    if not video:
        return
    if limits.max_width is not None and limits.max_height is not None:
        section.add(
            "imageattr",
            ImageAttr(
                "*", recv=f"[x=[16:{limits.max_width}],y=[16:{limits.max_height}]]"
            ),
        )
    if limits.max_framerate is not None:
        section.add("framerate", limits.max_framerate)


def codec_limit_parameters(name: str, limits: Limits) -> list[tuple[str, str]]:
    """fmtp max-fs/max-fr for codecs that define them as receive limits."""
    if name.lower() not in ("vp8", "vp9"):
        return []
    params = []
    if limits.frame_size is not None:
        params.append(("max-fs", str(limits.frame_size)))
    if limits.max_framerate is not None:
        params.append(("max-fr", str(int(limits.max_framerate))))
    return params
