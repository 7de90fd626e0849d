"""Frames coded elsewhere (a transcoder's renditions) go out through the peer connection's sender as they are."""

from __future__ import annotations

import itertools

import pytest

from netcore.errors import UsageError
from netcore.media.codecs import VideoEncoder
from netcore.media.synthetic import SyntheticCamera
from netcore.peer.tracks import CodedVideoTrack, RtpSender, SenderLimits


def sender_of(track: CodedVideoTrack, codec: str = "H264") -> RtpSender:
    counter = itertools.count(1)
    return RtpSender(track, mid="0", ssrc=99, payload_type=102, codec=codec, limits=SenderLimits(),
                     random=lambda n: next(counter).to_bytes(n, "big"), bitrate=1_000_000)


def coded(count: int, codec: str = "H264"):
    camera, encoder = SyntheticCamera(320, 180), VideoEncoder(codec)
    return [encoder.encode(camera.frame(n)) for n in range(count)]


def test_coded_frames_keep_their_payloads_and_timestamps_and_say_when_they_were_captured():
    requests = []
    track = CodedVideoTrack("H264", on_keyframe_request=lambda: requests.append(1))
    sender = sender_of(track)
    frames = coded(3)
    for i, frame in enumerate(frames):
        track.put(frame, captured=100.0 + i / 30)
    packets = sender.encode_next(200.0)  # the tick's time is not the frames'
    assert [p.payload for p in packets] == [bytes(x) for f in frames for x in f.payloads]
    offset = (packets[0].timestamp - frames[0].timestamp) & 0xFFFFFFFF
    assert [(p.timestamp - offset) & 0xFFFFFFFF for p in packets if p.marker] == [f.timestamp for f in frames]
    assert sender.last_capture == ((frames[2].timestamp + offset) & 0xFFFFFFFF, pytest.approx(100.0 + 2 / 30))
    assert sender.encode_next(201.0) == []  # nothing queued: nothing sent, the track goes on
    sender.keyframe_requested()
    assert requests == [1]
    track.end()
    assert sender.encode_next(202.0) is None


def test_a_coded_track_queues_a_bounded_number_of_frames_and_is_sent_only_in_its_codec():
    track = CodedVideoTrack("VP8", max_queued=2)
    for frame in coded(4, "VP8"):
        track.put(frame)
    assert track.frames_dropped == 2 and len(track.next_frame().frames) == 2
    assert track.skip() and track.next_frame().frames == ()  # a late loop loses nothing queued
    with pytest.raises(UsageError):
        sender_of(track, "H264")
