"""The synthetic sources flash and click at the same instants: what the A/V sync measurements rely on."""

from __future__ import annotations

import numpy as np

from netcore.media.synthetic import SyntheticCamera, SyntheticMicrophone, is_flash_frame, read_flash, read_frame_number


def test_the_camera_flashes_on_the_first_frame_of_every_second_and_keeps_its_number():
    camera = SyntheticCamera(320, 240, 30, flash=True)
    flashes = [n for n in range(95) if read_flash(camera.frame(n))]
    assert flashes == [0, 30, 60, 90]
    assert all(read_frame_number(camera.frame(n)) == n for n in (0, 30, 31))
    assert not any(read_flash(SyntheticCamera(320, 240, 30).frame(n)) for n in (0, 30))
    assert [n for n in range(40) if is_flash_frame(n, 12.5)] == [0, 13, 25, 38]


def test_mark_onsets_are_found_within_a_tenth_of_a_millisecond():
    mic = SyntheticMicrophone()
    pcm = mic.samples(1234, 48_000 * 4)
    expected = [48_000 * k - 1234 for k in range(1, 5)]
    found = mic.mark_onsets(pcm)
    assert len(found) == 4
    assert np.max(np.abs(np.array(found) - expected)) <= 5  # samples
