"""The transcoder: renditions show the source's pictures on the source's clock, key frames line up,
and it drops frames rather than fall behind (replayed with a clock that charges for the work)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netcore.errors import UsageError
from netcore.media.codecs import VideoDecoder, VideoEncoder
from netcore.media.synthetic import SyntheticCamera, read_frame_number
from netcore.rtp.h264 import h264_frame_is_keyframe
from netcore.rtp.packet import RtpPacket
from netcore.rtp.reports import RtcpReporter, ntp_to_seconds
from netcore.rtp.vp8 import vp8_is_keyframe
from netcore.transcode.clock import SourceClock
from netcore.transcode.core import (RenditionEncoded, SourceFrame, SourceKeyframeNeeded, Transcoder,
                                    TranscodeEvent)
from netcore.transcode.ladder import Rendition, check_ladder, codec_ladder, scaled_size, simulcast_ladder

FPS = 30


class Clock:
    """Seconds set by the test; each read also costs ``per_read`` (the work it measures takes time)."""

    def __init__(self, per_read: float = 0.0) -> None:
        self.now = 0.0
        self.per_read = per_read

    def __call__(self) -> float:
        self.now += self.per_read
        return self.now


def source_frames(count: int, *, size=(1280, 720), keyframes=(), codec="VP8", first_timestamp=0):
    """``count`` coded frames of the synthetic camera; key frames at 0 and at ``keyframes``."""
    camera = SyntheticCamera(*size)
    encoder = VideoEncoder(codec, target_bitrate=1_500_000, max_width=size[0], max_height=size[1])
    frames = []
    for number in range(count):
        if number in keyframes:
            encoder.request_keyframe()
        encoded = encoder.encode(camera.frame(number))
        assert encoded is not None
        timestamp = (first_timestamp + encoded.timestamp) & 0xFFFFFFFF
        frames.append(SourceFrame(encoded.payloads, timestamp, encoded.keyframe, number / FPS))
    return frames


def drain(transcoder: Transcoder) -> list[TranscodeEvent]:
    events = []
    while (event := transcoder.poll_event()) is not None:
        events.append(event)
    return events


def encoded(events) -> list[RenditionEncoded]:
    return [e for e in events if isinstance(e, RenditionEncoded)]


def run(transcoder: Transcoder, frames: list[SourceFrame]) -> list[TranscodeEvent]:
    events = []
    for frame in frames:
        transcoder.push(frame)
        transcoder.process()
        events += drain(transcoder)
    return events


def coded_keyframe(codec: str, payloads: list[bytes]) -> bool:
    return vp8_is_keyframe(payloads[0]) if codec == "VP8" else h264_frame_is_keyframe(payloads)


def test_every_rendition_shows_the_source_frame_numbers_at_its_own_size():
    ladder = simulcast_ladder() + codec_ladder("H264")
    transcoder = Transcoder("VP8", ladder, clock=Clock())
    events = encoded(run(transcoder, source_frames(12)))
    decoders = {r.name: VideoDecoder(r.codec) for r in ladder}
    seen: dict[str, list[tuple[int, int, int | None]]] = {r.name: [] for r in ladder}
    for event in events:
        for picture in decoders[event.rendition.name].decode(event.frame.payloads):
            seen[event.rendition.name].append((picture.width, picture.height, read_frame_number(picture)))
    assert seen["q"] == [(320, 180, n) for n in range(12)]
    assert seen["h"] == [(640, 360, n) for n in range(12)]
    assert seen["h264"] == [(1280, 720, n) for n in range(12)]
    assert transcoder.metrics.frames_decoded == 12  # decoded once for three renditions
    assert all(m.frames_encoded == 12 and m.encode_seconds >= 0 for m in transcoder.metrics.renditions.values())


def test_an_h264_source_becomes_vp8():
    transcoder = Transcoder("H264", codec_ladder("VP8"), clock=Clock())
    events = encoded(run(transcoder, source_frames(6, size=(640, 360), codec="H264")))
    decoder = VideoDecoder("VP8")
    numbers = [read_frame_number(p) for e in events for p in decoder.decode(e.frame.payloads)]
    assert numbers == list(range(6))


def test_rendition_timestamps_are_the_source_timestamps_across_a_wrap():
    first = 0xFFFFFFFF - 4 * 3000  # the source's clock wraps at its 5th frame
    frames = source_frames(10, size=(640, 360), first_timestamp=first)
    transcoder = Transcoder("VP8", simulcast_ladder(), clock=Clock())
    events = encoded(run(transcoder, frames))
    for name in ("q", "h"):
        assert [e.frame.timestamp for e in events if e.rendition.name == name] == [f.timestamp for f in frames]
    assert frames[5].timestamp < frames[4].timestamp  # it did wrap


def test_rendition_sender_reports_put_its_timestamps_at_the_source_wallclock():
    wallclock_offset = 1_700_000_000.0
    frames = source_frames(8, size=(640, 360), first_timestamp=123_456_789)
    # The publisher's SR: frame 0 sampled at t = 10.0 (its clock), report sent at 10.2.
    publisher = RtcpReporter(ssrc=1, clock_rate=90_000, wallclock_offset=wallclock_offset)
    publisher.media_captured(frames[0].timestamp, 10.0)
    publisher.handle_rtp_sent(RtpPacket.build(payload_type=96, sequence_number=1, timestamp=frames[0].timestamp,
                                              ssrc=1, payload=b"x"), 10.0)
    source_sr = publisher.report(10.2)
    # The transcoding worker (its own monotonic clock: 500 s behind, same wallclock) hears it.
    worker_offset = wallclock_offset + 500.0
    heard = RtcpReporter(ssrc=2, clock_rate=90_000, wallclock_offset=worker_offset)
    heard.handle_rtcp([source_sr], now=-489.7)
    source_clock = SourceClock()
    source_clock.sender_report(heard.mapping(1))

    transcoder = Transcoder("VP8", codec_ladder("H264", height=360), clock=Clock())
    rendition = RtcpReporter(ssrc=3, clock_rate=90_000, wallclock_offset=worker_offset)
    for event in encoded(run(transcoder, frames)):
        timestamp = event.frame.timestamp
        rendition.media_captured(timestamp, source_clock.capture_time(timestamp, worker_offset))
        rendition.handle_rtp_sent(RtpPacket.build(payload_type=102, sequence_number=1, timestamp=timestamp,
                                                  ssrc=3, payload=b"x"), -489.5)
    rendition_sr = rendition.report(-489.4)
    # Both SRs lie on one line of wallclock against RTP time: the source's.
    mapping = heard.mapping(1)
    assert abs(((mapping.to_rtp(ntp_to_seconds(rendition_sr.ntp_timestamp)) - rendition_sr.rtp_timestamp
                 + 0x80000000) & 0xFFFFFFFF) - 0x80000000) <= 1
    assert source_clock.capture_time(frames[3].timestamp, worker_offset) == pytest.approx(-490.0 + 0.1)


def test_renditions_make_key_frames_where_the_source_does():
    frames = source_frames(40, size=(640, 360), keyframes=(17, 31))
    ladder = simulcast_ladder() + codec_ladder("H264", height=360)
    transcoder = Transcoder("VP8", ladder, clock=Clock())
    events = encoded(run(transcoder, frames))
    source_keys = [f.timestamp for f in frames if f.keyframe]
    assert source_keys == [frames[n].timestamp for n in (0, 17, 31)]
    for rendition in ladder:
        ours = [e for e in events if e.rendition == rendition]
        assert [e.frame.timestamp for e in ours if e.frame.keyframe] == source_keys
        assert all(coded_keyframe(rendition.codec, e.frame.payloads) == e.frame.keyframe for e in ours)


def test_a_keyframe_request_on_a_rendition_forces_one_on_that_encoder_only():
    frames = source_frames(12, size=(640, 360))
    transcoder = Transcoder("VP8", simulcast_ladder(), clock=Clock())
    run(transcoder, frames[:6])
    transcoder.request_keyframe("q")
    events = encoded(run(transcoder, frames[6:8]))
    keys = {(e.rendition.name, e.frame.timestamp) for e in events if e.frame.keyframe}
    assert keys == {("q", frames[6].timestamp)}
    assert transcoder.metrics.renditions["q"].keyframes_requested == 1
    assert transcoder.metrics.renditions["q"].keyframes == 2 and transcoder.metrics.renditions["h"].keyframes == 1


def test_it_waits_for_a_key_frame_at_the_start_and_after_a_frame_it_cannot_decode():
    frames = source_frames(20, size=(640, 360), keyframes=(10,))
    transcoder = Transcoder("VP8", simulcast_ladder(), clock=Clock())
    events = run(transcoder, frames[3:6])  # joined mid-stream
    assert [e for e in events if isinstance(e, SourceKeyframeNeeded)] == [SourceKeyframeNeeded("start")]
    assert not encoded(events) and transcoder.metrics.source_frames_dropped == 3
    events = run(transcoder, frames[10:13])
    assert len(encoded(events)) == 6
    broken = SourceFrame([b"\x10\x00" + b"\xff" * 40], frames[13].timestamp, False, frames[13].arrival)
    events = run(transcoder, [broken] + frames[14:16])
    assert [e for e in events if isinstance(e, SourceKeyframeNeeded)] == [SourceKeyframeNeeded("decode_error")]
    assert not encoded(events) and transcoder.metrics.decode_errors == 1


def replay(transcoder: Transcoder, frames: list[SourceFrame], clock: Clock):
    """Frames arrive at their times while the transcoder works; the clock moves only by its work or idling."""
    events, depths, i = [], [], 0
    while i < len(frames) or transcoder.metrics.queue_depth:
        while i < len(frames) and frames[i].arrival <= clock.now:
            transcoder.push(frames[i])
            depths.append(transcoder.metrics.queue_depth)
            i += 1
        if not transcoder.process_next():
            if i == len(frames):
                break
            clock.now = frames[i].arrival  # idle until the next frame
        events += drain(transcoder)
    return events, depths


def test_behind_real_time_renditions_skip_frames_instead_of_queueing_them():
    frames = source_frames(90, size=(640, 360), keyframes=(45,))
    clock = Clock(per_read=0.01)  # a decode costs 0.03 s (real time: 0.033), a whole frame ~0.1 s
    transcoder = Transcoder("VP8", simulcast_ladder(), clock=clock, max_delay=0.05)
    events, depths = replay(transcoder, frames, clock)
    metrics = transcoder.metrics
    assert metrics.frames_decoded == 90 and metrics.source_frames_dropped == 0
    assert max(depths) <= 4 and metrics.max_queue_depth <= 4
    decoder = VideoDecoder("VP8")
    for name, rendition_metrics in metrics.renditions.items():
        ours = [e for e in encoded(events) if e.rendition.name == name]
        assert rendition_metrics.frames_dropped > 30
        assert rendition_metrics.frames_encoded + rendition_metrics.frames_dropped == 90
        assert max(e.latency for e in ours) < 0.05 + 0.15  # its delay allowance and one frame of work
        if name == "q":
            numbers = [read_frame_number(p) for e in ours for p in decoder.decode(e.frame.payloads)]
            assert numbers == sorted(numbers) and None not in numbers and {0, 45} <= set(numbers)
        # the source's key frames are never among those skipped, and stay key frames
        assert {e.frame.timestamp for e in ours if e.frame.keyframe} == {frames[0].timestamp, frames[45].timestamp}


def test_when_decoding_falls_behind_it_discards_the_queue_and_asks_for_a_key_frame():
    frames = source_frames(60, size=(640, 360), keyframes=(40,))
    clock = Clock(per_read=0.02)  # even decoding alone (0.06 s) is slower than the source
    transcoder = Transcoder("VP8", simulcast_ladder(), clock=clock, max_queue=8)
    events, depths = replay(transcoder, frames, clock)
    assert max(depths) <= 8
    assert SourceKeyframeNeeded("overload") in events
    metrics = transcoder.metrics
    assert metrics.source_frames_dropped > 0
    assert metrics.frames_decoded + metrics.source_frames_dropped == 60
    after = [e for e in encoded(events) if e.frame.timestamp >= frames[40].timestamp]
    assert after and after[0].frame.timestamp == frames[40].timestamp and after[0].frame.keyframe


def test_ladders_are_checked():
    check_ladder(simulcast_ladder() + codec_ladder("H264"))
    for bad in [(), (Rendition("h"), Rendition("h")), (Rendition("a-b"),), (Rendition("x", "AV1"),),
                (Rendition("x", height=8),), (Rendition("x", bitrate=1000),)]:
        with pytest.raises(UsageError):
            Transcoder("VP8", bad, clock=Clock())


@given(st.integers(80, 4000).map(lambda v: v * 2), st.integers(80, 3000).map(lambda v: v * 2),
       st.none() | st.integers(16, 4000))
def test_scaled_sizes_are_even_never_larger_and_keep_the_aspect(width, height, target):
    w, h = scaled_size(width, height, target)
    assert w % 2 == 0 and h % 2 == 0 and w <= width and h <= height
    if target is not None and target < height:
        assert h <= target and abs(w * height - h * width) <= 2 * max(width, height)  # each side rounded by < 2
    else:
        assert (w, h) == (width, height)
