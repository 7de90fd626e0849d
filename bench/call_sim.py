"""The impaired call of ``bench/call.py`` in virtual time: per-frame latency set by NACK and repair, without the machine.

Two of our media transports on the simulated network (``tests/peer/harness.py``),
both directions of the path at ``bench/call.py``'s impairment (5 % loss, 25 ms
plus 0-30 ms one way), a 640x480 VP8 camera at 30 fps and 450 kbit/s one way,
and a strict receiver: a frame is decoded once all its packets are there and
every frame before it was, the decode order of a real peer. A frame's latency
is its decode time minus its capture time; encoding takes no time here and
nothing waits for a CPU, so what is left is the path, the NACK schedule and the
repairs, the same whatever the machine's load (the real bench's p99 is its
p99 plus the scheduling of four processes). Seeded: each seed is one call.

A seed whose very first packet is lost decodes nothing (no packet before it to reveal the gap,
so it is never NACKed; seed 6): it is left out.

Usage: python3 bench/call_sim.py [--seeds 1 2 3 4 5 7 8] [--frames 600]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.peer.harness import VideoSink, VideoSource, make_call  # noqa: E402

FPS = 30
HOSTS = ("198.51.100.1", "203.0.113.10")  # the two hosts' links (harness addresses)


def run(seed: int, frames: int) -> dict:
    """One impaired call of ``frames`` frames; latencies of the frames decoded, and the repair counters."""
    call = make_call(seed)
    call.connect()
    source = VideoSource(call, "a", width=640, height=480, bitrate=450_000, max_payload_size=1200)
    sink = VideoSink(call, "b")
    decoded: dict[int, float] = {}
    decode_next = sink._decode_next

    def timed() -> bool:
        number = sink.next_number
        if decode_next():
            decoded[number] = call.net.now
            return True
        return False
    sink._decode_next = timed
    for host in HOSTS:
        link = call.net.link(host)
        link.loss, link.delay, link.jitter = 0.05, 0.025, 0.03
    call.run(1.0)
    start = call.net.now
    source.start(frames + FPS, at=start)
    call.run(frames / FPS + 3.0)
    return {
        "latencies": sorted(decoded[n] - (start + n / FPS) for n in range(frames) if n in decoded),
        "repairs": call.a.sender.retransmissions, "copies": getattr(call.a.sender, "repair_copies_sent", 0),  # 0 before copies existed
        "nacked": call.b.stats.nacks_sent, "rtx_in": call.b.stats.rtx_received,
    }


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5, 7, 8])
    parser.add_argument("--frames", type=int, default=600)
    args = parser.parse_args()
    every: list[float] = []
    print(f"{'seed':>4} {'decoded':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7} "
          f"{'NACKed':>6} {'repairs':>7} {'copies':>6} {'RTX in':>6}")
    for seed in args.seeds:
        r = run(seed, args.frames)
        lat = r["latencies"]
        if not lat:
            print(f"{seed:4} none decoded")
            continue
        every += lat
        print(f"{seed:4} {len(lat):7} {percentile(lat, .5) * 1000:7.0f} {percentile(lat, .95) * 1000:7.0f} "
              f"{percentile(lat, .99) * 1000:7.0f} {lat[-1] * 1000:7.0f} {r['nacked']:6} {r['repairs']:7} "
              f"{r['copies']:6} {r['rtx_in']:6}")
    every.sort()
    print(f" all {len(every):7} {percentile(every, .5) * 1000:7.0f} {percentile(every, .95) * 1000:7.0f} "
          f"{percentile(every, .99) * 1000:7.0f} {every[-1] * 1000:7.0f}")


if __name__ == "__main__":
    main()
