"""Jitter buffer throughput under 5% loss and 30 ms jitter, ours and aiortc's.

A 30 fps video stream (1-4 packets a frame) crosses an emulated link (30 ms
delay, 0-30 ms uniform jitter, 5% loss) with NACK retransmissions, in
virtual time (netcore.jitter.simulate over netcore.testing.simnet).  The calls the receiver made on
our buffer are recorded, then replayed on a fresh buffer and timed: the
buffer is deterministic, so the replay does exactly the same work.
aiortc's JitterBuffer (packet-count based, no clock, no NACK) is fed the
same packets in the same arrival order.  Packets are parsed before timing.

Usage: python3 bench/jitter.py [simulated seconds, default 60]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiortc.jitterbuffer import JitterBuffer as AiortcJitterBuffer  # noqa: E402
from aiortc.rtp import RtpPacket as AiortcRtpPacket  # noqa: E402

from netcore.jitter import JitterBuffer, JitterConfig  # noqa: E402
from netcore.jitter.simulate import (  # noqa: E402
    Phase,
    Simulation,
    is_frame_start,
    is_keyframe,
)
from netcore.testing.simnet import Link  # noqa: E402


REPEATS = 5  # timed replays; the best is printed (the machine is shared)


def new_buffer() -> JitterBuffer:
    return JitterBuffer(
        JitterConfig(90000), is_keyframe=is_keyframe, is_frame_start=is_frame_start, rtt=0.06
    )


class Recorder:
    """Passes calls to a buffer and records inserts and pops for replay."""

    def __init__(self, buf: JitterBuffer) -> None:
        self.buf = buf
        self.ops: list[tuple] = []

    def insert(self, packet, now):
        self.ops.append((True, packet, now))
        self.buf.insert(packet, now)

    def pop(self, now):
        self.ops.append((False, None, now))
        return self.buf.pop(now)

    def __getattr__(self, name):
        return getattr(self.buf, name)

    def __len__(self):
        return len(self.buf)


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    recorder = Recorder(new_buffer())
    link = Link(delay=0.03, jitter=0.03, loss=0.05)
    sim = Simulation(recorder, [Phase(seconds, link)], seed=42).run()  # type: ignore[arg-type]
    ops = recorder.ops
    inserts = [(p, now) for is_insert, p, now in ops if is_insert]

    ours = float("inf")
    for _ in range(REPEATS):
        buf = new_buffer()
        insert, pop, poll = buf.insert, buf.pop, buf.poll_event
        start = time.perf_counter()
        for is_insert, packet, now in ops:
            if is_insert:
                insert(packet, now)
            else:
                pop(now)
                while poll() is not None:
                    pass
        ours = min(ours, time.perf_counter() - start)
        assert buf.metrics == recorder.buf.metrics  # the replay did the same work

    theirs_packets = []
    for p, _ in inserts:
        q = AiortcRtpPacket.parse(p.data)
        q._data = q.payload  # what aiortc's receiver sets after depayloading
        theirs_packets.append(q)
    theirs = float("inf")
    for _ in range(REPEATS):
        ref = AiortcJitterBuffer(capacity=128, is_video=True)
        add = ref.add
        frames_ref = 0
        start = time.perf_counter()
        for q in theirs_packets:
            if add(q)[1] is not None:
                frames_ref += 1
        theirs = min(theirs, time.perf_counter() - start)

    m = buf.metrics
    lat = sorted(d.popped_at - d.sent_at for d in sim.deliveries)
    n = len(inserts)
    print(f"{seconds:.0f} s of 30 fps video, 5% loss, 30 ms jitter, NACK: {n} packets in")
    print(
        f"netcore: {len(sim.sent)} frames sent, {m.frames_popped} played, {m.frames_skipped} skipped, "
        f"{m.packets_recovered} packets recovered by NACK, {m.packets_late} late, "
        f"target delay {m.target_delay * 1000:.0f} ms, sender-to-playout latency "
        f"p50 {lat[len(lat) // 2] * 1000:.0f} ms p99 {lat[int(len(lat) * 0.99)] * 1000:.0f} ms"
    )
    print(f"aiortc:  {frames_ref} frames out (no clock: frames leave as soon as the next begins)")
    print(f"{'':10} {'packets/s':>12}")
    print(f"{'netcore':10} {n / ours:12,.0f}   (insert + pop + events, timed replay)")
    print(f"{'aiortc':10} {n / theirs:12,.0f}   (add)")
    print(f"ratio      {theirs / ours:11.2f}x")


if __name__ == "__main__":
    main()
