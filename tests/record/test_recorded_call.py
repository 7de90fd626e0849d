"""A recorded 1-to-1 call between two of our peers on 127.0.0.1, made into files."""

from __future__ import annotations

import asyncio

import numpy as np

from netcore.record.creator import create_recording
from tests.record.calls import recorded_call
from tests.record.media import Decoded, ffprobe

SECONDS = 15
FPS = 15


def test_a_recorded_call_makes_a_playable_file_per_participant_with_every_frame_in_order(tmp_path):
    call = asyncio.run(recorded_call(tmp_path / "journal", SECONDS, fps=FPS))
    recording = create_recording(tmp_path / "journal", tmp_path / "out")
    assert sorted(f.participant for f in recording.files) == ["alice", "bob"]
    media_start = call.media_started - call.started  # room time the senders started
    for f in recording.files:
        probe = ffprobe(f.location)
        assert probe["format"]["format_name"] == "matroska,webm"
        assert sorted(s["codec_name"] for s in probe["streams"]) == ["opus", "vp8"]
        start, end = float(probe["format"]["start_time"]), float(probe["format"]["duration"])
        assert abs((end - start) - SECONDS) <= 0.5, probe
        # where the media starts on the room's timeline: sender reports place it at capture time
        # plus the network's delay, and a sender starved of CPU stamps its reports late
        assert 0.0 <= start <= media_start + 1.0, (probe, media_start)
        media = Decoded(f.location)
        numbers = media.numbers
        assert numbers[0] == 0 and None not in numbers
        assert all(b > a for a, b in zip(numbers, numbers[1:]))
        # every frame on an idle machine; on two cores shared with other work (load 5-8) the
        # peers lose packets on loopback and a loss costs the frames up to the next key frame
        assert len(numbers) >= 0.5 * SECONDS * FPS
        assert all(media.keyframes[i] for i in range(1, len(numbers)) if numbers[i] != numbers[i - 1] + 1)
        assert len(media.offsets()) >= SECONDS - 2
        print(f.participant, "A/V offsets (ms):", np.round(np.array(media.offsets()) * 1000, 1))
