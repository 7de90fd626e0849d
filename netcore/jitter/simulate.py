"""A virtual-time RTP stream over an emulated link, driving a JitterBuffer.

For tests and ``bench/jitter.py``: a sender emits frames at a fixed rate
(``frame_packets`` packets each, a key frame on request); the packets cross
a :class:`netcore.testing.simnet.Link` (delay, uniform jitter, loss,
duplication) through a :class:`netcore.testing.simnet.OneWayPath` that
keeps their order unless ``fifo`` is off, and the receiver's buffer is driven exactly as an adapter would: insert on
arrival, pop at ``next_deadline()``, answer NACKs with retransmissions over
the same link (after half a round trip of feedback delay) and key-frame
requests with a key frame.  Randomness comes from a seeded
``random.Random``; nothing reads a clock.

Payloads are synthetic unless a ``source`` gives real ones: byte 0 is
``K`` (key frame) or ``D``, byte 1 is ``S`` on the first packet of a frame,
then the frame number.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

from netcore.jitter.buffer import Frame, JitterBuffer
from netcore.jitter.events import KeyFrameRequested, NackRequested
from netcore.rtp.packet import RtpPacket
from netcore.testing.simnet import Link, OneWayPath

__all__ = ["Phase", "Delivery", "Simulation", "is_keyframe", "is_frame_start"]


def is_keyframe(payload: bytes) -> bool:
    return payload[:1] == b"K"


def is_frame_start(payload: bytes) -> bool:
    return payload[1:2] == b"S"


@dataclass(frozen=True)
class Phase:
    until: float  # seconds of simulated time
    link: Link


@dataclass
class Delivery:
    """One frame out of the buffer, with when it was sent and popped."""

    frame: Frame
    sent_at: float
    popped_at: float
    index: int  # frame number at the sender
    target_delay: float = 0.0  # the buffer's target when the frame left it


@dataclass
class Simulation:
    buffer: JitterBuffer
    phases: list[Phase]
    seed: int = 1
    fps: float = 30.0
    clock_rate: int = 90000
    frame_packets: tuple[int, int] = (1, 4)
    payload_size: int = 200
    rtt: float = 0.06
    ssrc: int = 0x1234
    first_seq: int = 65000
    fifo: bool = True  # the path keeps packet order; off, jitter may reorder
    # Send times at which the sender's RTP timestamps restart from 0 (a
    # restarted encoder): the timeline jumps back while sequence numbers go on.
    timestamp_resets: tuple[float, ...] = ()
    # Real payloads: called with (frame number, key frame wanted), returns the
    # frame's RTP payloads; None sends the synthetic ones described above.
    source: Callable[[int, bool], list[bytes]] | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    sent: dict[int, list[RtpPacket]] = field(default_factory=dict)  # frame -> packets
    sent_at: dict[int, float] = field(default_factory=dict)
    max_buffered: int = 0
    nacked: int = 0
    keyframe_requests: int = 0

    def run(self) -> Simulation:
        rng = random.Random(self.seed)
        path = OneWayPath(rng, fifo=self.fifo)
        history: dict[int, bytes] = {}  # seq -> packet, for retransmission
        seq = self.first_seq
        want_key = True
        frame_no = 0
        next_send = 0.0
        end = self.phases[-1].until
        now = 0.0
        buf = self.buffer
        by_ts: dict[int, int] = {}

        def link_at(t: float) -> Link:
            for phase in self.phases:
                if t < phase.until:
                    return phase.link
            return self.phases[-1].link

        def transmit(data: bytes, t: float) -> None:
            path.send(data, t, link_at(t))

        while True:
            candidates = [next_send] if next_send < end else []
            arrival = path.next_arrival()
            if arrival is not None:
                candidates.append(arrival)
            deadline = buf.next_deadline()
            if deadline is not None:
                candidates.append(max(deadline, now))
            if not candidates:
                break
            now = max(now, min(candidates))
            if now > end + 2.0:
                break
            # Sender: one frame per 1/fps.
            if next_send < end and now >= next_send:
                if self.source is not None:
                    payloads = self.source(frame_no, want_key)
                else:
                    payloads = self._synthetic(rng, frame_no, want_key)
                want_key = False
                origin = max((r for r in self.timestamp_resets if r <= next_send), default=0.0)
                ts = int((next_send - origin) * self.clock_rate) & 0xFFFFFFFF
                by_ts[ts] = frame_no
                packets = []
                count = len(payloads)
                for i, payload in enumerate(payloads):
                    p = RtpPacket.build(
                        payload_type=96, sequence_number=seq, timestamp=ts, ssrc=self.ssrc,
                        payload=payload, marker=i == count - 1,
                    )
                    history[seq] = p.data
                    history.pop((seq - 2048) & 0xFFFF, None)
                    seq = (seq + 1) & 0xFFFF
                    packets.append(p)
                    transmit(p.data, next_send)
                self.sent[frame_no] = packets
                self.sent_at[frame_no] = next_send
                frame_no += 1
                next_send += 1.0 / self.fps
            # Receiver: arrivals, then whatever is due.
            for data in path.arrived(now):
                buf.insert(RtpPacket.parse(data), now)
                self.max_buffered = max(self.max_buffered, len(buf))
            while True:
                frame = buf.pop(now)
                if frame is None:
                    break
                index = by_ts[frame.timestamp]
                self.deliveries.append(
                    Delivery(frame, self.sent_at[index], now, index, buf.metrics.target_delay)
                )
            while (event := buf.poll_event()) is not None:
                if isinstance(event, NackRequested):
                    for s in event.sequence_numbers:
                        self.nacked += 1
                        data = history.get(s)
                        if data is not None:
                            transmit(data, now + self.rtt / 2)
                elif isinstance(event, KeyFrameRequested):
                    self.keyframe_requests += 1
                    want_key = True
        return self

    def _synthetic(self, rng: random.Random, frame_no: int, key: bool) -> list[bytes]:
        count = rng.randint(*self.frame_packets)
        kind = b"K" if key else b"D"
        payloads = []
        for i in range(count):
            payload = kind + (b"S" if i == 0 else b"C") + frame_no.to_bytes(4, "big")
            payloads.append(payload + bytes(self.payload_size - len(payload)))
        return payloads
