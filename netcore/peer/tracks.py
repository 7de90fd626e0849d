"""Media tracks of a peer connection: local sources that encode, remote tracks that decode.

A :class:`LocalVideoTrack` or :class:`LocalAudioTrack` is a source of raw
PyAV frames (``pts`` in the RTP clock: 90 kHz video, 48 kHz samples for
audio), for instance :class:`~netcore.media.synthetic.SyntheticCamera` or
any iterator of frames. The peer connection gives each sending m-section an
:class:`RtpSender`, which encodes the track's frames with
:mod:`netcore.media.codecs` and turns them into RTP packets of its SSRC:
the encoder follows the transport's target bitrate (``BitrateChanged``)
and key frame requests (``KeyFrameRequested``), never above the negotiated
capability limits (``NegotiatedMedia.limits``: bitrate, resolution, frame
rate).

A :class:`RemoteTrack` is what the peer sends on one m-section; its
:class:`RtpReceiver` puts the transport's ``RtpReceived`` packets through a
:class:`~netcore.jitter.JitterBuffer` (NACK is the transport's job, so the
buffer's NACK requests are dropped; it tracks the gaps to hold a frame for
what is still coming), decodes the frames it pops and hands them to the
track's sinks (``track.on_frame(callback)``), counting them.

These classes are sans-IO too: the peer connection calls ``encode`` when a
frame is due and ``insert``/``pop`` with the loop's time.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import av

from netcore.errors import UsageError
from netcore.jitter import Frame, JitterBuffer, JitterConfig, KeyFrameRequested, NackConfig
from netcore.media.codecs import AudioDecoder, AudioEncoder, EncodedFrame, VideoDecoder, VideoEncoder
from netcore.media.synthetic import SyntheticCamera, SyntheticMicrophone
from netcore.rtp.h264 import h264_is_keyframe
from netcore.rtp.opus import OPUS_CLOCK_RATE
from netcore.rtp.packet import RtpPacket
from netcore.rtp.vp8 import vp8_is_keyframe, vp8_starts_frame

__all__ = ["LocalVideoTrack", "LocalAudioTrack", "CodedVideoTrack", "CodedFrames", "RemoteTrack", "RtpSender",
           "RtpReceiver", "SenderLimits"]

AUDIO_BITRATE = 32_000  # Opus voice; the rest of the target goes to video
# The share of the target the encoders get: the rest is for retransmissions, key frames over
# their average and packet overhead. At the whole target a 300 kbit/s link stayed full and lost
# 5-10 % for seconds after a drop (the encoder overshoots its rate by about 10 %).
ENCODER_SHARE = 0.9
AUDIO_FRAME = 0.02  # seconds of audio per Opus packet


class _LocalTrack:
    kind = ""

    def __init__(self, frames: Iterable[av.frame.Frame], fps: float, count: int | None) -> None:
        self._frames: Iterator = iter(frames) if count is None else itertools.islice(frames, count)
        self.fps = fps
        self.ended = False

    def next_frame(self):
        """The next raw frame, or None once the source is exhausted (the track then ends)."""
        frame = next(self._frames, None)
        if frame is None:
            self.ended = True
        return frame

    def skip(self) -> bool:
        """Drop the next frame unsent (the sender fell behind); False once the source is exhausted."""
        return self.next_frame() is not None


class LocalVideoTrack(_LocalTrack):
    """Video frames from a source: a :class:`SyntheticCamera` (``count`` frames) or an iterator of frames."""

    kind = "video"

    def __init__(self, source: SyntheticCamera | Iterable[av.VideoFrame], *, count: int | None = None,
                 fps: float | None = None) -> None:
        if isinstance(source, SyntheticCamera):
            camera = source
            super().__init__((camera.frame(n) for n in itertools.count()), fps or camera.fps, count)
        else:
            super().__init__(source, fps or 30.0, count)


class LocalAudioTrack(_LocalTrack):
    """Audio frames of 20 ms from a :class:`SyntheticMicrophone` or an iterator of frames."""

    kind = "audio"

    def __init__(self, source: SyntheticMicrophone | Iterable[av.AudioFrame], *, count: int | None = None) -> None:
        if isinstance(source, SyntheticMicrophone):
            microphone = source
            super().__init__((microphone.frame(n) for n in itertools.count()), 1 / AUDIO_FRAME, count)
        else:
            super().__init__(source, 1 / AUDIO_FRAME, count)


@dataclass(frozen=True, slots=True)
class CodedFrames:
    """What a :class:`CodedVideoTrack` gives its sender per tick: frames coded elsewhere, each with the
    instant (the loop's clock) its picture was captured, None when unknown (the tick's time is used)."""

    frames: tuple[EncodedFrame, ...]
    captured: tuple[float | None, ...]


class CodedVideoTrack:
    """Video coded elsewhere (a transcoder's rendition), sent as it is: no encoder of the sender's own.

    :meth:`put` queues a coded frame; the sender takes what is queued every
    ``1 / poll_rate`` seconds (a frame waits at most that long). The frames'
    RTP timestamps are kept (offset by the sender's random base, as any
    track's), so a rendition stays on its source's clock. ``codec`` must be the
    codec the connection negotiates for the section. Key frame requests from
    the receiver (PLI, FIR) go to ``on_keyframe_request``; a bitrate change
    from the transport is not followed (the frames' producer sets their bitrate).
    """

    kind = "video"

    def __init__(self, codec: str, *, on_keyframe_request: Callable[[], None] | None = None,
                 poll_rate: float = 100.0, max_queued: int = 30) -> None:
        self.codec = codec.upper()
        self.fps = poll_rate  # how often the sender's loop asks (the peer connection paces by fps)
        self.ended = False
        self.on_keyframe_request = on_keyframe_request
        self.max_queued = max_queued
        self.frames_dropped = 0  # put while max_queued were waiting (nobody sending)
        self._queue: list[tuple[EncodedFrame, float | None]] = []

    def put(self, frame: EncodedFrame, captured: float | None = None) -> None:
        if len(self._queue) >= self.max_queued:
            self._queue.pop(0)
            self.frames_dropped += 1
        self._queue.append((frame, captured))

    def end(self) -> None:
        """No more frames: the sender stops once the queue is sent."""
        self.ended = True

    def next_frame(self) -> CodedFrames | None:
        if not self._queue and self.ended:
            return None
        queued, self._queue = self._queue, []
        return CodedFrames(tuple(f for f, _ in queued), tuple(c for _, c in queued))

    def skip(self) -> bool:
        """A late loop skips nothing here: what is queued goes at the next tick."""
        return not self.ended


class RemoteTrack:
    """Media the peer sends on one m-section: decoded frames go to the sinks, and are counted."""

    def __init__(self, kind: str, mid: str) -> None:
        self.kind = kind
        self.mid = mid
        self.frames_received = 0
        self._sinks: list[Callable[[av.frame.Frame], None]] = []
        self.coded_sinks: list[Callable[[str, Any, float], None]] = []

    def on_frame(self, sink: Callable[[av.frame.Frame], None]) -> Callable[[av.frame.Frame], None]:
        """Call ``sink(frame)`` for every decoded frame (usable as a decorator)."""
        self._sinks.append(sink)
        return sink

    def on_coded(self, sink: Callable[[str, Any, float], None]) -> Callable[[str, Any, float], None]:
        """Call ``sink(codec, frame, now)`` for every coded frame the jitter buffer lets out (a
        :class:`netcore.jitter.buffer.Frame`, before decoding: a transcoder's input); a track with
        coded sinks only is not decoded at all."""
        self.coded_sinks.append(sink)
        return sink

    def deliver(self, frame: av.frame.Frame) -> None:
        self.frames_received += 1
        for sink in self._sinks:
            sink(frame)


@dataclass(frozen=True, slots=True)
class SenderLimits:
    """The negotiated ceiling of one sending m-section (None: no limit stated)."""

    max_bitrate: int | None = None
    max_width: int | None = None
    max_height: int | None = None
    max_framerate: float | None = None

    @classmethod
    def from_limits(cls, limits) -> SenderLimits:
        width, height = limits.max_width, limits.max_height
        if limits.max_fs is not None and width is None:
            # RFC 7741 section 6.1: max-fs in 16x16 macroblocks; keep 4:3 within it
            side = int((limits.max_fs * 256 / 12) ** 0.5)
            width, height = side * 4, side * 3
        return cls(limits.max_bitrate, width, height, limits.max_framerate)

    def bitrate(self, wanted: float) -> int:
        return int(wanted if self.max_bitrate is None else min(wanted, self.max_bitrate))


class RtpSender:
    """One sending m-section: a track's frames to RTP packets of ``ssrc``."""

    def __init__(self, track: _LocalTrack | CodedVideoTrack, *, mid: str, ssrc: int, payload_type: int, codec: str,
                 limits: SenderLimits, random: Callable[[int], bytes], bitrate: float,
                 max_payload_size: int = 1200, temporal_layers: int = 1) -> None:
        self.track = track
        self.mid = mid
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.codec = codec
        self.limits = limits
        self.kind = track.kind
        self._sequence = int.from_bytes(random(2), "big")
        self._timestamp_offset = int.from_bytes(random(4), "big")
        self.frames_encoded = 0
        self.frames_skipped = 0  # frames the track made that the sender dropped, being late
        self.keyframes_requested = 0  # KeyFrameRequested for our SSRC (a PLI or FIR arrived)
        self.keyframes_answered = 0  # ... answered by the next frame being a key frame
        self._keyframe_pending = False
        # (RTP timestamp, sampling instant) of the last frame encoded, when encode_next was told
        # when it took the frame: what the transport's sender reports extrapolate from.
        self.last_capture: tuple[int, float] | None = None
        if isinstance(track, CodedVideoTrack) and track.codec != codec.upper():
            raise UsageError(f"a track coded as {track.codec} cannot be sent as {codec}")
        if self.kind == "video":
            if codec.upper() not in ("VP8", "H264"):
                raise UsageError(f"cannot encode video as {codec}")
            self.encoder: VideoEncoder | AudioEncoder = VideoEncoder(
                codec.upper(), target_bitrate=self._video_bitrate(bitrate),
                max_width=limits.max_width or 1280, max_height=limits.max_height or 720,
                max_fps=min(limits.max_framerate or 30.0, 60.0), max_payload_size=max_payload_size,
                temporal_layers=temporal_layers if codec.upper() == "VP8" else 1)
        else:
            if codec.lower() != "opus":
                raise UsageError(f"cannot encode audio as {codec}")
            self.encoder = AudioEncoder(target_bitrate=limits.bitrate(AUDIO_BITRATE))

    def _video_bitrate(self, target: float, video_senders: int = 1) -> int:
        return max(30_000, self.limits.bitrate((ENCODER_SHARE * target - AUDIO_BITRATE) / max(1, video_senders)))

    @property
    def senders(self) -> list[RtpSender]:
        """The senders of this track's streams: this one (a simulcast track has one per layer)."""
        return [self]

    def video_share(self, target: float, video_senders: int = 1) -> int:
        """What one video track gets of the transport's ``target`` (a simulcast track splits it)."""
        return self._video_bitrate(target, video_senders)

    def set_bitrate(self, bitrate: int) -> None:
        """Encode at ``bitrate`` (a simulcast layer's part of its track's share)."""
        if isinstance(self.encoder, VideoEncoder):
            self.encoder.set_target_bitrate(self.limits.bitrate(bitrate))

    @property
    def target_bitrate(self) -> int:
        return int(self.encoder.target_bitrate)

    def bitrate_changed(self, target: float, video_senders: int = 1) -> None:
        """The transport's target moved (``BitrateChanged``): video takes what audio leaves, in equal
        shares when ``video_senders`` video tracks are sent (a camera and a screen share)."""
        if isinstance(self.encoder, VideoEncoder):
            self.encoder.set_target_bitrate(self._video_bitrate(target, video_senders))

    def keyframe_requested(self) -> None:
        if isinstance(self.encoder, VideoEncoder):
            self.keyframes_requested += 1
            self._keyframe_pending = True
            self.encoder.request_keyframe()
            if isinstance(self.track, CodedVideoTrack) and self.track.on_keyframe_request is not None:
                self.track.on_keyframe_request()

    def encode_next(self, capture_time: float | None = None) -> list[RtpPacket] | None:
        """Encode the track's next frame into packets; None when the track has ended.

        ``capture_time``: when the frame is taken from the track (the caller's clock); the
        frames' sampling instants then go to :attr:`last_capture`.
        """
        frame = self.track.next_frame()
        if frame is None:
            return None
        return self.encode(frame, capture_time)

    def encode(self, frame, capture_time: float | None = None) -> list[RtpPacket]:
        """Encode one raw frame into packets (a simulcast layer is given the track's frame);
        ``capture_time`` as for :meth:`encode_next`."""
        captured: tuple[float | None, ...] = ()
        if isinstance(frame, CodedFrames):  # coded elsewhere: sent as it is
            frames, captured = list(frame.frames), frame.captured
        elif isinstance(self.encoder, VideoEncoder):
            encoded = self.encoder.encode(frame)
            frames = [encoded] if encoded is not None else []
        else:
            frames = self.encoder.encode(frame)
        packets = []
        for i, encoded in enumerate(frames):
            self.frames_encoded += 1
            if self._keyframe_pending:
                self._keyframe_pending = False
                self.keyframes_answered += encoded.keyframe
            timestamp = (encoded.timestamp + self._timestamp_offset) & 0xFFFFFFFF
            if captured:  # the producer knows when its picture was taken, else the tick's time
                at = captured[i] if captured[i] is not None else capture_time
                if at is not None:
                    self.last_capture = (timestamp, at)
            elif capture_time is not None:
                self.last_capture = (timestamp, capture_time + self._since_frame(encoded.timestamp, frame))
            last = len(encoded.payloads) - 1
            for i, payload in enumerate(encoded.payloads):
                packets.append(RtpPacket.build(
                    payload_type=self.payload_type, sequence_number=self._sequence, timestamp=timestamp,
                    ssrc=self.ssrc, payload=payload,
                    # RFC 7587 section 4.1: audio sets no marker except after silence
                    marker=i == last and self.kind == "video"))
                self._sequence = (self._sequence + 1) & 0xFFFF
        return packets

    def _since_frame(self, timestamp: int, frame: av.frame.Frame) -> float:
        """Seconds from the raw frame's start to the coded frame's ``timestamp``: 0 for video; for
        Opus minus its lookahead (FFmpeg stamps the first packet 312 samples before the input)."""
        pts, time_base = frame.pts, frame.time_base  # PyAV makes a new Fraction per read of time_base
        if pts is None or time_base is None:
            return 0.0
        clock = self._clock_rate
        # round(pts * time_base * clock) in integers (half to even, as Fraction rounds): Fraction
        # arithmetic was a tenth of an audio frame's sending on the loop.
        start, twice_rest = divmod(pts * time_base.numerator * clock, time_base.denominator)
        twice_rest *= 2
        if twice_rest > time_base.denominator or (twice_rest == time_base.denominator and start % 2):
            start += 1
        return (((timestamp - start) + 0x80000000) % 0x100000000 - 0x80000000) / clock

    @property
    def _clock_rate(self) -> int:
        return 90_000 if self.kind == "video" else OPUS_CLOCK_RATE


class RtpReceiver:
    """One receiving m-section: packets through a jitter buffer and a decoder to a :class:`RemoteTrack`.

    ``codecs`` maps each agreed payload type to ``(name, clock_rate)``; the
    jitter buffer and decoder are made for the payload type the peer
    actually sends (and made again if it switches).
    """

    def __init__(self, track: RemoteTrack, codecs: dict[int, tuple[str, int]]) -> None:
        self.track = track
        self.codecs = codecs
        self.payload_type: int | None = None
        self.codec = ""
        self.clock_rate = 90_000 if track.kind == "video" else 48_000
        self.ssrc: int | None = None
        self.bytes_received = 0
        self.jitter: JitterBuffer = JitterBuffer(JitterConfig(self.clock_rate, video=False, nack=None))
        self.decoder: VideoDecoder | AudioDecoder | None = None
        self._decoded_before = 0  # frames of decoders replaced by a payload type switch
        self.unknown_payload_types = 0

    def _switch(self, payload_type: int) -> bool:
        name, clock_rate = self.codecs[payload_type]
        self._decoded_before += self.frames_decoded
        self.payload_type, self.codec, self.clock_rate = payload_type, name.upper(), clock_rate
        if self.track.kind == "video":
            if self.codec not in ("VP8", "H264"):
                return False
            keyframe = vp8_is_keyframe if self.codec == "VP8" else h264_is_keyframe
            starts = vp8_starts_frame if self.codec == "VP8" else None
            # The buffer tracks the gaps as the transport does (its NackRequested events are
            # dropped: the transport sends the NACKs), so that a frame missing a packet the
            # transport asked again for is held for it instead of skipped at its due time; a
            # frame whose tail the pacer still holds is held too (nothing after it has come).
            # No floor on the delay: a 100 ms one was three quarters of a loopback call's latency.
            self.jitter = JitterBuffer(JitterConfig(clock_rate, video=True, nack=NackConfig()),
                                       is_keyframe=keyframe, is_frame_start=starts)
            self.decoder = VideoDecoder(self.codec)
        else:
            if self.codec != "OPUS":
                return False
            self.jitter = JitterBuffer(JitterConfig(clock_rate, video=False, nack=None, max_delay=0.5))
            self.decoder = AudioDecoder()
        return True

    @property
    def frames_decoded(self) -> int:
        return self._decoded_before + (self.decoder.frames_decoded if self.decoder is not None else 0)

    def insert(self, packet: RtpPacket, now: float, retransmitted: bool | None = None) -> None:
        """Take a media packet; ``retransmitted``: it came as RTX (None: not known)."""
        if packet.payload_type != self.payload_type:
            if packet.payload_type not in self.codecs or not self._switch(packet.payload_type):
                self.unknown_payload_types += 1  # a codec we cannot decode: counted and dropped
                self.payload_type = None
                return
        self.ssrc = packet.ssrc
        self.bytes_received += len(packet.payload)
        self.jitter.insert(packet, now, retransmitted)

    def pop(self, now: float) -> None:
        """Decode and deliver every frame due at ``now``."""
        for decoder, frame in self.take(now):
            for picture in self.decode(decoder, frame):
                self.track.deliver(picture)

    def take(self, now: float) -> list[tuple[VideoDecoder | AudioDecoder, Frame]]:
        """The frames due at ``now``, each with the decoder it is for (:meth:`decode` them in order;
        the caller may do so elsewhere, then :meth:`RemoteTrack.deliver` the pictures)."""
        decoder = self.decoder
        if decoder is None:
            return []
        coded, decoded = self.track.coded_sinks, self.track._sinks
        due = []
        while (frame := self.jitter.pop(now)) is not None:
            for sink in coded:
                sink(self.codec, frame, now)
            if coded and not decoded:
                continue  # only the coded frames are wanted (a transcoding worker decodes them itself)
            due.append((decoder, frame))
        return due

    @staticmethod
    def decode(decoder: VideoDecoder | AudioDecoder, frame: Frame) -> list[av.frame.Frame]:
        """The pictures (or sample frames) of one frame :meth:`take` gave."""
        if isinstance(decoder, VideoDecoder):
            return decoder.decode(frame.payloads)
        return [f for p in frame.payloads for f in decoder.decode(p)]

    def poll_keyframe_request(self) -> bool:
        """True once per key frame request the jitter buffer raised (a frame after a gap)."""
        requested = False
        while (event := self.jitter.poll_event()) is not None:
            requested = requested or isinstance(event, KeyFrameRequested)
        return requested
