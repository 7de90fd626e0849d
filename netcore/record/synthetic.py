"""A recorded room made up without real time: journals from synthetic publishers.

For tests and benchmarks of the file creator: each :class:`Publisher` codes
the synthetic camera (flashing every second) and microphone (its mark at
the same instants) with the real encoders, packetizes them, and the
packets reach a :class:`~netcore.record.logger.RoomLogger` after a
network delay with jitter (so some arrive out of order) and optional
loss, along with sender reports every ``report_interval`` seconds; the
logger's key frame requests reach the publisher's encoder a round trip
later.  Everything runs on one virtual clock (the recorder's), so ten
minutes of call take as long as the encoders need.

What a real sender does to time is modelled: its wallclock (the sender
reports' NTP) has its own offset and rate against the recorder's clock,
its audio clock its own rate against its wallclock (a sound card that is
not quite at 48 kHz: the audio's RTP time runs that much fast or slow),
RTP timestamps start at random values, audio and video may start at
different times, a publisher may join late or mute its audio for a while.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from netcore.media.codecs import AudioEncoder, VideoEncoder
from netcore.media.synthetic import SyntheticCamera, SyntheticMicrophone
from netcore.record.journal import SenderInfo
from netcore.record.logger import RoomLogger
from netcore.record.manifest import Codec
from netcore.record.writer import DirectoryStorage
from netcore.rtp.packet import RtpPacket
from netcore.rtp.reports import ntp_from_seconds

__all__ = ["Publisher", "synthesize_room", "ROOM_EPOCH"]

ROOM_EPOCH = 1_780_000_000.0  # Unix time of the recorder's clock 0 in a synthesized room
VIDEO_PT, AUDIO_PT = 96, 111


@dataclass
class Publisher:
    name: str
    duration: float = 10.0  # seconds of media from each start
    video_start: float = 0.0  # recorder time the camera starts
    audio_start: float = 0.0
    video_codec: str = "VP8"
    width: int = 160
    height: int = 120
    fps: int = 15
    wallclock_offset: float = 3600.0  # sender wallclock minus recorder clock, seconds
    wallclock_drift: float = 0.0  # sender wallclock rate minus 1 (1e-4 = 100 ppm fast)
    audio_drift: float = 0.0  # audio RTP clock rate against the sender's wallclock, minus 1
    delay: float = 0.03  # one-way network delay, seconds
    jitter: float = 0.01  # up to this much more, uniformly
    loss: float = 0.0  # share of RTP packets lost on the way
    report_interval: float = 1.0
    reports: bool = True  # False: a sender that sends no sender reports
    muted: tuple[tuple[float, float], ...] = ()  # recorder-time intervals without audio packets
    video: bool = True
    audio: bool = True


@dataclass(order=True)
class _Event:
    time: float
    order: int
    action: str = field(compare=False)
    publisher: int = field(compare=False)
    number: int = field(compare=False, default=0)


class _Sender:
    def __init__(self, pub: Publisher, rng: random.Random) -> None:
        self.pub = pub
        self.rng = rng
        self.camera = SyntheticCamera(pub.width, pub.height, pub.fps, flash=True)
        self.mic = SyntheticMicrophone()
        self.video_encoder = VideoEncoder(pub.video_codec, target_bitrate=300_000, max_width=pub.width,
                                          max_height=pub.height, max_fps=pub.fps)
        self.audio_encoder = AudioEncoder()
        self.video_ssrc, self.audio_ssrc = rng.getrandbits(32), rng.getrandbits(32)
        self.video_ts0, self.audio_ts0 = rng.getrandbits(32), rng.getrandbits(32)
        self.video_seq, self.audio_seq = rng.getrandbits(16), rng.getrandbits(16)
        self.video_track, self.audio_track = f"{pub.name}-video", f"{pub.name}-audio"
        self.first_frame = math.ceil(pub.video_start * pub.fps - 1e-9)
        self.audio_rate = 48_000 * (1 + pub.audio_drift)  # samples per second of recorder time, roughly
        self.sent_video = self.sent_audio = 0

    def wallclock(self, t: float) -> float:
        return ROOM_EPOCH + self.pub.wallclock_offset + t * (1 + self.pub.wallclock_drift)

    def arrival(self, sent: float) -> float:
        return sent + self.pub.delay + self.rng.uniform(0, self.pub.jitter)

    def video_packets(self, n: int) -> list[tuple[float, bytes]]:
        pub = self.pub
        # Frames are captured on a grid of 1/fps from recorder time 0, numbered from it: the
        # flashes fall on whole seconds of the room, where the microphone's marks are.
        number = self.first_frame + n
        capture = number / pub.fps
        encoded = self.video_encoder.encode(self.camera.frame(number))
        if encoded is None:
            return []
        # the sender's RTP clock is its wallclock at 90 kHz
        ts = (self.video_ts0 + round((self.wallclock(capture) - self.wallclock(pub.video_start)) * 90_000)) & 0xFFFFFFFF
        out = []
        for i, payload in enumerate(encoded.payloads):
            packet = RtpPacket.build(payload_type=VIDEO_PT, sequence_number=self.video_seq, timestamp=ts,
                                     ssrc=self.video_ssrc, payload=payload,
                                     marker=i == len(encoded.payloads) - 1)
            self.video_seq = (self.video_seq + 1) & 0xFFFF
            self.sent_video += 1
            out.append((self.arrival(capture + 0.005 + 0.001 * i), packet.serialize()))
        return out

    def _audio_frame(self, m: int) -> av.AudioFrame:
        # Sample s is captured at recorder time audio_start + s / audio_rate; the mark is tied to
        # true time (whole seconds), as a sound in the room would be, whatever the sound card's rate.
        s = np.arange(m * 960, (m + 1) * 960)
        t = s / self.audio_rate
        mic = self.mic
        in_mark = ((self.pub.audio_start + t) % 1.0) < mic.mark_samples / mic.sample_rate
        hz = np.where(in_mark, mic.mark_hz, mic.tone_hz)
        pcm = (mic.amplitude * np.sin(2 * np.pi * hz * t) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48_000
        frame.pts = m * 960
        frame.time_base = Fraction(1, 48_000)
        return frame

    def audio_packets(self, m: int) -> list[tuple[float, bytes]]:
        pub = self.pub
        out = []
        for encoded in self.audio_encoder.encode(self._audio_frame(m)):
            ts = (self.audio_ts0 + encoded.timestamp) & 0xFFFFFFFF
            packet = RtpPacket.build(payload_type=AUDIO_PT, sequence_number=self.audio_seq, timestamp=ts,
                                     ssrc=self.audio_ssrc, payload=encoded.payloads[0])
            self.audio_seq = (self.audio_seq + 1) & 0xFFFF
            sent = pub.audio_start + (m + 1) * 960 / self.audio_rate
            if any(a <= sent < b for a, b in pub.muted):
                continue
            self.sent_audio += 1
            out.append((self.arrival(sent), packet.serialize()))
        return out

    def reports(self, t: float) -> list[tuple[str, SenderInfo]]:
        pub = self.pub
        ntp = ntp_from_seconds(self.wallclock(t))
        out = []
        if pub.video and t >= pub.video_start:
            rtp = self.video_ts0 + round((self.wallclock(t) - self.wallclock(pub.video_start)) * 90_000)
            out.append((self.video_track, SenderInfo(self.video_ssrc, ntp, rtp & 0xFFFFFFFF, self.sent_video)))
        if pub.audio and t >= pub.audio_start:
            rtp = self.audio_ts0 + round((t - pub.audio_start) * self.audio_rate)
            out.append((self.audio_track, SenderInfo(self.audio_ssrc, ntp, rtp & 0xFFFFFFFF, self.sent_audio)))
        return out


def synthesize_room(directory: Path | str, publishers: list[Publisher], *, seed: int = 1,
                    room: str = "synthetic", keyframe_interval: float = 5.0,
                    max_segment_bytes: int = 4 << 20) -> RoomLogger:
    """Journal a room of ``publishers`` into ``directory``; returns the closed logger."""
    rng = random.Random(seed)
    logger = RoomLogger(room, DirectoryStorage(directory, max_segment_bytes), now=0.0,
                        wallclock_offset=ROOM_EPOCH, keyframe_interval=keyframe_interval, keyframe_retry=0.5)
    senders = [_Sender(p, rng) for p in publishers]
    events: list[_Event] = []
    order = 0

    def push(time: float, action: str, index: int, number: int = 0) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, _Event(time, order, action, index, number))

    for i, pub in enumerate(publishers):
        push(min(pub.video_start, pub.audio_start), "join", i)
        if pub.video:
            push(senders[i].first_frame / pub.fps, "video", i, 0)
        if pub.audio:
            push(pub.audio_start, "audio", i, 0)
        if pub.reports:
            push(min(pub.video_start, pub.audio_start) + 0.5, "report", i)
        push(max(pub.video_start, pub.audio_start) + pub.duration + 0.5, "leave", i)
    arrivals: list[tuple[float, int, str, bytes]] = []  # heap of (arrival, order, track, packet)
    rtt_pending: list[tuple[float, int]] = []  # key frame requests on their way: (when, sender)
    end = 0.0
    while events:
        event = heapq.heappop(events)
        now = event.time
        while arrivals and arrivals[0][0] <= now:
            arrival, _, track, data = heapq.heappop(arrivals)
            logger.rtp(track, data, arrival)
            while (track_id := logger.poll_keyframe_request(arrival)) is not None:
                owner = next(k for k, s in enumerate(senders) if track_id == s.video_track)
                rtt_pending.append((arrival + 2 * publishers[owner].delay, owner))
        for when, owner in [r for r in rtt_pending if r[0] <= now]:
            senders[owner].video_encoder.request_keyframe()
            rtt_pending.remove((when, owner))
        sender, pub = senders[event.publisher], publishers[event.publisher]
        if event.action == "join":
            logger.add_participant(pub.name, now)
            if pub.video:
                logger.add_track(sender.video_track, pub.name, Codec(pub.video_codec, 90_000, VIDEO_PT), now)
            if pub.audio:
                logger.add_track(sender.audio_track, pub.name, Codec("opus", 48_000, AUDIO_PT, 2,
                                                                       {"minptime": "10", "useinbandfec": "1"}), now)
            continue
        if event.action == "leave":
            for arrival, _, track, data in sorted(arrivals):
                if track.startswith(pub.name + "-"):
                    logger.rtp(track, data, arrival)
            arrivals = [a for a in arrivals if not a[2].startswith(pub.name + "-")]
            heapq.heapify(arrivals)
            logger.remove_participant(pub.name, now)
            end = max(end, now)
            continue
        if event.action == "report":
            for track, info in sender.reports(now):
                logger.sender_report(track, info, sender.arrival(now))
            if now + pub.report_interval < max(pub.video_start, pub.audio_start) + pub.duration:
                push(now + pub.report_interval * rng.uniform(0.5, 1.5), "report", event.publisher)
            continue
        if event.action == "video":
            packets = sender.video_packets(event.number)
            track = sender.video_track
            if event.number + 1 < pub.duration * pub.fps:
                push((sender.first_frame + event.number + 1) / pub.fps, "video", event.publisher, event.number + 1)
        else:
            packets = sender.audio_packets(event.number)
            track = sender.audio_track
            if (event.number + 1) * 0.02 < pub.duration:
                push(pub.audio_start + (event.number + 1) * 960 / sender.audio_rate, "audio", event.publisher,
                     event.number + 1)
        for arrival, data in packets:
            if pub.loss and rng.random() < pub.loss:
                continue
            order += 1
            heapq.heappush(arrivals, (arrival, order, track, data))
    logger.close(end)
    return logger
