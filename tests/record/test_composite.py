"""--composite: one file of the whole call, videos in a grid, audio mixed."""

from __future__ import annotations

import av
import numpy as np

from netcore.media.synthetic import read_flash, read_frame_number
from netcore.record.composite import TILE
from netcore.record.creator import create_recording
from netcore.record.synthetic import Publisher, synthesize_room
from servers.record.main import main
from tests.record.media import Decoded, ffprobe


def tiles(path: str, count: int) -> list[list[tuple[float, int | None, bool]]]:
    """Per tile: (time, frame number, flash) of every composite frame."""
    out: list[list] = [[] for _ in range(count)]
    with av.open(path) as container:
        for frame in container.decode(video=0):
            gray = frame.to_ndarray(format="gray")
            for i in range(count):
                x, y = (i % 2) * TILE[0], (i // 2) * TILE[1]
                tile = av.VideoFrame.from_ndarray(np.ascontiguousarray(gray[y:y + TILE[1], x:x + TILE[0]]),
                                                  format="gray")
                out[i].append((float(frame.pts * frame.time_base), read_frame_number(tile), read_flash(tile)))
    return out


def test_the_composite_shows_everyone_in_their_tile_in_step_with_the_mixed_audio(tmp_path):
    synthesize_room(tmp_path / "j", [Publisher("alice", duration=6, width=320, height=240),
                                     Publisher("bob", duration=3, video_start=2, audio_start=2, width=320, height=240),
                                     Publisher("carol", duration=5, width=320, height=240)])
    assert main(["--quiet", "--composite", str(tmp_path / "j"), "--out", str(tmp_path / "out")]) == 0
    composite = next((tmp_path / "out").glob("*-composite.webm"))
    probe = ffprobe(str(composite))
    assert {(s["codec_name"], s.get("width")) for s in probe["streams"]} == {("vp8", 640), ("opus", None)}
    assert abs(float(probe["format"]["duration"]) - 6.0) < 0.5
    alice, carol, bob, empty = tiles(str(composite), 4)  # in the order they joined
    for tile in (alice, bob, carol):
        numbers = [n for _, n, _ in tile if n is not None]
        assert numbers == sorted(numbers) and len(numbers) > 0.8 * len(set(numbers)) > 0
    assert all(n is None for t, n, _ in bob if t < 1.9)  # bob joins two seconds in
    assert any(n is not None for t, n, _ in bob if 2.2 < t < 4.8)
    assert all(n is None for _, n, _ in empty)
    # every participant flashes and clicks on whole seconds: the mix's clicks meet alice's flashes
    flashes = [t for (t, _, f), (_, _, before) in zip(alice[1:], alice) if f and not before]
    clicks = np.array(Decoded(str(composite)).clicks())
    offsets = [clicks[np.argmin(np.abs(clicks - t))] - t for t in flashes]
    assert len(offsets) >= 4 and max(abs(o) for o in offsets) <= 1 / 15 + 0.02


def test_without_composite_there_is_none(tmp_path):
    synthesize_room(tmp_path / "j", [Publisher("alice", duration=2)])
    recording = create_recording(tmp_path / "j", tmp_path / "out")
    assert recording.sidecar["composite"] is None and not list((tmp_path / "out").glob("*composite*"))
