"""Encoders and decoders through PyAV: Opus, VP8 and H.264, shaped for a call.

An encoder turns one raw frame into RTP payloads (packetized with the payload
formats of :mod:`netcore.rtp`) and follows what the call asks of it:

* ``target_bitrate`` -- the congestion controller's estimate within the
  negotiated limit. FFmpeg's encoders take a bitrate only when opened, so a
  change of more than :data:`REOPEN_RATIO` reopens the encoder (the next frame
  is then a key frame); smaller changes wait for the next big one, which keeps
  key frames rare while the estimate wobbles. A fall reopens at once (the link
  is full); a rise only once it has lasted :data:`RAISE_HOLD` seconds of
  frames, so an estimate climbing back after a cut costs one key frame, not
  one every 15 %.
* ``request_keyframe()`` -- a PLI or FIR from a receiver: the next frame is
  coded as a key frame (``pict_type`` I, which libvpx and libx264 honour).
* ``max_width``/``max_height``/``max_fps`` -- the capability minimum of both
  sides: a larger frame is scaled down (aspect kept, even sizes), frames
  faster than ``max_fps`` are dropped.

VP8 may be coded with two or three **temporal layers** (``temporal_layers``,
the L1T2/L1T3 of W3C ``scalabilityMode``): libvpx through FFmpeg's
``ts-parameters`` with its fixed patterns (``ts_layering_mode`` 2 and 3),
whose frames take TIDs in turn (:data:`TEMPORAL_PATTERNS`) and which starts
over at a forced key frame.  Each coded frame is told its TID and whether
it is a layer sync (it references TL0 alone, so a receiver given its layer
from there on decodes it); the packetizer writes both into the payload
descriptor, which a call server reads to drop layers for a slow receiver.
The TIDs of the patterns were checked by decoding: frames of TL0 alone, or
of TL0 and TL1, decode to the same pictures as the full stream.

Encoders are told the frame rate as well as the time base: rate control
spreads ``bit_rate`` over frames at that rate, and without it libx264 takes
the 90 kHz time base for the frame rate and starves every frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av

from netcore.errors import UsageError
from netcore.rtp.h264 import H264Packetizer, h264_depacketize, split_annexb
from netcore.rtp.opus import OPUS_CLOCK_RATE
from netcore.rtp.vp8 import Vp8Packetizer, vp8_depacketize

__all__ = [
    "EncodedFrame",
    "VideoEncoder",
    "VideoDecoder",
    "AudioEncoder",
    "AudioDecoder",
    "REOPEN_RATIO",
    "RAISE_HOLD",
    "VIDEO_CODECS",
    "TEMPORAL_PATTERNS",
]

VIDEO_CLOCK_RATE = 90_000
REOPEN_RATIO = 0.15  # reopen the encoder when the target moves by more than this share
# A target above the open encoder's rate by more than REOPEN_RATIO reopens it only after this long (in the
# frames' own clock). On a 300 kbit/s link with a 4-packet queue the estimate's additive climb after each
# cut reopened the encoder every 0.4-0.6 s: a key frame of 3-4 packets and a first second 10 % over its
# target (libvpx VBR) each time, landing just as the climb neared the link's rate.
RAISE_HOLD = 1.0
VIDEO_CODECS = ("VP8", "H264")
_ENCODERS = {"VP8": "libvpx", "H264": "libx264"}
_DECODERS = {"VP8": "vp8", "H264": "h264"}
_OPTIONS = {
    # max-intra-rate: a key frame at most 3 average frames (libwebrtc's VP8 setting). Unbounded, one
    # key frame after a reopen or a PLI took 150 kbit (0.6 s of a 250 kbit/s target) on a detailed
    # picture, and on a congested link the loss it caused asked for the next one.
    # cpu-used 15: libvpx's second fastest realtime speed. On 640x480 at 500 kbit/s it codes a frame in
    # about 55 % of speed 8's CPU time at the same quality (PSNR 56.8 against 57.0 dB on the synthetic
    # camera, 37.1 against 37.1 with grain); speed 16 drops to 53.0 dB. The encoder was over half of a
    # call peer's CPU.
    "VP8": {"deadline": "realtime", "cpu-used": "15", "lag-in-frames": "0", "error-resilient": "1",
            "max-intra-rate": "300"},
    "H264": {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline"},
}


# Temporal layers -> (FFmpeg ts_layering_mode, TID of each frame of the period, which of them are layer
# syncs, each layer's share of the bitrate with those below it). Mode 3's third frame (TL2) references
# the TL1 frame before it; its first TL2 and its TL1 reference the TL0 frame alone.
TEMPORAL_PATTERNS = {
    2: (2, (0, 1), (False, True), (0.6, 1.0)),
    3: (3, (0, 2, 1, 2), (False, True, True, False), (0.4, 0.6, 1.0)),
}


@dataclass(slots=True)
class EncodedFrame:
    """One coded frame as RTP payloads: the last one carries the marker bit."""

    payloads: list[bytes]
    timestamp: int  # in the codec's RTP clock
    keyframe: bool
    temporal_id: int | None = None  # its TID when coded with temporal layers
    layer_sync: bool = False


def _even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


class VideoEncoder:
    """VP8 or H.264 frames to RTP payloads at a bitrate the call sets."""

    def __init__(self, codec: str = "VP8", *, target_bitrate: int = 1_000_000, max_width: int = 1280,
                 max_height: int = 720, max_fps: float = 30.0, max_payload_size: int = 1200,
                 temporal_layers: int = 1) -> None:
        if codec not in _ENCODERS:
            raise UsageError(f"no encoder for {codec!r}; choose one of {', '.join(VIDEO_CODECS)}")
        if temporal_layers != 1 and (codec != "VP8" or temporal_layers not in TEMPORAL_PATTERNS):
            raise UsageError("temporal layers are 2 or 3, with VP8")
        self.temporal_layers = temporal_layers
        self._pattern_index = 0  # the next frame's place in the temporal pattern
        self.codec = codec
        self.target_bitrate = target_bitrate
        self.max_width = max_width
        self.max_height = max_height
        self.max_fps = max_fps
        self._context: av.VideoCodecContext | None = None
        self._opened_bitrate = 0
        self._raised_since: int | None = None  # pts of the first frame since the target rose past the ratio
        self._force_keyframe = True
        self._last_pts: int | None = None
        self._packetizer = (Vp8Packetizer(max_payload_size) if codec == "VP8"
                            else H264Packetizer(max_payload_size))
        self.frames_encoded = 0
        self.keyframes_encoded = 0
        self.frames_dropped = 0

    def request_keyframe(self) -> None:
        """Code the next frame as a key frame (a PLI or FIR arrived)."""
        self._force_keyframe = True

    def set_target_bitrate(self, bitrate: int) -> None:
        self.target_bitrate = max(30_000, int(bitrate))

    def encode(self, frame: av.VideoFrame) -> EncodedFrame | None:
        """Code ``frame`` (``pts`` in the 90 kHz clock); ``None`` when dropped or held by the encoder."""
        if self._last_pts is not None and frame.pts is not None:
            if frame.pts - self._last_pts < VIDEO_CLOCK_RATE / self.max_fps * 0.9:
                self.frames_dropped += 1  # faster than the negotiated frame rate
                return None
        width, height = self._size_for(frame.width, frame.height)
        context = self._context_for(width, height, frame.pts)
        if (width, height) != (frame.width, frame.height):
            scaled = frame.reformat(width=width, height=height, format="yuv420p")
            scaled.pts, scaled.time_base = frame.pts, frame.time_base
            frame = scaled
        elif frame.format.name != "yuv420p":
            converted = frame.reformat(format="yuv420p")
            converted.pts, converted.time_base = frame.pts, frame.time_base
            frame = converted
        # Taken and cleared at once: a request may come from another thread while this one codes.
        keyframe, self._force_keyframe = self._force_keyframe, False
        frame.pict_type = av.video.frame.PictureType.I if keyframe else av.video.frame.PictureType.NONE
        self._last_pts = frame.pts
        tid, sync = self._next_temporal(keyframe)
        data = b"".join(bytes(packet) for packet in context.encode(frame))
        if not data:
            return None
        self.frames_encoded += 1
        is_key = keyframe or self._coded_keyframe(data)
        self.keyframes_encoded += is_key
        if is_key and tid is not None:
            tid, sync = 0, False  # a key frame depends on nothing: no layer may lose it
        if self.codec == "VP8":
            payloads = self._packetizer.packetize(data, tid, sync)
        else:
            payloads = self._packetizer.packetize(split_annexb(data))
        return EncodedFrame(payloads, int(frame.pts or 0) & 0xFFFFFFFF, is_key, tid, sync)

    def _next_temporal(self, keyframe: bool) -> tuple[int | None, bool]:
        """The TID and layer-sync flag of the frame about to be coded (FFmpeg's libvpx wrapper starts its
        pattern over at a forced key frame, and counts every frame it is given)."""
        if self.temporal_layers == 1:
            return None, False
        _, tids, syncs, _ = TEMPORAL_PATTERNS[self.temporal_layers]
        if keyframe:
            self._pattern_index = 0
        i = self._pattern_index
        self._pattern_index = (i + 1) % len(tids)
        return tids[i], syncs[i]

    def _coded_keyframe(self, data: bytes) -> bool:
        if self.codec == "VP8":
            return not data[0] & 0x01  # RFC 6386 section 9.1: P bit 0 is a key frame
        return any(nal and nal[0] & 0x1F == 5 for nal in split_annexb(data))

    def _size_for(self, width: int, height: int) -> tuple[int, int]:
        scale = min(1.0, self.max_width / width, self.max_height / height)
        return (_even(width * scale), _even(height * scale)) if scale < 1.0 else (width, height)

    def _moved(self, pts: int | None) -> bool:
        """Whether the target has moved far enough from the open encoder's rate, for long enough, to reopen."""
        opened = max(1, self._opened_bitrate)
        if self.target_bitrate < opened * (1 - REOPEN_RATIO):
            return True
        if self.target_bitrate <= opened * (1 + REOPEN_RATIO):
            self._raised_since = None
            return False
        if pts is None:
            return True
        if self._raised_since is None:
            self._raised_since = pts
        return pts - self._raised_since >= RAISE_HOLD * VIDEO_CLOCK_RATE

    def _context_for(self, width: int, height: int, pts: int | None = None) -> av.VideoCodecContext:
        context = self._context
        moved = self._moved(pts)
        if context is None or (context.width, context.height) != (width, height) or moved:
            context = av.CodecContext.create(_ENCODERS[self.codec], "w")
            context.width, context.height, context.pix_fmt = width, height, "yuv420p"
            context.time_base = Fraction(1, VIDEO_CLOCK_RATE)
            context.framerate = Fraction(self.max_fps).limit_denominator(1000)
            context.bit_rate = self.target_bitrate
            context.gop_size = 3000  # key frames when asked, not on a timer
            # One thread: FFmpeg's default (one per core) made libvpx wait on its own threads when
            # the machine was busy, 92 ms a 640x480 frame against 8 ms (37 against 3 ms of CPU).
            context.thread_count = 1
            context.options = dict(_OPTIONS[self.codec])
            if self.temporal_layers > 1:
                context.options["ts-parameters"] = self._ts_parameters()
            context.open()
            self._pattern_index = 0
            self._context = context
            self._opened_bitrate = self.target_bitrate
            self._raised_since = None
            self._force_keyframe = True  # a new encoder starts with one anyway
        return context


    def _ts_parameters(self) -> str:
        """FFmpeg's libvpx ``ts-parameters``: the pattern, and each layer's cumulative bitrate in kbit/s."""
        mode, tids, _, shares = TEMPORAL_PATTERNS[self.temporal_layers]
        layers = len(shares)
        rates = ",".join(str(max(1, round(self.target_bitrate * share / 1000))) for share in shares)
        decimators = ",".join(str(2 ** (layers - 1 - i)) for i in range(layers))
        return (f"ts_number_layers={layers}:ts_target_bitrate={rates}:ts_rate_decimator={decimators}:"
                f"ts_periodicity={len(tids)}:ts_layer_id={','.join(map(str, tids))}:ts_layering_mode={mode}")


