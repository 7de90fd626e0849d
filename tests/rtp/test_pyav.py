"""Real encoders: PyAV (libvpx VP8, libx264 H.264) frames through our
packetizer and depacketizer decode to the same pictures as the encoder's
own output."""

from __future__ import annotations

import pytest

import numpy as np

from netcore.rtp.h264 import (  # noqa: E402
    H264Packetizer,
    h264_depacketize,
    h264_frame_is_keyframe,
    split_annexb,
)
from netcore.rtp.packet import RtpPacket  # noqa: E402
from netcore.rtp.vp8 import Vp8Packetizer, vp8_depacketize, vp8_is_keyframe  # noqa: E402
from tests.rtp.media import decode, encode  # noqa: E402

WIDTH, HEIGHT, FRAMES = 320, 240, 12

# codec: (payloads of one frame, frame of payloads, payloads start a key frame)
FORMATS = {
    "VP8": (
        lambda frame: Vp8Packetizer(max_payload_size=300).packetize(frame),
        vp8_depacketize,
        lambda payloads: vp8_is_keyframe(payloads[0]),
    ),
    "H264": (
        lambda frame: H264Packetizer(max_payload_size=400).packetize(split_annexb(frame)),
        h264_depacketize,
        h264_frame_is_keyframe,
    ),
}


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


@pytest.mark.parametrize("codec", ["VP8", "H264"])
def test_encoded_frames_survive_packetization(codec):
    packetize, depacketize, is_keyframe = FORMATS[codec]
    encoded = encode(codec, FRAMES, WIDTH, HEIGHT)
    received = []
    for i, frame in enumerate(encoded):
        payloads = _over_rtp(packetize(frame), i * 100, i * 3000)
        assert len(payloads) > 1 or len(frame) < 300
        assert is_keyframe(payloads) == (i == 0)
        out = depacketize(payloads)
        if codec == "H264":  # start codes may be 3 or 4 bytes in the input
            assert split_annexb(out) == split_annexb(frame)
        else:
            assert out == frame
        received.append(out)
    expected = decode(codec, encoded)
    got = decode(codec, received)
    assert len(got) == FRAMES
    assert all(np.array_equal(a, b) for a, b in zip(expected, got))
