"""Coded frames into WebM or Matroska with PyAV, packets only (nothing is decoded or encoded).

WebM when every track is VP8, VP9 or Opus, Matroska otherwise (H.264).
Times are milliseconds (the Matroska default).  What the muxer needs to
know that packets do not say is read from the bitstream: a VP8 key frame's
size (RFC 6386 section 9.1), the SPS and PPS of an H.264 key frame (its
Annex B extradata, which the Matroska writer turns into avcC), the channel
count of Opus from the TOC byte (RFC 6716 section 3.1), and an ``OpusHead``
(RFC 7845 section 5.1) with no pre-skip, so that a packet's samples start
at the packet's time.
"""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av

from netcore.record.frames import CodedFrame
from netcore.record.manifest import Codec
from netcore.rtp.h264 import NAL_PPS, NAL_SPS, START_CODE, split_annexb

__all__ = ["MuxTrack", "container_for", "write_file", "MuxError"]

TIME_BASE = Fraction(1, 1000)
_WEBM_CODECS = {"VP8", "VP9", "OPUS"}


class MuxError(ValueError):
    """A track cannot be written (no key frame to learn the picture size from, an unknown codec)."""


class MuxTrack:
    def __init__(self, track_id: str, codec: Codec, frames: list[CodedFrame]) -> None:
        self.track_id = track_id
        self.codec = codec
        self.frames = frames


def container_for(codecs: list[Codec]) -> tuple[str, str]:
    """The muxer name and file suffix for these codecs."""
    if all(c.name.upper() in _WEBM_CODECS for c in codecs):
        return "webm", ".webm"
    return "matroska", ".mkv"


def _vp8_size(frames: list[CodedFrame]) -> tuple[int, int]:
    for frame in frames:
        data = frame.data
        if frame.keyframe and len(data) >= 10 and data[3:6] == b"\x9d\x01\x2a":
            width, height = struct.unpack_from("<HH", data, 6)
            return width & 0x3FFF, height & 0x3FFF
    raise MuxError("the VP8 track has no key frame")


def _h264_setup(frames: list[CodedFrame]) -> tuple[int, int, bytes]:
    for frame in frames:
        if not frame.keyframe:
            continue
        nals = split_annexb(frame.data)
        sps = [n for n in nals if n[0] & 0x1F == NAL_SPS]
        pps = [n for n in nals if n[0] & 0x1F == NAL_PPS]
        if not sps or not pps:
            continue
        decoder = av.CodecContext.create("h264", "r")
        for picture in decoder.decode(av.Packet(frame.data)):
            return picture.width, picture.height, START_CODE + sps[0] + START_CODE + pps[0]
    raise MuxError("the H.264 track has no key frame with its SPS and PPS")


def _opus_head(channels: int) -> bytes:
    # RFC 7845 section 5.1: version 1, channels, pre-skip 0, input rate, gain 0, mapping family 0
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, 0, 48000, 0, 0)


def _add_stream(out: av.container.OutputContainer, track: MuxTrack):
    name = track.codec.name.upper()
    if name == "VP8":
        stream = out.add_stream("libvpx", rate=30)
        stream.width, stream.height = _vp8_size(track.frames)
    elif name == "H264":
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, extradata = _h264_setup(track.frames)
        stream.codec_context.extradata = extradata
    elif name == "OPUS":
        stereo = any(f.data and f.data[0] & 0x04 for f in track.frames[:50])
        channels = 2 if stereo else 1
        stream = out.add_stream("libopus", rate=48000)
        stream.codec_context.layout = "stereo" if stereo else "mono"
        stream.codec_context.extradata = _opus_head(channels)
    else:
        raise MuxError(f"cannot write {track.codec.name} without re-encoding")
    stream.time_base = TIME_BASE
    return stream


def write_file(path: Path, tracks: list[MuxTrack], progress: Callable[[float], None] | None = None) -> None:
    """Write ``tracks`` (frames in order, room times) to ``path``; ``progress(room_time)`` as it goes."""
    fmt, _ = container_for([t.codec for t in tracks])
    tracks = [t for t in tracks if t.frames]
    with av.open(str(path), "w", format=fmt) as out:
        streams = [_add_stream(out, t) for t in tracks]
        items = sorted(((f.time, i, f) for i, t in enumerate(tracks) for f in t.frames), key=lambda x: (x[0], x[1]))
        last = [-1] * len(tracks)
        for n, (time, i, frame) in enumerate(items):
            pts = max(last[i] + 1, round(time * 1000))  # strictly increasing per stream
            last[i] = pts
            packet = av.Packet(frame.data)
            packet.stream = streams[i]
            packet.time_base = TIME_BASE
            packet.pts = packet.dts = pts
            packet.duration = max(1, round(frame.duration * 1000))
            packet.is_keyframe = frame.keyframe
            out.mux(packet)
            if progress is not None and n % 256 == 0:
                progress(time)
