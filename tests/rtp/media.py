"""Test media shared by the PyAV-based tests: a moving picture and real
encoders (libvpx VP8, libx264 H.264) run through PyAV."""

from __future__ import annotations

import fractions

import av
import numpy as np

# Encoder name and options per SDP codec name: realtime, no lookahead, so
# each input picture gives exactly one encoded frame.
ENCODERS = {
    "VP8": ("libvpx", {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}),
    "H264": ("libx264", {"tune": "zerolatency", "preset": "ultrafast", "profile": "baseline"}),
}
DECODERS = {"VP8": "libvpx", "H264": "h264"}


def picture(i: int, width: int, height: int) -> av.VideoFrame:
    """Frame ``i`` of a gradient with a moving box, yuv420p, 30 fps."""
    img = np.zeros((height, width, 3), dtype=np.uint8)
    img[:, :, 0] = (np.arange(width) * 3 + i * 8) % 256
    img[:, :, 1] = (np.arange(height)[:, None] * 2 + i * 5) % 256
    top, left = (i * 4) % (height // 2), (i * 5) % (width // 2)
    img[top : top + height // 3, left : left + width // 3, 2] = 255
    frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
    frame.pts = i
    frame.time_base = fractions.Fraction(1, 30)
    return frame


def encoder(codec: str, width: int, height: int, **settings) -> av.codec.context.CodecContext:
    name, options = ENCODERS[codec]
    enc = av.CodecContext.create(name, "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.time_base = fractions.Fraction(1, 30)
    enc.framerate = fractions.Fraction(30, 1)
    enc.bit_rate = 500_000
    for key, value in settings.items():
        setattr(enc, key, value)
    enc.options = options
    return enc


def encode(codec: str, count: int, width: int, height: int) -> list[bytes]:
    """``count`` encoded frames of the moving picture."""
    enc = encoder(codec, width, height)
    frames = []
    for i in range(count):
        frames.extend(bytes(p) for p in enc.encode(picture(i, width, height)))
    frames.extend(bytes(p) for p in enc.encode(None))
    assert len(frames) == count
    return frames


def decode(codec: str, frames: list[bytes]) -> list[np.ndarray]:
    """Pictures (yuv420p arrays) from decoding ``frames`` in order."""
    dec = av.CodecContext.create(DECODERS[codec], "r")
    pictures = []
    for data in frames:
        pictures.extend(f.to_ndarray(format="yuv420p") for f in dec.decode(av.Packet(data)))
    pictures.extend(f.to_ndarray(format="yuv420p") for f in dec.decode(None))
    return pictures
