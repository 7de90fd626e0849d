"""One video track into a ladder of renditions: decode once, scale once per size, encode each rendition.

:class:`Transcoder` is sans-IO in the netcore sense: it is handed coded source
frames (the RTP payloads of one frame, as a jitter buffer releases them,
with the frame's RTP timestamp and arrival time) and gives back events; it
opens no socket and starts no task.  The work itself is CPU work (PyAV's
decoder, scaler and encoders), so it reads one injected ``clock`` to measure
that work and to know how far behind real time it is; a test passes a fake
clock and replays overload exactly.

Rules:

* **Decode once.**  Every frame queued is decoded, in order, whatever
  happens to its renditions (the frames after it refer to it).  Each
  rendition size is scaled once per frame (two renditions of one size in
  two codecs share the picture) and each rendition encoded with the
  netcore encoder (:class:`~netcore.media.codecs.VideoEncoder`).
* **Timestamps are the source's.**  A rendition frame carries the RTP
  timestamp of the source frame it was made from (the decoded picture's
  ``pts`` is the source timestamp, unwrapped), so a rendition's sender
  reports map its timestamps to the source's wallclock
  (:class:`~netcore.transcode.clock.SourceClock`) and a recording or a
  receiver keeps audio and video in sync whichever one it is sent.
* **Key frames line up.**  A source key frame forces a key frame on every
  rendition (a subscriber switched between the original and a rendition
  starts decoding at the same picture on either); a key frame request on a
  rendition (a PLI from its subscribers) forces one on that encoder only.
  A source key frame is never dropped by the rule below.
* **Drop rather than queue.**  A frame still waiting behind newer ones
  :data:`MAX_DELAY` after it arrived is decoded but not encoded (each
  rendition counts it dropped), so the renditions keep up with the source at
  a lower frame rate instead of falling further behind.  If even decoding
  falls :data:`MAX_QUEUE` frames behind, the queue is discarded and the
  transcoder waits for the source's next key frame
  (:class:`SourceKeyframeNeeded`; the caller sends the PLI), the only
  frame it can decode without the ones it threw away.  It waits for one at
  the start too, and after a frame the decoder could not decode.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

import av
from av.video.reformatter import VideoReformatter

from netcore.media.codecs import EncodedFrame, VideoDecoder, VideoEncoder
from netcore.net import Event
from netcore.rtp.sequence import TimestampUnwrapper
from netcore.transcode.ladder import Rendition, check_ladder

__all__ = ["Transcoder", "SourceFrame", "TranscodeEvent", "RenditionEncoded", "SourceKeyframeNeeded",
           "TranscodeMetrics", "RenditionMetrics", "MAX_DELAY", "MAX_QUEUE", "VIDEO_CLOCK_RATE"]

VIDEO_CLOCK_RATE = 90_000
MAX_DELAY = 0.1  # seconds a frame may wait behind newer ones before its renditions skip it
MAX_QUEUE = 30  # frames queued (a second at 30 fps) before the queue is discarded
_NO_SCALING = 1 << 14  # the encoders are given pictures already at their size


@dataclass(slots=True)
class SourceFrame:
    """One coded source frame: its RTP payloads in order, RTP timestamp, key frame or not, arrival time."""

    payloads: list[bytes]
    timestamp: int
    keyframe: bool
    arrival: float


class TranscodeEvent(Event):
    """Base of the transcoder's events."""


@dataclass(frozen=True, slots=True)
class RenditionEncoded(TranscodeEvent):
    """A rendition frame is ready: ``frame.timestamp`` is the source frame's RTP timestamp."""

    rendition: Rendition
    frame: EncodedFrame
    source_arrival: float  # when the source frame arrived
    encoded_at: float  # when this rendition's frame was ready (the transcoder's clock)

    @property
    def latency(self) -> float:
        """What the transcoder added over forwarding the source frame itself."""
        return self.encoded_at - self.source_arrival


@dataclass(frozen=True, slots=True)
class SourceKeyframeNeeded(TranscodeEvent):
    """The transcoder cannot go on without a source key frame: ``reason`` is start, decode_error or overload."""

    reason: str


