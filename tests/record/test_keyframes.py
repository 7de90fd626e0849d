"""When the recorder asks for a key frame, on a fake clock."""

from __future__ import annotations

from netcore.record.keyframes import KeyFramePolicy


def requests(policy: KeyFramePolicy, until: float, step: float = 0.1, keyframes_at=()) -> list[float]:
    out, now = [], 0.0
    keyframes = sorted(keyframes_at)
    while now <= until + 1e-9:
        while keyframes and keyframes[0] <= now + 1e-9:
            policy.packet(True, keyframes.pop(0))
        policy.packet(False, now)
        if policy.poll_request(now):
            out.append(round(now, 3))
        now = round(now + step, 3)
    return out


def test_a_key_frame_is_requested_when_recording_starts():
    policy = KeyFramePolicy(interval=5.0, retry=1.0)
    policy.start(0.0)
    assert policy.next_deadline() == 0.0
    assert policy.poll_request(0.0)
    assert not policy.poll_request(0.5)


def test_no_request_while_key_frames_keep_coming():
    policy = KeyFramePolicy(interval=5.0, retry=1.0)
    policy.start(0.0)
    assert requests(policy, 20.0, keyframes_at=[0.05, 4.0, 8.0, 12.0, 16.0, 20.0]) == [0.0]


def test_a_track_without_a_key_frame_for_the_interval_is_asked_again_and_again_at_the_retry_pace():
    policy = KeyFramePolicy(interval=5.0, retry=1.0)
    policy.start(0.0)
    # one key frame at 0.2 s, then none: due at 5.2 s, then every second until one comes at 7.5 s
    got = requests(policy, 14.0, keyframes_at=[0.2, 7.5])
    assert got == [0.0, 5.2, 6.2, 7.2, 12.5, 13.5]
    assert policy.requests == len(got)


def test_nothing_happens_before_recording_starts():
    policy = KeyFramePolicy()
    policy.packet(False, 1.0)
    assert policy.next_deadline() is None and not policy.poll_request(100.0)
