"""A/V sync of the produced files, measured every second: flash (picture) against click (sound).

Journals come from synthetic publishers (netcore.record.synthetic): real
encoders, a network with delay and jitter, sender reports from senders
whose wallclocks and audio clocks run at their own rates; no real time.
"""

from __future__ import annotations

import numpy as np
import pytest

from netcore.record.creator import create_recording
from netcore.record.synthetic import Publisher, synthesize_room
from tests.record.media import Decoded, ffprobe

LIMIT = 0.020  # seconds, |offset| at the 99th percentile


def produce(tmp_path, publishers, **kwargs):
    synthesize_room(tmp_path / "journal", publishers, **kwargs)
    recording = create_recording(tmp_path / "journal", tmp_path / "out")
    return recording, {f.participant: Decoded(f.location) for f in recording.files}


def p99(offsets) -> float:
    return float(np.percentile(np.abs(offsets), 99))


def test_two_publishers_stay_in_sync_every_second(tmp_path):
    recording, decoded = produce(tmp_path, [Publisher("alice", duration=15),
                                            Publisher("bob", duration=15, wallclock_offset=-7200.5)])
    for name, media in decoded.items():
        offsets = media.offsets()
        assert len(offsets) >= 14, name
        assert p99(offsets) <= LIMIT, (name, offsets)


def test_a_participant_ten_seconds_late_keeps_its_place_and_its_sync(tmp_path):
    recording, decoded = produce(tmp_path, [Publisher("alice", duration=20),
                                            Publisher("bob", duration=10, video_start=10.0, audio_start=10.0)])
    bob = decoded["bob"]
    assert 9.9 <= bob.video[0][0] <= 10.2  # its first frame where it joined on the room's timeline
    assert len(bob.offsets()) >= 9 and p99(bob.offsets()) <= LIMIT
    assert p99(decoded["alice"].offsets()) <= LIMIT
    # the flashes of both are whole seconds of room time apart: the files play in step
    flashes = np.array(decoded["alice"].flashes() + bob.flashes())
    assert np.max(np.abs(flashes - flashes[0] - np.round(flashes - flashes[0]))) < 0.03


def test_audio_and_video_starting_at_different_times(tmp_path):
    recording, decoded = produce(tmp_path, [Publisher("alice", duration=12, video_start=0.0, audio_start=0.37),
                                            Publisher("bob", duration=12, video_start=1.3, audio_start=0.0)])
    for name, media in decoded.items():
        assert len(media.offsets()) >= 10, name
        assert p99(media.offsets()) <= LIMIT, (name, media.offsets())


def test_ten_minutes_with_drifting_sender_clocks_do_not_drift(tmp_path):
    # the sender's wallclock runs 100 ppm fast against the recorder, its sound card 200 ppm fast
    # against its wallclock: mapped from the first sender report alone, the audio would end
    # 120 ms away from the video; muted for a minute in the middle, which must keep its place.
    minutes = 10
    recording, decoded = produce(tmp_path, [Publisher("alice", duration=60 * minutes, width=160, height=120, fps=10,
                                                      wallclock_drift=1e-4, audio_drift=2e-4,
                                                      muted=((300.0, 360.0),))])
    media = decoded["alice"]
    offsets = np.array(media.offsets())
    assert len(offsets) >= 60 * (minutes - 1) - 5
    assert p99(offsets) <= LIMIT
    assert abs(offsets[:60].mean() - offsets[-60:].mean()) < 0.005  # no drift
    probe = ffprobe(recording.files[0].location)
    assert float(probe["format"]["duration"]) == pytest.approx(60 * minutes, abs=0.5)
    # nothing was heard in the muted minute, and the clicks after it are where they belong
    clicks = np.array(media.clicks())
    assert not np.any((clicks > 301) & (clicks < 359))
    assert np.sum(clicks > 360) >= 60 * (minutes - 6) - 2
