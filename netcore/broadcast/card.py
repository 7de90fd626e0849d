"""The still put on air when no camera is (a "back soon" card): one VP8 key frame, repeated.

The card is coded once, when the call server starts, from an image file
(anything FFmpeg reads: PNG, JPEG) or, without one, from a drawn picture
that carries :data:`CARD_NUMBER` in the synthetic camera's frame-number
code (netcore.media.synthetic), so a receiver can tell the card from a
camera.  On air it is sent as the same key frame every
:data:`CARD_INTERVAL` with the timestamps of the time that passed: every
frame decodes on its own, so a cut to the card is immediate and no loss
of a card frame needs repairing.  A key frame of a still costs a few
kilobytes, a few tens of kbit/s at that rate.

:class:`CardSource` is sans-IO: it makes the RTP packets of the card from
``now`` (its own SSRC, sequence numbers, 90 kHz timestamps, picture ids),
which the program switcher forwards like a camera's.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from netcore.broadcast.ticker import Ticker
from netcore.media.synthetic import VIDEO_CLOCK_RATE, SyntheticCamera
from netcore.rtp.packet import RtpPacket
from netcore.rtp.vp8 import Vp8Packetizer

__all__ = ["CardSource", "encode_card", "card_image", "CARD_NUMBER", "CARD_INTERVAL", "CARD_PAYLOAD_TYPE"]

CARD_NUMBER = 0xCA4D0  # the frame number the drawn card carries (a camera's count stays far below it)
CARD_INTERVAL = 0.2  # seconds between card frames on air (5 frames per second)
CARD_PAYLOAD_TYPE = 96  # VP8, the program's payload type for it
CARD_BITRATE = 400_000  # what the one key frame is coded at (its size: a few kilobytes for a still)


def card_image(width: int = 640, height: int = 360, path: str | None = None) -> av.VideoFrame:
    """The card's picture: the first picture of ``path`` scaled to ``width`` x ``height``, or the drawn card.
    Raises OSError (one sentence) for a file that is missing or holds no picture."""
    if path is not None:
        try:
            with av.open(path) as container:
                frame = next(container.decode(video=0))
        except (av.FFmpegError, OSError, ValueError, StopIteration) as exc:
            raise OSError(f"the card image {path} cannot be read: {exc or 'no picture in it'}") from None
        return frame.reformat(width=width, height=height, format="yuv420p")
    frame = SyntheticCamera(width, height).frame(CARD_NUMBER)
    planes = frame.to_ndarray()  # yuv420p stacked: Y then U and V
    planes[height:] = np.uint8(90)  # a blue-grey card, not the camera's colours
    card = av.VideoFrame.from_ndarray(planes, format="yuv420p")
    card.pts, card.time_base = 0, Fraction(1, VIDEO_CLOCK_RATE)
    return card


def encode_card(picture: av.VideoFrame) -> bytes:
    """``picture`` coded as one VP8 key frame (libvpx through PyAV)."""
    context = av.CodecContext.create("libvpx", "w")
    context.width, context.height, context.pix_fmt = picture.width, picture.height, "yuv420p"
    context.time_base = Fraction(1, VIDEO_CLOCK_RATE)
    context.bit_rate = CARD_BITRATE
    context.thread_count = 1
    context.open()
    picture.pts = 0
    data = b"".join(bytes(p) for p in context.encode(picture))
    data += b"".join(bytes(p) for p in context.encode(None))  # the encoder may hold the frame until flushed
    return data


class CardSource:
    """RTP packets of the card: one key frame every ``interval`` while :attr:`running`."""

    def __init__(self, frame: bytes, ssrc: int, interval: float = CARD_INTERVAL, max_payload_size: int = 1200,
                 payload_type: int = CARD_PAYLOAD_TYPE) -> None:
        self.frame = frame
        self.ssrc = ssrc
        self.interval = interval
        self.payload_type = payload_type
        self._packetizer = Vp8Packetizer(max_payload_size)
        self._sequence = 0
        self._started: float | None = None
        self._ticker = Ticker(interval)
        self.frames = 0

    @property
    def running(self) -> bool:
        return self._ticker.running

    def start(self, now: float) -> None:
        """Send from now on (the first frame at the next :meth:`handle_timeout`)."""
        self._ticker.start(now)
        if self._started is None:
            self._started = now

    def stop(self) -> None:
        self._ticker.stop()

    def next_deadline(self) -> float | None:
        return self._ticker.next_deadline()

    def handle_timeout(self, now: float) -> list[RtpPacket]:
        """The packets of the frame due (none before its time; one after a stall), timestamped by the time
        since the start."""
        if not self._ticker.due(now):
            return []
        assert self._started is not None
        timestamp = round((now - self._started) * VIDEO_CLOCK_RATE) & 0xFFFFFFFF
        payloads = self._packetizer.packetize(self.frame)
        packets = []
        for i, payload in enumerate(payloads):
            packets.append(RtpPacket.build(payload_type=self.payload_type, sequence_number=self._sequence,
                                           timestamp=timestamp, ssrc=self.ssrc, payload=payload,
                                           marker=i == len(payloads) - 1))
            self._sequence = (self._sequence + 1) & 0xFFFF
        self.frames += 1
        return packets
