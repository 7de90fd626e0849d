"""Sending one video track as simulcast (RFC 8853): one encoder per layer, the bitrate split across them.

``PeerConnection.add_transceiver(track, send_encodings=[...])`` takes the
W3C ``RTCRtpEncodingParameters`` shape, in snake case::

    pc.add_transceiver(track, send_encodings=[{"rid": "q", "scale_resolution_down_by": 4},
                                              {"rid": "h", "scale_resolution_down_by": 2},
                                              {"rid": "f"}])

An encoding's ``scalability_mode`` (``"L1T1"``, ``"L1T2"``, ``"L1T3"``, W3C
WebRTC-SVC) codes its layer with that many VP8 temporal layers (see
netcore.media.codecs), as browsers do for VP8 simulcast.

Each encoding is a **layer**: its RID (RFC 8851) in ``a=rid``/``a=simulcast``
(no ``a=ssrc`` lines, as browsers do), its own SSRC and RTX SSRC named on
the wire by the RtpStreamId header extension (RFC 8852), and its own
:class:`~netcore.peer.tracks.RtpSender` whose encoder scales the track's
frames down by ``scale_resolution_down_by``. :class:`SimulcastSender` takes
each frame from the track once and gives it to every layer's encoder.

The video bitrate the connection gives the track is split by
:func:`layer_bitrates`: each layer a fixed share (lowest first: 15 %, 25 %,
60 % of three; 25 %, 75 % of two), at least its minimum
(:data:`LAYER_MIN_BITRATE`) and at most :data:`BITS_PER_PIXEL` times its
pixels (per second, as libwebrtc caps its layers); when the target cannot pay every active
layer's minimum, layers are **paused from the top** (not encoded, nothing
sent: a call server sees the layer stop and moves its subscribers down),
and resumed with a key frame when it can again.
"""

from __future__ import annotations

from dataclasses import dataclass

from netcore.errors import UsageError
from netcore.peer.tracks import RtpSender
from netcore.rtp.packet import RtpPacket

__all__ = ["Encoding", "SimulcastSender", "layer_bitrates", "parse_encodings", "LAYER_SHARES", "SCALABILITY_MODES",
           "LAYER_MIN_BITRATE", "MAX_LAYERS"]

MAX_LAYERS = 3
SCALABILITY_MODES = {"L1T1": 1, "L1T2": 2, "L1T3": 3}  # W3C WebRTC-SVC modes we code -> temporal layers
# Shares of the video bitrate per layer, lowest first, by the number of layers sent.
LAYER_SHARES = {1: (1.0,), 2: (0.25, 0.75), 3: (0.15, 0.25, 0.60)}
# What each layer needs at least, lowest first: below the sum up to a layer it and those above pause.
LAYER_MIN_BITRATE = (30_000, 100_000, 250_000)
# A layer's ceiling once its size is known, per pixel (libwebrtc's table is about 3.5 at 320x180, 3 at
# 640x360, 2.7 at 1280x720): a small layer given more only grows its key frames; what is left unused.
BITS_PER_PIXEL = 3.5


@dataclass(frozen=True, slots=True)
class Encoding:
    """One layer asked for (W3C ``RTCRtpEncodingParameters``): RID, scale-down factor, active, a cap,
    its temporal layers (from ``scalability_mode``)."""

    rid: str
    scale_resolution_down_by: float = 1.0
    active: bool = True
    max_bitrate: int | None = None
    temporal_layers: int = 1


def parse_encodings(encodings: list[dict]) -> tuple[Encoding, ...]:
    """The W3C dictionaries checked (RFC 8851 section 10: RIDs are alphanumeric, at most 16 here; one
    encoding alone may go without)."""
    if not 1 <= len(encodings) <= MAX_LAYERS:
        raise UsageError(f"simulcast takes 1 to {MAX_LAYERS} encodings")
    out = []
    for item in encodings:
        rid = str(item.get("rid", ""))
        if not rid and len(encodings) == 1:
            pass  # one encoding (its scalability mode, its cap): no simulcast, no rid needed
        elif not rid.isalnum() or len(rid) > 16 or not rid.isascii():
            raise UsageError(f"bad rid {rid!r}")
        scale = float(item.get("scale_resolution_down_by", 1.0))
        if scale < 1.0:
            raise UsageError("scale_resolution_down_by must be at least 1")
        max_bitrate = item.get("max_bitrate")
        mode = item.get("scalability_mode", "L1T1")
        if mode not in SCALABILITY_MODES:
            raise UsageError(f"scalability_mode {mode!r} is not one of {', '.join(SCALABILITY_MODES)}")
        out.append(Encoding(rid, scale, bool(item.get("active", True)),
                            int(max_bitrate) if max_bitrate is not None else None, SCALABILITY_MODES[mode]))
    if len({e.rid for e in out}) != len(out):
        raise UsageError("two encodings with one rid")
    return tuple(out)


