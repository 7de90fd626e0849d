"""Media sources and sinks with the real programs: files made and checked by ``ffmpeg``/``ffprobe``,
the screen grabbed from an Xvfb display the test starts (showing a synthetic picture)."""

from __future__ import annotations

import itertools
import json
import subprocess
from fractions import Fraction

import av
import numpy as np
import pytest

from netcore.media.sinks import FileRecorder, FrameCounter, discard
from netcore.media.sources import FileAudioSource, FileVideoSource, ScreenSource, SourceUnavailable
from netcore.media.synthetic import SyntheticCamera, SyntheticMicrophone, read_frame_number
from tests.browsers.firefox import Xvfb
from tests.conftest import require_program
from tests.media.screen import Picture


def ffmpeg(*args: str) -> None:
    subprocess.run([require_program("ffmpeg"), "-v", "error", "-y", *args], check=True, timeout=60)


def probe(path) -> list[dict]:
    out = subprocess.run([require_program("ffprobe"), "-v", "error", "-count_frames", "-show_entries",
                          "stream=codec_type,codec_name,width,height,nb_read_frames", "-of", "json", str(path)],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    return json.loads(out)["streams"]


def synthetic_file(path, frames: int, fps: int = 15) -> None:
    """A VP8 WebM of SyntheticCamera frames 0..frames-1 (so numbers can be read back)."""
    camera = SyntheticCamera(320, 240, fps)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libvpx", rate=fps)
        stream.width, stream.height, stream.pix_fmt, stream.bit_rate = 320, 240, "yuv420p", 800_000
        for n in range(frames):
            frame = camera.frame(n)
            frame.pts, frame.time_base = n, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def test_a_file_made_by_ffmpeg_loops_with_even_timestamps(tmp_path):
    path = tmp_path / "clip.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=10:duration=1", "-f", "lavfi",
           "-i", "sine=frequency=440:duration=1", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           "-c:a", "libopus", str(path))
    frames = list(itertools.islice(FileVideoSource(str(path), fps=10), 25))  # the 10-frame file, 2.5 times
    assert [f.pts for f in frames] == [n * 9000 for n in range(25)]
    assert {(f.width, f.height, f.format.name) for f in frames} == {(320, 240, "yuv420p")}
    audio = list(itertools.islice(FileAudioSource(str(path)), 120))  # 2.4 s from a 1 s file
    assert {(a.samples, a.sample_rate, a.format.name, a.layout.name) for a in audio} == {(960, 48000, "s16", "mono")}
    assert [a.pts for a in audio] == [n * 960 for n in range(120)]


def test_a_file_source_gives_the_files_pictures_in_order(tmp_path):
    path = tmp_path / "numbers.webm"
    synthetic_file(path, 20)
    numbers = [read_frame_number(f) for f in itertools.islice(FileVideoSource(str(path), fps=15), 30)]
    assert numbers == list(range(20)) + list(range(10))


def test_files_that_cannot_be_sources(tmp_path):
    with pytest.raises(SourceUnavailable, match="no such file"):
        FileVideoSource(str(tmp_path / "missing.webm"))
    (tmp_path / "junk.webm").write_bytes(b"not a media file at all")
    with pytest.raises(SourceUnavailable, match="cannot open video file"):
        FileVideoSource(str(tmp_path / "junk.webm"))
    audio_only = tmp_path / "tone.webm"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=0.2", "-c:a", "libopus", str(audio_only))
    with pytest.raises(SourceUnavailable, match="has no video stream"):
        FileVideoSource(str(audio_only))


def test_the_screen_is_grabbed_through_x11grab_from_xvfb():
    display = Xvfb(require_program("Xvfb"), size="640x480x24")
    try:
        picture = Picture(display.display, 4321)
        try:
            screen = ScreenSource(display.display, fps=10)
            try:
                frames = list(itertools.islice(screen, 5))
            finally:
                screen.close()
        finally:
            picture.close()
    finally:
        display.close()
    assert {(f.width, f.height, f.format.name) for f in frames} == {(640, 480, "yuv420p")}
    assert [read_frame_number(f) for f in frames] == [4321] * 5
    assert [f.pts for f in frames] == [n * 9000 for n in range(5)]


def test_a_display_that_is_not_there():
    with pytest.raises(SourceUnavailable, match="cannot open display :86"):
        ScreenSource(":86")


@pytest.mark.parametrize("name, video_codec", [("out.webm", "vp8"), ("out.mkv", "h264")])
def test_the_recorder_writes_what_ffprobe_reads_back(tmp_path, name, video_codec):
    clock = [0.0]
    path = tmp_path / name
    recorder = FileRecorder(str(path), lambda: clock[0], 320, 240)
    video, audio = recorder.sink("video"), recorder.sink("audio")
    camera, microphone = SyntheticCamera(320, 240, 15), SyntheticMicrophone()
    for n in range(30):
        clock[0] = n / 15
        video(camera.frame(n))
        for k in range(n * 10 // 3, (n + 1) * 10 // 3):  # 50 audio frames a second
            audio(microphone.frame(k))
    recorder.close()
    streams = {s["codec_type"]: s for s in probe(path)}
    assert streams["video"]["codec_name"] == video_codec
    assert (streams["video"]["width"], streams["video"]["height"]) == (320, 240)
    assert int(streams["video"]["nb_read_frames"]) == 30
    assert streams["audio"]["codec_name"] == "opus" and int(streams["audio"]["nb_read_frames"]) >= 90
    with av.open(str(path)) as container:
        assert [read_frame_number(f) for f in container.decode(video=0)] == list(range(30))


def test_the_counter_counts_frames_samples_and_numbers():
    counter = FrameCounter(read_numbers=True)
    camera, microphone = SyntheticCamera(320, 240), SyntheticMicrophone()
    for n in (3, 4, 7):
        counter(camera.frame(n))
    counter(av.VideoFrame.from_ndarray(np.full((360, 320), 128, np.uint8), format="yuv420p"))  # not ours
    audio = FrameCounter()
    for n in range(5):
        audio(microphone.frame(n))
    discard(camera.frame(0))
    assert (counter.frames, counter.numbers, counter.unreadable, counter.in_order) == (4, [3, 4, 7], 1, True)
    assert (counter.width, counter.height) == (320, 240)
    assert (audio.frames, audio.samples) == (5, 5 * 960)
    counter(camera.frame(2))
    assert not counter.in_order
