"""Per-frame stage timing of a call peer, for finding where a slow frame spent its time.

:func:`install` wraps a few methods of the peer connection's classes (this
is a diagnostic for ``callpeer --trace``, not part of the peer) so that each
stage a video frame passes leaves a time stamp on the loop's clock
(``time.monotonic()``, one clock for every process of the machine):

* sender: the frame encoded (RTP timestamp, key frame, packets, bytes, how
  long the encoder took), each packet leaving the pacer (first copy or RTX),
  NACKs and key frame requests received;
* receiver: each video packet arriving (and whether as RTX), the NACKs and
  key frame requests sent, each frame the jitter buffer lets out, and the
  decoder's time per frame.

:func:`dump` writes them as one JSON object; ``bench/call_frames.py`` joins
two peers' traces by RTP timestamp.
"""

from __future__ import annotations

import json
import time
from typing import Any

from netcore.jitter.buffer import JitterBuffer
from netcore.media.codecs import VideoDecoder
from netcore.peer import sender as sender_module
from netcore.peer import transport as transport_module
from netcore.peer.tracks import RtpReceiver, RtpSender
from netcore.rtp.packet import RtpPacket
from netcore.rtp.vp8 import vp8_is_keyframe

__all__ = ["install", "dump"]

TRACE: dict[str, list] = {"encoded": [], "wire": [], "nack_in": [], "pli_in": [], "arrived": [],
                          "nack_out": [], "pli_out": [], "popped": [], "decoded": [], "offsets": []}


def install() -> None:
    """Wrap the methods whose calls mark the stages (once per process)."""
    encode, insert, pop, decode = RtpSender.encode, RtpReceiver.insert, JitterBuffer.pop, VideoDecoder.decode
    emit, retransmit = sender_module.Sender._emit, sender_module.Sender.retransmit
    keyframe, request = RtpSender.keyframe_requested, transport_module.MediaTransport.request_keyframe
    poll_nacks = transport_module.Receiver.poll_nacks

    def traced_encode(self: RtpSender, frame: Any, capture_time: float | None = None) -> list[RtpPacket]:
        start = time.monotonic()
        packets = encode(self, frame, capture_time)
        if self.kind == "video" and packets:
            offsets = TRACE["offsets"]
            if not offsets:
                offsets.append(self._timestamp_offset)
            TRACE["encoded"].append((packets[0].timestamp, capture_time, start, time.monotonic(),
                                     packets[0].sequence_number, len(packets), sum(len(p.payload) for p in packets),
                                     vp8_is_keyframe(packets[0].payload) if self.codec.upper() == "VP8" else None))
        return packets

    def traced_emit(self: Any, packet: RtpPacket, now: float) -> None:
        stream = self.streams.get(packet.ssrc)
        if stream is None:  # RTX: the original sequence number leads the payload
            if len(packet.payload) >= 2:
                TRACE["wire"].append((now, 1, int.from_bytes(packet.payload[:2], "big"), packet.timestamp))
        elif not stream.audio:
            TRACE["wire"].append((now, 0, packet.sequence_number, packet.timestamp))
        emit(self, packet, now)

    def traced_retransmit(self: Any, ssrc: int, lost: list[int], now: float) -> int:
        refused = self.retransmissions_refused
        stream = self.streams.get(ssrc)
        count = retransmit(self, ssrc, lost, now)
        TRACE["nack_in"].append((now, list(lost), count, self.retransmissions_refused - refused,
                                 self.estimator.target_bitrate, stream.history.min_interval if stream else None))
        return count

    def traced_keyframe(self: RtpSender) -> None:
        TRACE["pli_in"].append(time.monotonic())
        keyframe(self)

    def traced_request(self: Any, ssrc: int, now: float, *, fir: bool = False) -> None:
        TRACE["pli_out"].append(now)
        request(self, ssrc, now, fir=fir)

    def traced_poll_nacks(self: Any, now: float) -> list:
        out = poll_nacks(self, now)
        for ssrc, lost in out:
            stream = self.streams.get(ssrc)
            interval = stream.nack.retry_interval if stream is not None and stream.nack is not None else None
            TRACE["nack_out"].append((now, list(lost), interval))
        return out

    def traced_insert(self: RtpReceiver, packet: RtpPacket, now: float, retransmitted: bool | None = None) -> None:
        if self.track.kind == "video":
            TRACE["arrived"].append((now, packet.timestamp, packet.sequence_number, bool(retransmitted)))
        insert(self, packet, now, retransmitted)

    def traced_pop(self: JitterBuffer, now: float) -> Any:
        skipped = self.metrics.frames_skipped
        frame = pop(self, now)
        if self.config.video and (frame is not None or self.metrics.frames_skipped != skipped):
            TRACE["popped"].append((now, frame.timestamp if frame is not None else None,
                                    self.metrics.frames_skipped - skipped, self.metrics.target_delay))
        return frame

    def traced_decode(self: VideoDecoder, payloads: list[bytes]) -> list:
        start = time.monotonic()
        pictures = decode(self, payloads)
        TRACE["decoded"].append((start, time.monotonic(), len(pictures)))
        return pictures

    RtpSender.encode = traced_encode  # type: ignore[method-assign]
    sender_module.Sender._emit = traced_emit  # type: ignore[method-assign]
    sender_module.Sender.retransmit = traced_retransmit  # type: ignore[method-assign]
    RtpSender.keyframe_requested = traced_keyframe  # type: ignore[method-assign]
    transport_module.MediaTransport.request_keyframe = traced_request  # type: ignore[method-assign]
    transport_module.Receiver.poll_nacks = traced_poll_nacks  # type: ignore[method-assign]
    RtpReceiver.insert = traced_insert  # type: ignore[method-assign]
    JitterBuffer.pop = traced_pop  # type: ignore[method-assign]
    VideoDecoder.decode = traced_decode  # type: ignore[method-assign]


def dump(path: str, extra: dict[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump(dict(TRACE, **extra), f)