def layer_bitrates(video_target: float, count: int) -> list[int]:
    """The bitrate of each of ``count`` layers (lowest first) for ``video_target``; 0 pauses a layer."""
    active = count
    while active > 1 and sum(LAYER_MIN_BITRATE[:active]) > video_target:
        active -= 1  # short: drop from the top
    shares = LAYER_SHARES[active]
    rates = [max(LAYER_MIN_BITRATE[i], int(video_target * shares[i])) for i in range(active)]
    excess = sum(rates) - max(video_target, LAYER_MIN_BITRATE[0])
    for i in reversed(range(active)):  # minimums raised some layers: the others pay, from the top
        if excess <= 0:
            break
        cut = min(excess, rates[i] - LAYER_MIN_BITRATE[i])
        rates[i] -= int(cut)
        excess -= int(cut)
    return rates + [0] * (count - active)


class SimulcastSender:
    """The layers of one track: each frame taken once and encoded by every active layer's sender.

    ``layers`` are lowest first (by ``scale``, largest first); the peer
    connection runs it like one :class:`RtpSender` (``encode_next``,
    ``bitrate_changed``) and routes key-frame requests to the layer's own
    sender by SSRC.
    """

    kind = "video"

    def __init__(self, track, layers: list[tuple[RtpSender, Encoding]]) -> None:
        self.track = track
        self.layers = sorted(layers, key=lambda la: -la[1].scale_resolution_down_by)
        self.paused: set[int] = set()  # SSRCs of layers the bitrate does not pay for now
        self.frames_skipped = 0  # frames the track made that were dropped, being late (the connection counts)
        self._sized = False
        self._caps: dict[int, int] = {}  # SSRC -> BITS_PER_PIXEL ceiling, once the first frame sized it
        self._target: tuple[float, int] | None = None

    @property
    def senders(self) -> list[RtpSender]:
        return [sender for sender, _ in self.layers]

    def encode_next(self, capture_time: float | None = None) -> list[RtpPacket] | None:
        """Each active layer's packets of the track's next frame (``capture_time`` as for
        :meth:`RtpSender.encode_next`); None when the track has ended."""
        frame = self.track.next_frame()
        if frame is None:
            return None
        return self.encode(frame, capture_time)

    def encode(self, frame, capture_time: float | None = None) -> list[RtpPacket]:
        """Each active layer's packets of ``frame``, a frame of the track."""
        if not self._sized:
            self._sized = True
            for sender, encoding in self.layers:
                encoder = sender.encoder
                scale = encoding.scale_resolution_down_by
                encoder.max_width = min(encoder.max_width, max(16, int(frame.width / scale)))  # type: ignore[union-attr]
                encoder.max_height = min(encoder.max_height, max(16, int(frame.height / scale)))  # type: ignore[union-attr]
                width, height = encoder._size_for(frame.width, frame.height)  # type: ignore[union-attr]
                self._caps[sender.ssrc] = int(BITS_PER_PIXEL * width * height)
            if self._target is not None:
                self.bitrate_changed(*self._target)
        packets: list[RtpPacket] = []
        for sender, encoding in self.layers:
            if encoding.active and sender.ssrc not in self.paused:
                packets += sender.encode(frame, capture_time)
        return packets

    def bitrate_changed(self, target: float, video_senders: int = 1) -> None:
        """Split what the connection gives this track (see :func:`layer_bitrates`); pause or resume."""
        self._target = (target, video_senders)
        first = self.layers[0][0]
        video = first.video_share(target, video_senders)
        active = [(s, e) for s, e in self.layers if e.active]
        for (sender, encoding), rate in zip(active, layer_bitrates(video, len(active))):
            if rate == 0:
                self.paused.add(sender.ssrc)
                continue
            if sender.ssrc in self.paused:
                self.paused.discard(sender.ssrc)
                sender.keyframe_requested()  # a resumed layer starts decodable
            caps = [c for c in (encoding.max_bitrate, self._caps.get(sender.ssrc)) if c is not None]
            sender.set_bitrate(min([rate] + caps))
