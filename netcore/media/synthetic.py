"""Synthetic sources that a receiver can check: a camera and a microphone.

The camera draws a moving pattern (so an encoder has motion to code) and the
frame number as a row of large black and white blocks across the top of the
picture: 20 bits of number and 4 bits of check, each bit a square block a
fortieth of the picture's width (16 pixels at 640), which survives lossy
coding at any bitrate a call uses and scaling to any simulcast layer's size. :func:`read_frame_number` reads it back from a decoded frame, so
a receiver knows which frame it shows and when it was captured: glass-to-glass
latency and frame order without any side channel.

The microphone plays a steady tone with a mark (a burst at another
frequency) at the start of every second, so a recording or a receiver can
line audio up with video frame numbers (A/V sync) by finding the marks. A
camera made with ``flash=True`` flashes (its bottom quarter white) on the
first frame of every second, at the same instants as the marks:
:func:`read_flash` and :meth:`SyntheticMicrophone.mark_onsets` find both.

Frames are PyAV frames with ``pts`` and ``time_base`` set: video in the RTP
clock of 90 kHz, audio in samples.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

__all__ = [
    "SyntheticCamera",
    "SyntheticMicrophone",
    "read_frame_number",
    "read_flash",
    "is_flash_frame",
    "VIDEO_CLOCK_RATE",
    "BLOCKS_ACROSS",
    "NUMBER_BITS",
]

VIDEO_CLOCK_RATE = 90_000
BLOCKS_ACROSS = 40  # a bit's block is width / 40 pixels on a side
NUMBER_BITS = 20  # frame numbers wrap at 2**20 (about 9.7 hours at 30 fps)
CHECK_BITS = 4
_CODE_BITS = NUMBER_BITS + CHECK_BITS
_WHITE, _BLACK = 235, 16  # video-range luma


def _check(number: int) -> int:
    """Four check bits: the inverted XOR of the number's five nibbles.

    Inverted so that an all-black or all-white code area (a blank picture)
    does not read as a frame number.
    """
    check = 0
    for shift in range(0, NUMBER_BITS, 4):
        check ^= (number >> shift) & 0xF
    return check ^ 0xF


def _code_bits(number: int) -> list[int]:
    word = ((number & ((1 << NUMBER_BITS) - 1)) << CHECK_BITS) | _check(number & ((1 << NUMBER_BITS) - 1))
    return [(word >> (_CODE_BITS - 1 - i)) & 1 for i in range(_CODE_BITS)]


class SyntheticCamera:
    """Frames of a moving pattern with the frame number drawn in; ``frame(n)`` for any ``n``."""

    def __init__(self, width: int = 640, height: int = 480, fps: float = 30.0, *, flash: bool = False,
                 noise: int = 0) -> None:
        if width < 4 * BLOCKS_ACROSS or height < 4 * (width // BLOCKS_ACROSS) or width % 2 or height % 2:
            raise ValueError("a synthetic frame needs an even size, at least 160 wide and 4 blocks high")
        self.width = width
        self.height = height
        self.fps = fps
        self.flash = flash  # the first frame of every second flashes white (A/V sync: the microphone's mark)
        y, x = np.mgrid[0:height, 0:width]
        # A smooth diagonal gradient with a bright bar that sweeps across:
        # motion to code, cheap enough that a starved encoder keeps the code.
        self._ramp = (64 + (x + y) * 96 // (width + height)).astype(np.uint8)
        self._bar = max(8, width // 20)
        self._chroma = np.full((height // 2, width // 2), 128, np.uint8)
        # ``noise``: the luma varies by up to that much per pixel (seven planes, cycled), so an encoder spends
        # its whole target as on a real camera's picture (the pattern alone codes to a fraction of it)
        rng = np.random.default_rng(1)
        self._noise = [rng.integers(-noise, noise + 1, (height, width), dtype=np.int16) for _ in range(7)] \
            if noise else []

    def frame(self, number: int) -> av.VideoFrame:
        """Frame ``number`` as a yuv420p frame with its 90 kHz ``pts``."""
        luma = self._ramp.copy()
        if self._noise:
            luma = np.clip(luma + self._noise[number % len(self._noise)], 0, 255).astype(np.uint8)
        left = (4 * number) % self.width
        luma[:, left:left + self._bar] = 200
        if self.flash and is_flash_frame(number, self.fps):
            luma[self.height * 3 // 4:, :] = _WHITE
        self._draw_code(luma, number)
        u = self._chroma + np.uint8((number * 3) % 64)  # a slow colour drift
        v = self._chroma
        frame = av.VideoFrame.from_ndarray(np.concatenate([luma, u.reshape(-1, self.width),
                                                           v.reshape(-1, self.width)]), format="yuv420p")
        frame.pts = int(round(number * VIDEO_CLOCK_RATE / self.fps))
        frame.time_base = Fraction(1, VIDEO_CLOCK_RATE)
        return frame

    def _draw_code(self, luma: np.ndarray, number: int) -> None:
        block = self.width // BLOCKS_ACROSS  # one block of black margin around the code
        luma[0:block * 3, 0:(_CODE_BITS + 2) * block] = _BLACK
        for i, bit in enumerate(_code_bits(number)):
            left = (i + 1) * block
            luma[block:2 * block, left:left + block] = _WHITE if bit else _BLACK


def is_flash_frame(number: int, fps: float) -> bool:
    """Frame ``number`` is the first at or after a whole second (the one a flashing camera flashes)."""
    return number == 0 or int(number / fps) != int((number - 1) / fps)


def read_flash(frame: av.VideoFrame) -> bool:
    """Whether a decoded frame is a flash of ``SyntheticCamera(flash=True)``: its bottom quarter white."""
    luma = frame.to_ndarray(format="gray")
    return float(luma[luma.shape[0] * 7 // 8:, :].mean()) > 215


def _luma(frame: av.VideoFrame) -> np.ndarray:
    """The luma plane as an array: a view of the frame's own plane when it is planar YUV (converting
    the whole picture to gray cost as much CPU as a third of decoding it), else converted."""
    if frame.format.name in ("yuv420p", "yuvj420p", "yuv422p", "yuv444p"):
        plane = frame.planes[0]
        rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
        return rows[:frame.height, :frame.width]
    return frame.to_ndarray(format="gray")


def read_frame_number(frame: av.VideoFrame) -> int | None:
    """The frame number drawn by :class:`SyntheticCamera`, or ``None`` if unreadable.

    Reads the centre of each bit's block on the luma plane; blocks are a
    fixed share of the width, so a frame scaled on the way (a simulcast
    layer, a receiver's own size) reads the same. The check bits reject a
    frame that is not ours or too damaged to trust.
    """
    luma = _luma(frame)
    height, width = luma.shape
    block = width / BLOCKS_ACROSS
    half = max(0, int(block / 4) - 1)  # read the middle half of a block, away from ringing at its edges
    cy = int(1.5 * block)
    if cy + half >= height:
        return None
    bits = []
    for i in range(_CODE_BITS):
        cx = int((i + 1.5) * block)
        patch = luma[cy - half:cy + half + 1, cx - half:cx + half + 1]
        bits.append(1 if float(patch.mean()) > 128 else 0)
    word = 0
    for bit in bits:
        word = (word << 1) | bit
    number, check = word >> CHECK_BITS, word & ((1 << CHECK_BITS) - 1)
    return number if _check(number) == check else None


class SyntheticMicrophone:
    """A tone with a mark at the start of every second; ``frame(n)`` is the n-th ``frame_ms`` slice."""

    def __init__(self, sample_rate: int = 48_000, frame_ms: int = 20, tone_hz: float = 440.0,
                 mark_hz: float = 2_000.0, mark_ms: int = 20, amplitude: float = 0.25) -> None:
        self.sample_rate = sample_rate
        self.samples_per_frame = sample_rate * frame_ms // 1000
        self.tone_hz = tone_hz
        self.mark_hz = mark_hz
        self.mark_samples = sample_rate * mark_ms // 1000
        self.amplitude = amplitude

    def samples(self, start: int, count: int) -> np.ndarray:
        """``count`` mono float samples from sample index ``start``."""
        t = np.arange(start, start + count)
        in_mark = (t % self.sample_rate) < self.mark_samples
        hz = np.where(in_mark, self.mark_hz, self.tone_hz)
        return (self.amplitude * np.sin(2 * np.pi * hz * t / self.sample_rate)).astype(np.float32)

    def frame(self, number: int) -> av.AudioFrame:
        """Slice ``number`` as a mono s16 frame with its ``pts`` in samples."""
        start = number * self.samples_per_frame
        pcm = (self.samples(start, self.samples_per_frame) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, self.sample_rate)
        return frame

    def mark_onsets(self, pcm: np.ndarray) -> list[float]:
        """Sample positions in ``pcm`` (mono floats) where a mark begins, to a fraction of a millisecond.

        The mark's frequency is demodulated and averaged over a 2 ms window
        centred on each sample (the tone, further than 500 Hz away, averages
        out); a mark begins where that level first crosses half the mark's
        amplitude, which is the onset itself for a centred window.
        """
        window = max(2, self.sample_rate // 500)
        t = np.arange(len(pcm))
        level = np.abs(np.convolve(pcm * np.exp(-2j * np.pi * self.mark_hz * t / self.sample_rate),
                                   np.ones(window) / window, mode="same"))
        above = level > self.amplitude / 4  # half of the demodulated amplitude (amplitude / 2)
        starts = np.flatnonzero(above[1:] & ~above[:-1]) + 1
        onsets: list[float] = []
        for start in starts:
            if not onsets or start - onsets[-1] > self.sample_rate // 2:
                onsets.append(float(start))
        return onsets

    def mark_starts(self, pcm: np.ndarray) -> list[int]:
        """Sample indices in ``pcm`` (mono floats) where a mark begins, found by its frequency."""
        window = self.mark_samples
        marks = []
        t = np.arange(window)
        probe_mark = np.exp(-2j * np.pi * self.mark_hz * t / self.sample_rate)
        probe_tone = np.exp(-2j * np.pi * self.tone_hz * t / self.sample_rate)
        step = max(1, window // 4)
        previous = False
        for start in range(0, len(pcm) - window, step):
            chunk = pcm[start:start + window]
            is_mark = abs(chunk @ probe_mark) > 2 * abs(chunk @ probe_tone)
            if is_mark and not previous:
                marks.append(start)
            previous = is_mark
        return marks
