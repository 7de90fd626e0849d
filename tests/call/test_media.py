"""``netcore-call`` with other sources and a recording: the screen (``--screen``, an Xvfb display the
test starts showing a synthetic picture), a media file (``--video-file``), and ``--record``."""

from __future__ import annotations

import av

from netcore.media.synthetic import read_frame_number
from tests.browsers.firefox import Xvfb
from tests.call.conftest import Cli, users
from tests.conftest import require_program
from tests.media.screen import Picture
from tests.media.test_sources_sinks import probe, synthetic_file

# Frames (and audio frames) each check wants at least, of the 50-75 sent in 5 s: on a machine
# loaded many times over its cores the senders fall behind their frame rate.
FRAMES = 8


def call(tmp_path, url, names, caller_args, callee_args) -> tuple[dict, dict]:
    alice, bob = names("alice"), names("bob")
    users(url, alice, bob)
    callee = Cli(tmp_path, url, bob, *callee_args, "answer", "--wait", "60")
    callee.expect("waiting for a call")
    a = Cli(tmp_path, url, alice, *caller_args, "call", bob, "--duration", "5").finish()
    b = callee.finish()
    assert a.code == 0, a.stderr
    assert b.code == 0, b.stderr
    return a.summary, b.summary


def recorded_numbers(path) -> list[int | None]:
    with av.open(str(path)) as container:
        return [read_frame_number(f) for f in container.decode(video=0)]


def test_screen_share_from_an_xvfb_display_is_decoded_and_recorded(tmp_path, signal, names):
    display = Xvfb(require_program("Xvfb"), size="320x240x24")
    recording = tmp_path / "screen.webm"
    try:
        picture = Picture(display.display, 777, 320, 240)
        try:
            a, b = call(tmp_path, signal.url, names, ("--screen", display.display, "--fps", "10"),
                        ("--size", "320x240", "--fps", "10", "--record", str(recording)))
        finally:
            picture.close()
    finally:
        display.close()
    video = b["received"]["video"]
    assert len(video["numbers"]) >= FRAMES and set(video["numbers"]) == {777}, video
    assert (video["width"], video["height"]) == (320, 240)
    assert a["received"]["video"]["in_order"] and len(a["received"]["video"]["numbers"]) >= FRAMES
    streams = {s["codec_type"]: s for s in probe(recording)}
    assert streams["video"]["codec_name"] == "vp8" and int(streams["video"]["nb_read_frames"]) >= FRAMES
    assert streams["audio"]["codec_name"] == "opus" and int(streams["audio"]["nb_read_frames"]) >= FRAMES
    assert 777 in recorded_numbers(recording)


def test_a_video_file_is_sent_and_the_receiver_records_it(tmp_path, signal, names):
    clip = tmp_path / "numbers.webm"
    synthetic_file(clip, 150)  # 10 s at 15 fps: longer than the call, so no loop back to 0
    recording = tmp_path / "received.mkv"
    a, b = call(tmp_path, signal.url, names, ("--video-file", str(clip), "--fps", "15"),
                ("--size", "320x240", "--fps", "15", "--record", str(recording)))
    video = b["received"]["video"]
    assert len(video["numbers"]) >= FRAMES and video["in_order"] and max(video["numbers"]) < 150, video
    streams = {s["codec_type"]: s for s in probe(recording)}
    assert streams["video"]["codec_name"] == "h264" and int(streams["video"]["nb_read_frames"]) >= FRAMES
    numbers = [n for n in recorded_numbers(recording) if n is not None]
    assert len(numbers) >= FRAMES and all(y > x for x, y in zip(numbers, numbers[1:]))