@dataclass(slots=True)
class RenditionMetrics:
    """Counters of one rendition (seconds are sums; divide by the frame counts for means)."""

    frames_encoded: int = 0
    frames_dropped: int = 0  # skipped to stay real time (or above its frame-rate ceiling)
    keyframes: int = 0
    keyframes_requested: int = 0  # key frame requests on this rendition
    encode_seconds: float = 0.0
    latency_seconds: float = 0.0  # sum of RenditionEncoded.latency

    @property
    def encode_time(self) -> float:
        """Mean encoding time of a frame (seconds)."""
        return self.encode_seconds / self.frames_encoded if self.frames_encoded else 0.0

    @property
    def latency(self) -> float:
        """Mean time from a source frame's arrival to this rendition's frame (seconds)."""
        return self.latency_seconds / self.frames_encoded if self.frames_encoded else 0.0


@dataclass(slots=True)
class TranscodeMetrics:
    """Counters of one transcoder: the source side and each rendition by name."""

    frames_received: int = 0
    frames_decoded: int = 0
    decode_errors: int = 0
    source_frames_dropped: int = 0  # never decoded: queue discarded, or waiting for a key frame
    decode_seconds: float = 0.0
    scale_seconds: float = 0.0
    queue_depth: int = 0
    max_queue_depth: int = 0
    renditions: dict[str, RenditionMetrics] = field(default_factory=dict)

    @property
    def decode_time(self) -> float:
        """Mean decoding time of a frame (seconds)."""
        return self.decode_seconds / self.frames_decoded if self.frames_decoded else 0.0


class _Output:
    """One rendition's encoder and counters."""

    __slots__ = ("rendition", "encoder", "metrics")

    def __init__(self, rendition: Rendition) -> None:
        self.rendition = rendition
        self.encoder = VideoEncoder(rendition.codec, target_bitrate=rendition.bitrate, max_width=_NO_SCALING,
                                    max_height=_NO_SCALING, max_fps=rendition.max_fps)
        self.metrics = RenditionMetrics()


