"""Media sources besides the synthetic ones: a media file (looped) and the screen (FFmpeg's x11grab).

Each source is an iterator of PyAV frames in the form the peer connection's
tracks take (:class:`~netcore.peer.tracks.LocalVideoTrack` and
``LocalAudioTrack``): video as ``yuv420p`` with ``pts`` in the 90 kHz RTP
clock, audio as 20 ms frames of 48 kHz ``s16`` with ``pts`` in samples. The
track paces them (its frame rate, 50 audio frames a second); the source only
produces the next one when asked, so its timestamps are its own count, not
the file's or the X server's clock: a looped file or a screen that stalls
still gives evenly spaced timestamps.

A source that cannot be opened (no such file, no video in it, no X display)
raises :class:`SourceUnavailable` with one sentence saying which and why.

The screen is read by a thread: ``x11grab`` blocks until its next frame is
due, and a peer connection's sending task runs on the event loop, which must
not wait for the X server. The thread keeps the latest picture; each
``next()`` takes it (repeating the last one if the screen has not been
grabbed again yet).
"""

from __future__ import annotations

import itertools
import threading
from fractions import Fraction
from typing import Iterator

import av

from netcore.errors import NetcoreError

__all__ = ["SourceUnavailable", "FileVideoSource", "FileAudioSource", "ScreenSource"]

VIDEO_CLOCK_RATE = 90_000
AUDIO_RATE = 48_000
AUDIO_FRAME_SAMPLES = 960  # 20 ms


class SourceUnavailable(NetcoreError):
    """A camera, screen or file that cannot be opened or read."""


def _open(target: str, what: str, **kwargs) -> av.container.InputContainer:
    try:
        return av.open(target, **kwargs)
    except FileNotFoundError:
        raise SourceUnavailable(f"cannot open {what} {target}: no such file") from None
    except (av.FFmpegError, OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise SourceUnavailable(f"cannot open {what} {target}: {reason}") from None


class FileVideoSource:
    """The video of a media file, decoded with PyAV and looped; frames numbered at ``fps``."""

    def __init__(self, path: str, fps: float = 30.0, loop: bool = True) -> None:
        self.path = path
        self.fps = fps
        self.loop = loop
        container = _open(path, "video file")
        if not container.streams.video:
            container.close()
            raise SourceUnavailable(f"cannot open video file {path}: it has no video stream")
        container.close()
        self._numbers = itertools.count()

    def __iter__(self) -> Iterator[av.VideoFrame]:
        while True:
            container = _open(self.path, "video file")
            produced = False
            try:
                for frame in container.decode(video=0):
                    produced = True
                    yield self._stamp(frame)
            except av.FFmpegError as exc:
                raise SourceUnavailable(f"cannot read video file {self.path}: {exc}") from None
            finally:
                container.close()
            if not self.loop or not produced:
                return

    def _stamp(self, frame: av.VideoFrame) -> av.VideoFrame:
        out = frame if frame.format.name == "yuv420p" else frame.reformat(format="yuv420p")
        out.pts = int(round(next(self._numbers) * VIDEO_CLOCK_RATE / self.fps))
        out.time_base = Fraction(1, VIDEO_CLOCK_RATE)
        return out


class FileAudioSource:
    """The audio of a media file, resampled to 20 ms frames of 48 kHz mono ``s16``, looped."""

    def __init__(self, path: str, loop: bool = True) -> None:
        self.path = path
        self.loop = loop
        container = _open(path, "audio file")
        if not container.streams.audio:
            container.close()
            raise SourceUnavailable(f"cannot open audio file {path}: it has no audio stream")
        container.close()
        self._samples = 0

    def __iter__(self) -> Iterator[av.AudioFrame]:
        while True:
            container = _open(self.path, "audio file")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=AUDIO_RATE,
                                          frame_size=AUDIO_FRAME_SAMPLES)
            produced = False
            try:
                for frame in container.decode(audio=0):
                    frame.pts = None
                    for out in resampler.resample(frame):
                        produced = True
                        yield self._stamp(out)
            except av.FFmpegError as exc:
                raise SourceUnavailable(f"cannot read audio file {self.path}: {exc}") from None
            finally:
                container.close()
            if not self.loop or not produced:
                return

    def _stamp(self, frame: av.AudioFrame) -> av.AudioFrame:
        frame.pts = self._samples
        frame.time_base = Fraction(1, AUDIO_RATE)
        self._samples += frame.samples
        return frame


class ScreenSource:
    """The X display ``display`` (":99") through FFmpeg's ``x11grab``, grabbed by a thread.

    ``size`` ("1280x720") grabs that much of the screen from its top left
    corner (default: the whole screen). Call :meth:`close` when done.
    """

    def __init__(self, display: str, fps: float = 15.0, size: str | None = None) -> None:
        self.display = display
        self.fps = fps
        options = {"framerate": str(fps), "draw_mouse": "0"}
        if size:
            options["video_size"] = size
        self._container = _open(display, "display", format="x11grab", options=options)
        self._numbers = itertools.count()
        self._latest: av.VideoFrame | None = None
        self._failure: str | None = None
        self._ready = threading.Condition()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._grab, name=f"x11grab {display}", daemon=True)
        self._thread.start()
        with self._ready:  # the first picture, so the track starts with a real frame
            self._ready.wait_for(lambda: self._latest is not None or self._failure is not None, timeout=5.0)
        if self._latest is None:
            self.close()
            raise SourceUnavailable(f"cannot grab display {display}: {self._failure or 'no picture within 5 s'}")

    def _grab(self) -> None:
        try:
            for frame in self._container.decode(video=0):
                picture = frame.reformat(format="yuv420p")
                with self._ready:
                    self._latest = picture
                    self._ready.notify_all()
                if self._stopped.is_set():
                    return
        except (av.FFmpegError, OSError) as exc:
            with self._ready:
                self._failure = str(exc)
                self._ready.notify_all()

    def __iter__(self) -> Iterator[av.VideoFrame]:
        while not self._stopped.is_set():
            with self._ready:
                if self._failure is not None:
                    raise SourceUnavailable(f"lost display {self.display}: {self._failure}")
                latest = self._latest
            assert latest is not None
            frame = av.VideoFrame.from_ndarray(latest.to_ndarray(), format="yuv420p")
            frame.pts = int(round(next(self._numbers) * VIDEO_CLOCK_RATE / self.fps))
            frame.time_base = Fraction(1, VIDEO_CLOCK_RATE)
            yield frame

    def close(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=2.0)
        try:
            self._container.close()
        except av.FFmpegError:
            pass
