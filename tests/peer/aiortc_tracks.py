"""aiortc's side of our synthetic sources, paced in real time, and the frames it decodes.

For the aiortc call tests (two peers, the call server) and ``bench/call.py``.

Video is ``SyntheticCamera`` (frame numbers drawn in, read back with
``read_frame_number`` whoever decodes), audio ``SyntheticMicrophone`` in
20 ms frames at 48 kHz.
"""

from __future__ import annotations

import asyncio
import fractions

from typing import AsyncIterator

from aiortc import MediaStreamTrack

from netcore.media.synthetic import SyntheticCamera, SyntheticMicrophone

__all__ = ["PacedTrack", "CameraTrack", "MicrophoneTrack", "frames_of"]


class PacedTrack(MediaStreamTrack):
    """Frame ``n`` (from :meth:`make`) is released at ``start + n * interval``, ``start`` the first ``recv``."""

    def __init__(self, interval: float) -> None:
        super().__init__()
        self.interval = interval
        self.number = 0
        self.start: float | None = None

    def make(self, number: int):
        raise NotImplementedError

    async def recv(self):
        loop = asyncio.get_running_loop()
        if self.start is None:
            self.start = loop.time()
        await asyncio.sleep(max(0.0, self.start + self.number * self.interval - loop.time()))
        frame = self.make(self.number)
        self.number += 1
        return frame


class CameraTrack(PacedTrack):
    """SyntheticCamera frames of ``width`` x ``height`` at ``fps``."""

    kind = "video"

    def __init__(self, width: int = 320, height: int = 240, fps: int = 30) -> None:
        super().__init__(1 / fps)
        self.camera = SyntheticCamera(width, height, fps=fps)

    def make(self, number: int):
        return self.camera.frame(number)


class MicrophoneTrack(PacedTrack):
    """SyntheticMicrophone in 20 ms frames."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__(0.02)
        self.microphone = SyntheticMicrophone()

    def make(self, number: int):
        frame = self.microphone.frame(number)
        frame.time_base = fractions.Fraction(1, 48000)
        return frame


async def frames_of(track) -> AsyncIterator:
    """Every frame aiortc decodes on a remote ``track``, until the call ends."""
    while True:
        try:
            frame = await track.recv()
        except Exception:  # MediaStreamError when the call ends
            return
        yield frame