class VideoDecoder:
    """RTP payloads of whole frames to decoded pictures."""

    def __init__(self, codec: str = "VP8") -> None:
        if codec not in _DECODERS:
            raise UsageError(f"no decoder for {codec!r}; choose one of {', '.join(VIDEO_CODECS)}")
        self.codec = codec
        self._context = av.CodecContext.create(_DECODERS[codec], "r")
        # One thread: frame threads hold each picture back by a frame per thread (latency), and
        # a call's pictures are small enough for one.
        self._context.thread_count = 1
        self.frames_decoded = 0
        self.errors = 0

    def decode(self, payloads: list[bytes]) -> list[av.VideoFrame]:
        """Decode one frame's payloads (in order); a broken frame is counted and gives nothing."""
        try:
            data = vp8_depacketize(payloads) if self.codec == "VP8" else h264_depacketize(payloads)
            frames = self._context.decode(av.Packet(data))
        except (av.FFmpegError, ValueError):
            self.errors += 1
            return []
        self.frames_decoded += len(frames)
        return frames


class AudioEncoder:
    """Mono or stereo frames to Opus payloads of 20 ms at 48 kHz."""

    def __init__(self, *, target_bitrate: int = 32_000, channels: int = 1) -> None:
        self.target_bitrate = target_bitrate
        self._context = av.CodecContext.create("libopus", "w")
        self._context.sample_rate = OPUS_CLOCK_RATE
        self._context.layout = "mono" if channels == 1 else "stereo"
        self._context.format = "s16"
        self._context.bit_rate = target_bitrate
        self._context.options = {"application": "voip", "frame_duration": "20"}
        self._resampler = av.AudioResampler(format="s16", layout=self._context.layout.name,
                                            rate=OPUS_CLOCK_RATE)

    def encode(self, frame: av.AudioFrame) -> list[EncodedFrame]:
        """Payloads for what ``frame`` completes (Opus codes 20 ms at a time)."""
        out = []
        for resampled in self._resampler.resample(frame):
            for packet in self._context.encode(resampled):
                out.append(EncodedFrame([bytes(packet)], int(packet.pts or 0) & 0xFFFFFFFF, True))
        return out


class AudioDecoder:
    """Opus payloads to 48 kHz frames."""

    def __init__(self, channels: int = 1) -> None:
        self._context = av.CodecContext.create("opus", "r")
        self._context.sample_rate = OPUS_CLOCK_RATE
        self._context.layout = "mono" if channels == 1 else "stereo"
        self.frames_decoded = 0
        self.errors = 0

    def decode(self, payload: bytes) -> list[av.AudioFrame]:
        try:
            frames = self._context.decode(av.Packet(payload))
        except (av.FFmpegError, ValueError):
            self.errors += 1
            return []
        self.frames_decoded += len(frames)
        return frames
