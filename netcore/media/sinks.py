"""Media sinks: where a remote track's decoded frames go.

A sink is a callable taking one decoded PyAV frame, as
``RemoteTrack.on_frame(sink)`` wants. Three kinds:

* :class:`FrameCounter` counts frames and audio samples and, for video from
  :class:`~netcore.media.synthetic.SyntheticCamera`, reads each frame's
  number back (order, gaps, glass-to-glass checks without a side channel);
* :class:`FileRecorder` encodes what it is given into a container file with
  PyAV (WebM: VP8 and Opus; Matroska and others: H.264 and Opus), one
  stream per track, timestamps from the arrival time so audio and video
  line up as they were played;
* :func:`discard`, for a receiver that must decode but keep nothing (a load
  test's subscriber).
"""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Callable

import av

from netcore.media.sources import SourceUnavailable
from netcore.media.synthetic import read_frame_number

__all__ = ["FrameCounter", "FileRecorder", "discard"]


def discard(frame: av.frame.Frame) -> None:
    """Drop the frame (it was decoded: that is the work a receiver measures)."""


class FrameCounter:
    """Counts decoded frames (and samples); with ``read_numbers`` keeps the synthetic frame numbers."""

    def __init__(self, read_numbers: bool = False, max_numbers: int = 100_000) -> None:
        self.frames = 0
        self.samples = 0
        self.read_numbers = read_numbers
        self.numbers: list[int] = []
        self.unreadable = 0
        self.width = 0
        self.height = 0
        self._max_numbers = max_numbers

    def __call__(self, frame: av.frame.Frame) -> None:
        self.frames += 1
        if isinstance(frame, av.AudioFrame):
            self.samples += frame.samples
            return
        self.width, self.height = frame.width, frame.height
        if self.read_numbers:
            number = read_frame_number(frame)
            if number is None:
                self.unreadable += 1
            elif len(self.numbers) < self._max_numbers:
                self.numbers.append(number)

    @property
    def in_order(self) -> bool:
        """Every number read is larger than the one before (gaps allowed, no going back)."""
        return all(b > a for a, b in zip(self.numbers, self.numbers[1:]))


class FileRecorder:
    """Encode received frames into ``path``; :meth:`sink` gives each track its own stream.

    Streams are made when :meth:`sink` is called (a container's streams must
    all exist before its first packet), so ask for every track's sink before
    frames flow: on the peer connection's ``track`` events. Video is scaled
    to ``width`` x ``height``.

    ``clock`` gives the time a frame is handed over (the event loop's): each
    stream's timestamps are that time since the recording started, so a
    player shows what was shown, stalls included. Call :meth:`close` to
    flush the encoders and write the trailer.
    """

    def __init__(self, path: str, clock: Callable[[], float], width: int = 640, height: int = 480) -> None:
        self.path = path
        self.width, self.height = width, height  # every video frame is scaled to this
        self._clock = clock
        webm = os.path.splitext(path)[1].lower() == ".webm"
        self._video_codec = "libvpx" if webm else "libx264"
        try:
            self._container = av.open(path, "w")
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise SourceUnavailable(f"cannot write recording {path}: {getattr(exc, 'strerror', None) or exc}") from None
        self._start: float | None = None
        self._streams: list[_Stream] = []
        self.frames = 0
        self._closed = False

    def sink(self, kind: str) -> Callable[[av.frame.Frame], None]:
        """A sink for one track of ``kind`` ("audio" or "video"); streams are added as tracks arrive."""
        stream = _Stream(self, kind)
        self._streams.append(stream)
        return stream

    def _elapsed(self) -> float:
        now = self._clock()
        if self._start is None:
            self._start = now
        return now - self._start

    def _add_stream(self, kind: str):
        if kind == "video":
            stream = self._container.add_stream(self._video_codec, rate=30)
            stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
            stream.time_base = Fraction(1, 1000)
            stream.codec_context.time_base = Fraction(1, 1000)
            if self._video_codec == "libx264":
                stream.codec_context.options = {"preset": "ultrafast", "tune": "zerolatency"}
            else:
                stream.codec_context.options = {"deadline": "realtime", "cpu-used": "8"}
            stream.bit_rate = 1_000_000
        else:
            stream = self._container.add_stream("libopus", rate=48_000)
            stream.layout = "mono"
            stream.format = "s16"
        return stream

    def _mux(self, packets) -> None:
        for packet in packets:
            self._container.mux(packet)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for stream in self._streams:
            stream.flush()
        self._container.close()


class _Stream:
    """One track's stream in a :class:`FileRecorder`: frames encoded, packets muxed."""

    def __init__(self, recorder: FileRecorder, kind: str) -> None:
        self.recorder = recorder
        self.kind = kind
        self.stream = recorder._add_stream(kind)
        self.resampler = av.AudioResampler(format="s16", layout="mono", rate=48_000, frame_size=960) \
            if kind == "audio" else None
        self.last_pts = -1
        self.samples = 0

    def __call__(self, frame: av.frame.Frame) -> None:
        recorder = self.recorder
        if recorder._closed:
            return
        elapsed = recorder._elapsed()
        if self.kind == "video":
            self._video(frame, elapsed)
        else:
            self._audio(frame)
        recorder.frames += 1

    def _video(self, frame: av.VideoFrame, elapsed: float) -> None:
        stream = self.stream
        if (frame.width, frame.height) != (stream.width, stream.height) or frame.format.name != "yuv420p":
            frame = frame.reformat(width=stream.width, height=stream.height, format="yuv420p")
        pts = max(self.last_pts + 1, int(elapsed * 1000))
        self.last_pts = pts
        frame.pts, frame.time_base = pts, Fraction(1, 1000)
        frame.pict_type = av.video.frame.PictureType.NONE
        self.recorder._mux(stream.encode(frame))

    def _audio(self, frame: av.AudioFrame) -> None:
        frame.pts = None
        for out in self.resampler.resample(frame):
            out.pts = self.samples
            out.time_base = Fraction(1, 48_000)
            self.samples += out.samples
            self.recorder._mux(self.stream.encode(out))

    def flush(self) -> None:
        self.recorder._mux(self.stream.encode(None))
