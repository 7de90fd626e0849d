"""A journalled track's packets back into coded frames on the room's timeline.

Packets go through a :class:`~netcore.jitter.JitterBuffer` in journal
(arrival) order with their arrival times and a fixed two-second delay, so
reordered packets are put back in order and duplicates (retransmissions
that raced their original) dropped, as the receiver would have, only with
more patience.  A video frame after an unrecoverable loss is skipped until
the next key frame (the buffer's own rule), so a file never shows a frame
decoded against a missing reference.  Frames are depacketized
(:mod:`netcore.rtp.vp8`, :mod:`netcore.rtp.h264`; Opus as is) and placed by
the track's :class:`~netcore.record.timeline.TrackClock`.

Audio is placed end to end: each packet follows the previous one unless
that would put it more than half a packet away from where its clock says
(a loss, a muted period, or the sender's audio clock drifting from its
wallclock), and then it is placed where its clock says, or dropped when
that is behind the previous packet.  A player that plays audio packets one
after another therefore stays within half a packet of the timeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netcore.jitter import JitterBuffer, JitterConfig
from netcore.record.journal import RecordKind
from netcore.record.manifest import Codec
from netcore.record.reader import TrackRecords
from netcore.record.timeline import TrackClock
from netcore.rtp.errors import RtpParseError
from netcore.rtp.h264 import h264_depacketize, h264_frame_is_keyframe, h264_is_keyframe
from netcore.rtp.opus import opus_duration
from netcore.rtp.packet import RtpPacket
from netcore.rtp.sequence import TimestampUnwrapper
from netcore.rtp.vp8 import vp8_depacketize, vp8_is_keyframe, vp8_starts_frame

__all__ = ["CodedFrame", "TrackFrames", "unwrapped_times", "track_frames", "REORDER_DELAY"]

REORDER_DELAY = 2.0  # seconds a packet may come late and still take its place


@dataclass(slots=True)
class CodedFrame:
    time: float  # room time, seconds
    data: bytes
    keyframe: bool
    duration: float


@dataclass(slots=True)
class TrackFrames:
    frames: list[CodedFrame] = field(default_factory=list)
    frames_skipped: int = 0  # lost, or undecodable until the next key frame
    packets_duplicate: int = 0
    packets_lost: int = 0
    audio_dropped: int = 0  # audio packets dropped to stay on the timeline (clock drift)
    malformed: int = 0


def unwrapped_times(records: TrackRecords) -> tuple[list[int], list[int]]:
    """Unwrapped RTP timestamps of the packets and of the sender reports, one unwrapper in journal order."""
    unwrapper = TimestampUnwrapper()
    packets = [0] * len(records.packets)
    reports = [0] * len(records.reports)
    for kind, index in records.order:
        if kind == RecordKind.RTP:
            data = records.packets[index][1]
            packets[index] = unwrapper.unwrap(int.from_bytes(data[4:8], "big"))
        else:
            reports[index] = unwrapper.unwrap(records.reports[index][1].rtp_timestamp)
    return packets, reports


def _buffer(codec: Codec) -> JitterBuffer:
    name = codec.name.upper()
    video = codec.kind == "video"
    config = JitterConfig(codec.clock_rate, video=video, min_delay=REORDER_DELAY, max_delay=REORDER_DELAY,
                          initial_delay=REORDER_DELAY, nack=None, max_packets=100_000, max_bytes=256 << 20)
    if name == "VP8":
        return JitterBuffer(config, is_keyframe=vp8_is_keyframe, is_frame_start=vp8_starts_frame)
    if name == "H264":
        return JitterBuffer(config, is_keyframe=h264_is_keyframe)
    return JitterBuffer(config)


def track_frames(records: TrackRecords, codec: Codec, clock: TrackClock) -> TrackFrames:
    """The track's coded frames in order, each at its room time."""
    out = TrackFrames()
    buffer = _buffer(codec)
    unwrapper = TimestampUnwrapper()
    placer = _AudioPlacer(out) if codec.kind == "audio" else None
    name = codec.name.upper()

    def drain(now: float) -> None:
        while (frame := buffer.pop(now)) is not None:
            time = clock.to_room(unwrapper.unwrap(frame.timestamp))
            if placer is not None:
                for packet in frame.packets:
                    placer.place(packet.payload, time, codec.clock_rate)
                continue
            try:
                if name == "VP8":
                    data = vp8_depacketize(frame.payloads)
                    keyframe = frame.keyframe
                else:
                    data = h264_depacketize(frame.payloads)
                    keyframe = h264_frame_is_keyframe(frame.payloads)
            except RtpParseError:
                out.malformed += 1
                continue
            out.frames.append(CodedFrame(time, data, keyframe, 0.0))

    last = 0.0
    for arrival, data in records.packets:
        try:
            packet = RtpPacket.parse(data)
        except RtpParseError:
            out.malformed += 1
            continue
        if packet.payload_type != codec.payload_type:
            continue  # another codec of the m-section, or padding-only RTX leftovers
        buffer.insert(packet, arrival)
        last = max(last, arrival)
        drain(arrival)
    drain(last + 3600.0)
    metrics = buffer.metrics
    out.frames_skipped = metrics.frames_skipped
    out.packets_duplicate = metrics.packets_duplicate
    out.packets_lost = metrics.packets_lost
    _set_video_durations(out.frames)
    return out


def _set_video_durations(frames: list[CodedFrame]) -> None:
    for frame, following in zip(frames, frames[1:]):
        frame.duration = max(0.0, following.time - frame.time)
    if frames and not frames[-1].duration:
        frames[-1].duration = frames[-2].duration if len(frames) > 1 else 1 / 30


class _AudioPlacer:
    """Audio packets end to end, within half a packet of their clock (see the module docstring)."""

    def __init__(self, out: TrackFrames) -> None:
        self.out = out
        self.next_time: float | None = None

    def place(self, payload: bytes, time: float, clock_rate: int) -> None:
        try:
            duration = opus_duration(payload) / clock_rate
        except RtpParseError:
            self.out.malformed += 1
            return
        expected = self.next_time
        if expected is not None:
            error = expected - time
            if abs(error) <= duration / 2:
                time = expected
            elif error > 0:
                self.out.audio_dropped += 1  # behind the previous packet: its clock ran fast
                return
        self.out.frames.append(CodedFrame(time, payload, True, duration))
        self.next_time = time + duration
