"""Real encoders: PyAV (libvpx VP8, libx264 H.264) frames through our
packetizer and depacketizer decode to the same pictures as the encoder's
own output."""

from __future__ import annotations

import fractions

import pytest

av = pytest.importorskip("av")
np = pytest.importorskip("numpy")

from netcore.rtp.h264 import (  # noqa: E402
    H264Packetizer,
    h264_depacketize,
    h264_frame_is_keyframe,
    split_annexb,
)
from netcore.rtp.packet import RtpPacket  # noqa: E402
from netcore.rtp.vp8 import Vp8Packetizer, vp8_depacketize, vp8_is_keyframe  # noqa: E402

WIDTH, HEIGHT, FRAMES = 320, 240, 12


def _frames():
    for i in range(FRAMES):
        img = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
        img[:, :, 0] = (np.arange(WIDTH) * 3 + i * 8) % 256
        img[:, :, 1] = (np.arange(HEIGHT)[:, None] * 2 + i * 5) % 256
        img[40 + i * 4 : 120 + i * 4, 60:160, 2] = 255
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        frame.time_base = fractions.Fraction(1, 30)
        yield frame


def _encode(codec_name, options):
    enc = av.CodecContext.create(codec_name, "w")
    enc.width, enc.height, enc.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    enc.time_base = fractions.Fraction(1, 30)
    enc.framerate = fractions.Fraction(30, 1)
    enc.bit_rate = 500_000
    enc.options = options
    packets = []
    for frame in _frames():
        packets.extend(bytes(p) for p in enc.encode(frame))
    packets.extend(bytes(p) for p in enc.encode(None))
    return packets


def _decode(decoder_name, access_units):
    dec = av.CodecContext.create(decoder_name, "r")
    pictures = []
    for au in access_units:
        for frame in dec.decode(av.Packet(au)):
            pictures.append(frame.to_ndarray(format="yuv420p"))
    for frame in dec.decode(None):
        pictures.append(frame.to_ndarray(format="yuv420p"))
    return pictures


def _over_rtp(payloads, seq, ts):
    """Wrap payloads in RTP packets, marker on the last, and read them back."""
    out = []
    for i, payload in enumerate(payloads):
        data = RtpPacket.build(
            payload_type=96, sequence_number=seq + i, timestamp=ts, ssrc=1234,
            payload=payload, marker=i == len(payloads) - 1,
        ).serialize()
        out.append(RtpPacket.parse(data))
    assert out[-1].marker
    return [p.payload for p in out]


def test_libvpx_vp8_frames_survive_packetization():
    encoded = _encode("libvpx", {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"})
    assert len(encoded) == FRAMES
    packetizer = Vp8Packetizer(max_payload_size=300)
    received = []
    for i, frame in enumerate(encoded):
        payloads = _over_rtp(packetizer.packetize(frame), i * 100, i * 3000)
        assert len(payloads) > 1 or len(frame) < 300
        assert vp8_is_keyframe(payloads[0]) == (i == 0)
        received.append(vp8_depacketize(payloads))
    assert received == encoded
    expected = _decode("libvpx", encoded)
    got = _decode("libvpx", received)
    assert len(got) == FRAMES
    assert all(np.array_equal(a, b) for a, b in zip(expected, got))


def test_libx264_h264_frames_survive_packetization():
    encoded = _encode("libx264", {"tune": "zerolatency", "preset": "ultrafast", "profile": "baseline"})
    assert len(encoded) == FRAMES
    packetizer = H264Packetizer(max_payload_size=400)
    received = []
    for i, au in enumerate(encoded):
        nals = split_annexb(au)
        payloads = _over_rtp(packetizer.packetize(nals), i * 100, i * 3000)
        assert h264_frame_is_keyframe(payloads) == (i == 0)
        out = h264_depacketize(payloads)
        assert split_annexb(out) == nals
        received.append(out)
    expected = _decode("h264", encoded)
    got = _decode("h264", received)
    assert len(got) == FRAMES
    assert all(np.array_equal(a, b) for a, b in zip(expected, got))
