"""Renditions: what a transcoder makes of one source track, and the ladders it is usually asked for.

A :class:`Rendition` is one output of the transcoder: a codec, a height (the
width follows the source's aspect), a bitrate and a frame-rate ceiling, named
by the RID (RFC 8851) it is published under, so the call server can offer it
to subscribers next to the publisher's own layers.  A *ladder* is the tuple of
renditions made from one source; :func:`simulcast_ladder` is the usual one
for a publisher that sends a single 720p layer (360p and 180p, with bitrates
of the order libwebrtc gives simulcast layers of those sizes), and
:func:`codec_ladder` the one for a subscriber that cannot decode the source's
codec (the source's own size in another codec).
"""

from __future__ import annotations

from dataclasses import dataclass

from netcore.errors import UsageError
from netcore.media.codecs import VIDEO_CODECS

__all__ = ["Rendition", "scaled_size", "simulcast_ladder", "codec_ladder", "check_ladder", "rendition_to_wire",
           "rendition_from_wire"]


@dataclass(frozen=True, slots=True)
class Rendition:
    """One output of a transcoder: ``name`` is its RID; ``height`` None keeps the source's size."""

    name: str
    codec: str = "VP8"
    height: int | None = None
    bitrate: int = 500_000
    max_fps: float = 30.0

    def size_for(self, width: int, height: int) -> tuple[int, int]:
        """This rendition's picture size for a source of ``width`` x ``height``."""
        return scaled_size(width, height, self.height)


def scaled_size(width: int, height: int, target_height: int | None) -> tuple[int, int]:
    """``width`` x ``height`` scaled down to ``target_height`` (never up), aspect kept, even sides."""
    if target_height is None or target_height >= height:
        return width, height
    scale = target_height / height
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def simulcast_ladder(codec: str = "VP8") -> tuple[Rendition, ...]:
    """360p and 180p below a 720p source, lowest first, as simulcast layers are ordered."""
    return (Rendition("q", codec, 180, 150_000), Rendition("h", codec, 360, 450_000))


def codec_ladder(codec: str, bitrate: int = 1_200_000, height: int | None = None) -> tuple[Rendition, ...]:
    """The source in ``codec`` (another codec than its own), at its size or at ``height``."""
    return (Rendition(codec.lower(), codec, height, bitrate),)


def check_ladder(renditions: tuple[Rendition, ...]) -> None:
    """Raise :class:`UsageError` for a ladder the transcoder cannot make (codec, names, values)."""
    if not renditions:
        raise UsageError("a ladder needs at least one rendition")
    names = [r.name for r in renditions]
    if len(set(names)) != len(names):
        raise UsageError("two renditions with one name")
    for rendition in renditions:
        # RFC 8851 section 10: a RID is alphanumeric; at most 16 characters, as for simulcast layers
        if not (rendition.name.isascii() and rendition.name.isalnum() and len(rendition.name) <= 16):
            raise UsageError(f"bad rendition name {rendition.name!r}")
        if rendition.codec not in VIDEO_CODECS:
            raise UsageError(f"no encoder for {rendition.codec!r}; choose one of {', '.join(VIDEO_CODECS)}")
        if rendition.height is not None and rendition.height < 16:
            raise UsageError(f"rendition {rendition.name} is too small: {rendition.height} lines")
        if rendition.bitrate < 30_000 or rendition.max_fps <= 0:
            raise UsageError(f"rendition {rendition.name} needs at least 30 kbit/s and a frame rate")


def rendition_to_wire(rendition: Rendition) -> dict:
    """A rendition as JSON (the call server's ``job.start`` to a worker)."""
    return {"name": rendition.name, "codec": rendition.codec, "height": rendition.height,
            "bitrate": rendition.bitrate, "max_fps": rendition.max_fps}


def rendition_from_wire(data: dict) -> Rendition:
    """A rendition from JSON; :class:`UsageError` for a malformed one (:func:`check_ladder` judges the values)."""
    try:
        height = data.get("height")
        return Rendition(str(data["name"]), str(data.get("codec", "VP8")).upper(),
                         int(height) if height is not None else None, int(data.get("bitrate", 500_000)),
                         float(data.get("max_fps", 30.0)))
    except (KeyError, TypeError, ValueError, AttributeError):
        raise UsageError(f"bad rendition {data!r}") from None