class Transcoder:
    """Source frames of ``source_codec`` in (:meth:`push`), rendition frames out (:meth:`poll_event`)."""

    def __init__(self, source_codec: str, renditions: tuple[Rendition, ...], *, clock: Callable[[], float],
                 max_delay: float = MAX_DELAY, max_queue: int = MAX_QUEUE) -> None:
        check_ladder(renditions)
        self.source_codec = source_codec
        self.renditions = renditions
        self.max_delay = max_delay
        self.max_queue = max_queue
        self._clock = clock
        self._decoder = VideoDecoder(source_codec)
        self._outputs = {r.name: _Output(r) for r in renditions}
        self._scalers: dict[tuple[int, int], VideoReformatter] = {}
        self._unwrapper = TimestampUnwrapper()
        self._queue: deque[tuple[SourceFrame, int]] = deque()
        self._waiting_for_keyframe = True
        self._asked = False  # a SourceKeyframeNeeded was given for the current wait
        self._events: deque[TranscodeEvent] = deque()
        self.metrics = TranscodeMetrics(renditions={r.name: self._outputs[r.name].metrics for r in renditions})

    # --- inputs --------------------------------------------------------------

    def push(self, frame: SourceFrame) -> None:
        """Queue a source frame (in decoding order); frames that cannot be decoded are dropped here."""
        metrics = self.metrics
        metrics.frames_received += 1
        if self._waiting_for_keyframe and not frame.keyframe:
            metrics.source_frames_dropped += 1
            self._ask("start" if not metrics.frames_decoded else "decode_error")
            return
        if len(self._queue) >= self.max_queue:
            metrics.source_frames_dropped += len(self._queue)
            self._queue.clear()
            if not frame.keyframe:
                metrics.source_frames_dropped += 1
                self._waiting_for_keyframe, self._asked = True, False
                self._ask("overload")
                self._set_depth()
                return
        self._waiting_for_keyframe = False
        self._queue.append((frame, self._unwrapper.unwrap(frame.timestamp)))
        self._set_depth()

    def request_keyframe(self, name: str) -> None:
        """A key frame request on rendition ``name``: its encoder's next frame is a key frame."""
        output = self._outputs[name]
        output.metrics.keyframes_requested += 1
        output.encoder.request_keyframe()

    def set_bitrate(self, name: str, bitrate: int) -> None:
        """Encode rendition ``name`` at ``bitrate`` from now on (the encoder reopens on a large change)."""
        self._outputs[name].encoder.set_target_bitrate(bitrate)

    # --- work ------------------------------------------------------------------

    def process(self) -> int:
        """Work through the queue; the number of source frames taken from it."""
        count = 0
        while self.process_next():
            count += 1
        return count

    def process_next(self) -> bool:
        """Decode the oldest queued frame and encode its renditions (or drop them); False if none was queued."""
        if not self._queue:
            return False
        frame, unwrapped = self._queue.popleft()
        self._set_depth()
        picture = self._decode(frame)
        if picture is None:
            return True
        now = self._clock()
        if self._queue and not frame.keyframe and now - frame.arrival > self.max_delay:
            for output in self._outputs.values():
                output.metrics.frames_dropped += 1
            return True
        picture.pts, picture.time_base = unwrapped, Fraction(1, VIDEO_CLOCK_RATE)
        scaled: dict[tuple[int, int], av.VideoFrame] = {}
        for output in self._outputs.values():
            if frame.keyframe:
                output.encoder.request_keyframe()  # aligned with the source's key frame
            size = output.rendition.size_for(picture.width, picture.height)
            image = scaled.get(size)
            if image is None:
                image = scaled[size] = self._scale(picture, size)
            self._encode(output, image, frame.arrival)
        return True

    def _decode(self, frame: SourceFrame) -> av.VideoFrame | None:
        metrics, decoder = self.metrics, self._decoder
        errors = decoder.errors
        start = self._clock()
        pictures = decoder.decode(frame.payloads)
        metrics.decode_seconds += self._clock() - start
        if not pictures and decoder.errors == errors:
            return None  # held by the decoder (a stream with reordering): nothing to encode yet
        if decoder.errors != errors:
            metrics.decode_errors += 1
            metrics.source_frames_dropped += len(self._queue) + 1  # they refer to the frame that failed
            self._queue.clear()
            self._set_depth()
            self._waiting_for_keyframe, self._asked = True, False
            self._ask("decode_error")
            return None
        metrics.frames_decoded += 1
        return pictures[-1]

    def _scale(self, picture: av.VideoFrame, size: tuple[int, int]) -> av.VideoFrame:
        if size == (picture.width, picture.height) and picture.format.name == "yuv420p":
            return picture
        scaler = self._scalers.get(size)
        if scaler is None:
            scaler = self._scalers[size] = VideoReformatter()
        start = self._clock()
        # one thread, as the codecs: swscale's default (one per core) only adds handoffs at these sizes
        image = scaler.reformat(picture, width=size[0], height=size[1], format="yuv420p", threads=1)
        self.metrics.scale_seconds += self._clock() - start
        image.pts, image.time_base = picture.pts, picture.time_base
        return image

    def _encode(self, output: _Output, image: av.VideoFrame, arrival: float) -> None:
        metrics = output.metrics
        start = self._clock()
        encoded = output.encoder.encode(image)
        done = self._clock()
        metrics.encode_seconds += done - start
        if encoded is None:
            metrics.frames_dropped += 1  # above the rendition's frame rate
            return
        metrics.frames_encoded += 1
        metrics.keyframes += encoded.keyframe
        metrics.latency_seconds += done - arrival
        self._events.append(RenditionEncoded(output.rendition, encoded, arrival, done))

    def _ask(self, reason: str) -> None:
        if not self._asked:
            self._asked = True
            self._events.append(SourceKeyframeNeeded(reason))

    def _set_depth(self) -> None:
        depth = self.metrics.queue_depth = len(self._queue)
        self.metrics.max_queue_depth = max(self.metrics.max_queue_depth, depth)

    # --- outputs ---------------------------------------------------------------

    def poll_event(self) -> TranscodeEvent | None:
        return self._events.popleft() if self._events else None
