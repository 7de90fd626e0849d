"""The synthetic camera's frame numbers survive real encoders; the microphone's marks are found."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from netcore.media.synthetic import NUMBER_BITS, SyntheticCamera, SyntheticMicrophone, read_frame_number


@given(st.integers(min_value=0, max_value=(1 << NUMBER_BITS) - 1))
@settings(max_examples=60, deadline=None)
def test_every_frame_number_reads_back_from_the_raw_frame(number):
    camera = SyntheticCamera(320, 240)
    assert read_frame_number(camera.frame(number)) == number


def test_numbers_wrap_at_twenty_bits():
    camera = SyntheticCamera(320, 240)
    assert read_frame_number(camera.frame(1 << NUMBER_BITS)) == 0


@pytest.mark.parametrize("luma", [16, 128, 235])
def test_a_blank_picture_reads_as_no_frame(luma):
    blank = av.VideoFrame.from_ndarray(np.full((360, 640), luma, np.uint8), format="gray")
    assert read_frame_number(blank) is None


def test_pts_runs_on_the_rtp_video_clock():
    camera = SyntheticCamera(fps=30)
    assert [camera.frame(n).pts for n in range(3)] == [0, 3000, 6000]
    assert camera.frame(0).time_base == Fraction(1, 90_000)


@pytest.mark.parametrize("codec", ["libvpx", "libx264"])
def test_frame_numbers_survive_a_real_encoder_at_a_low_bitrate(codec):
    camera = SyntheticCamera(640, 480, fps=30)
    encoder = av.CodecContext.create(codec, "w")
    encoder.width, encoder.height, encoder.pix_fmt = 640, 480, "yuv420p"
    encoder.time_base = Fraction(1, 90_000)
    encoder.framerate = Fraction(30)  # rate control spreads bit_rate over frames at this rate
    encoder.bit_rate = 300_000
    encoder.options = {"deadline": "realtime", "cpu-used": "8"} if codec == "libvpx" else {"preset": "ultrafast", "tune": "zerolatency"}
    decoder = av.CodecContext.create("vp8" if codec == "libvpx" else "h264", "r")
    read = []
    for number in range(45):
        for packet in encoder.encode(camera.frame(number)):
            for frame in decoder.decode(packet):
                read.append(read_frame_number(frame))
    for packet in encoder.encode(None):
        for frame in decoder.decode(packet):
            read.append(read_frame_number(frame))
    assert read == list(range(45))


def test_frame_numbers_read_from_a_scaled_layer():
    camera = SyntheticCamera(1280, 720)
    for width, height in [(640, 360), (320, 180)]:
        scaled = camera.frame(777).reformat(width=width, height=height)
        assert read_frame_number(scaled) == 777


def test_the_microphone_marks_the_start_of_every_second():
    mic = SyntheticMicrophone()
    pcm = np.concatenate([mic.frame(n).to_ndarray()[0].astype(np.float32) / 32767 for n in range(150)])
    marks = mic.mark_starts(pcm)
    assert len(marks) == 3
    assert all(abs(m - k * mic.sample_rate) <= mic.mark_samples for k, m in enumerate(marks))


def test_the_marks_survive_opus():
    mic = SyntheticMicrophone()
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 48_000, "mono", "s16"
    encoder.bit_rate = 32_000
    decoder = av.CodecContext.create("opus", "r")
    decoder.sample_rate, decoder.layout = 48_000, "mono"
    decoded = []
    for n in range(150):
        for packet in encoder.encode(mic.frame(n)):
            for frame in decoder.decode(packet):
                decoded.append(frame.to_ndarray().reshape(-1).astype(np.float32))
    pcm = np.concatenate(decoded)
    if np.abs(pcm).max() > 1.5:
        pcm = pcm / 32767  # s16 from the decoder, else float planar
    marks = mic.mark_starts(pcm)
    assert len(marks) == 3
    assert all(abs((b - a) - mic.sample_rate) <= mic.mark_samples for a, b in zip(marks, marks[1:]))
