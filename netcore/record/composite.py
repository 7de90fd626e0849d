"""One file of the whole call: every participant's video in a grid, their audio mixed (re-encoded).

The per-participant files keep the coded media untouched; this one
decodes everything and encodes once, with PyAV: VP8 at ``fps`` in a grid
of ``TILE`` tiles (a participant's latest picture at each output instant,
black before its first and after its last), Opus of the sum of everyone's
audio placed at its room time.  It follows the same timeline, so it is in
sync exactly when the participants' files are.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import numpy as np

from netcore.record.mux import MuxTrack

__all__ = ["write_composite", "TILE"]

TILE = (320, 240)
SAMPLE_RATE = 48_000
_BLACK_Y, _GREY_UV = 16, 128


class _VideoSource:
    """One participant's video decoded in order; ``picture_at(t)`` is its latest picture at room time t."""

    def __init__(self, track: MuxTrack) -> None:
        self.frames = track.frames
        self.decoder = av.CodecContext.create("vp8" if track.codec.name.upper() == "VP8" else "h264", "r")
        self.next = 0
        self.picture: np.ndarray | None = None  # the tile, yuv420p stacked planes
        self.end = track.frames[-1].time + track.frames[-1].duration if track.frames else 0.0

    def picture_at(self, t: float) -> np.ndarray | None:
        while self.next < len(self.frames) and self.frames[self.next].time <= t:
            frame = self.frames[self.next]
            self.next += 1
            try:
                decoded = self.decoder.decode(av.Packet(frame.data))
            except (av.FFmpegError, ValueError):
                continue
            for picture in decoded:
                tile = picture.reformat(width=TILE[0], height=TILE[1], format="yuv420p")
                self.picture = tile.to_ndarray()
        return self.picture if t <= self.end else None


def _mix_audio(tracks: list[MuxTrack], duration: float) -> np.ndarray:
    pcm = np.zeros(int(math.ceil(duration * SAMPLE_RATE)) + SAMPLE_RATE, np.float32)
    for track in tracks:
        decoder = av.CodecContext.create("opus", "r")
        for frame in track.frames:
            try:
                decoded = decoder.decode(av.Packet(frame.data))
            except (av.FFmpegError, ValueError):
                continue
            start = int(round(frame.time * SAMPLE_RATE))
            for piece in decoded:
                samples = piece.to_ndarray().astype(np.float32)
                mono = samples.mean(axis=0) if samples.shape[0] > 1 else samples.reshape(-1)
                end = min(len(pcm), start + len(mono))
                if start < end:
                    pcm[start:end] += mono[:end - start]
                start += len(mono)
    return np.clip(pcm, -1.0, 1.0)


def _grid(count: int) -> tuple[int, int]:
    columns = max(1, math.ceil(math.sqrt(count)))
    return columns, max(1, math.ceil(count / columns))


def write_composite(path: Path, participants: list[list[MuxTrack]], duration: float,
                    progress: Callable[[float], None] | None = None, *, fps: int = 15,
                    bitrate: int = 1_500_000) -> None:
    """Write the composite of ``participants`` (each a list of its tracks) to ``path`` (WebM)."""
    videos = [next((_VideoSource(t) for t in tracks if t.codec.kind == "video" and t.frames), None)
              for tracks in participants]
    columns, rows = _grid(len(participants))
    width, height = columns * TILE[0], rows * TILE[1]
    audio = _mix_audio([t for tracks in participants for t in tracks if t.codec.kind == "audio"], duration)
    with av.open(str(path), "w", format="webm") as out:
        vstream = out.add_stream("libvpx", rate=fps)
        vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
        vstream.bit_rate = bitrate
        vstream.codec_context.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        astream = out.add_stream("libopus", rate=SAMPLE_RATE)
        astream.layout = "mono"
        astream.bit_rate = 64_000
        canvas = np.empty((height * 3 // 2, width), np.uint8)
        frames = int(math.ceil(duration * fps))
        audio_done = 0
        for k in range(frames):
            t = k / fps
            canvas[:height] = _BLACK_Y
            canvas[height:] = _GREY_UV
            for index, source in enumerate(videos):
                tile = source.picture_at(t) if source is not None else None
                if tile is not None:
                    _paste(canvas, tile, index % columns, index // columns, width, height)
            frame = av.VideoFrame.from_ndarray(canvas, format="yuv420p")
            frame.pts, frame.time_base = k, Fraction(1, fps)
            for packet in vstream.encode(frame):
                out.mux(packet)
            # the audio up to this video frame's end, in 20 ms frames
            until = min(len(audio), int((k + 1) / fps * SAMPLE_RATE) // 960 * 960)
            while audio_done + 960 <= until:
                _encode_audio(out, astream, audio[audio_done:audio_done + 960], audio_done)
                audio_done += 960
            if progress is not None and k % fps == 0:
                progress(t)
        for packet in vstream.encode(None):
            out.mux(packet)
        for packet in astream.encode(None):
            out.mux(packet)


def _encode_audio(out, stream, samples: np.ndarray, pts: int) -> None:
    frame = av.AudioFrame.from_ndarray((samples * 32767).astype(np.int16).reshape(1, -1), format="s16",
                                       layout="mono")
    frame.sample_rate = SAMPLE_RATE
    frame.pts, frame.time_base = pts, Fraction(1, SAMPLE_RATE)
    for packet in stream.encode(frame):
        out.mux(packet)


def _paste(canvas: np.ndarray, tile: np.ndarray, column: int, row: int, width: int, height: int) -> None:
    tw, th = TILE
    x, y = column * tw, row * th
    canvas[y:y + th, x:x + tw] = tile[:th]
    # chroma planes: each a (th/2 x tw/2) block stored as rows of width/2 after the luma
    u_tile = tile[th:th + th // 4].reshape(th // 2, tw // 2)
    v_tile = tile[th + th // 4:].reshape(th // 2, tw // 2)
    u_plane = canvas[height:height + height // 4].reshape(height // 2, width // 2)
    v_plane = canvas[height + height // 4:].reshape(height // 2, width // 2)
    u_plane[y // 2:(y + th) // 2, x // 2:(x + tw) // 2] = u_tile
    v_plane[y // 2:(y + th) // 2, x // 2:(x + tw) // 2] = v_tile
