"""A broadcast through origin -> tier 2 -> edge against one call server: CPU per packet and time added per tier.

A publisher of three VP8-shaped packets per frame (2,900 bytes) at 30
frames/s and Opus-shaped audio (as bench/sfu.py's, with no gaps in its numbers) sends into the origin's room; a
tier-2 server pulls the room over a link (netcore.sfu.cascade) and an edge
pulls it from tier 2, with N receive-only viewers. All on the simulated
network (real ICE, DTLS, SRTP, RTCP towards the viewers; SRTP links between
the servers; no sockets), for a few virtual seconds. Measured around each
server's core entry points (``handle_datagram``, ``handle_timeout``):

* CPU microseconds per packet each server sent (to its link below, or to
  its viewers for the edge);
* time a media packet spends in ``handle_datagram`` at each server
  (received to its last copy queued): the latency each tier adds before
  any pacer, p50 and p99.

The anchor, in the same run: one call server alone with the same N
subscribers (bench/sfu.py's case, this publisher). Printed: the edge's CPU per forwarded
packet over the single server's (the edges must be at least as efficient
per viewer: ratio <= 1), and the added time per tier.

Usage: ``python3 bench/broadcast.py [N ...]`` (default 10 50 200).

``python3 bench/broadcast.py --real [--viewers 4 --ramp 10,20,40 ...]``: the same tree as real processes on
loopback (bench/broadcast_real.py): glass-to-glass latency at the viewers of one call server against the
cascade's, CPU per forwarded packet per tier process, viewers per edge core at under 0.5 % loss.
"""

from __future__ import annotations

import statistics
import sys
import time

sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.dirname(__import__("os").path.abspath(__file__))))

from netcore.demux import PacketKind  # noqa: E402
from netcore.peer.config import SendLayer  # noqa: E402
from tests.sfu.cascade_tree import Tree  # noqa: E402
from tests.sfu.harness import Publisher, Room  # noqa: E402

SECONDS = 2.0
WARM_UP = 2.0  # virtual seconds before measuring: links open and pulled, viewers' first key frames


class ThreePackets(Publisher):
    """One stream: a VP8-shaped frame of three packets (1000, 1000 and 900 bytes), numbers without gaps (a
    gap would be NACKed by every viewer for the whole run, which is not what is measured here)."""

    def frame(self, now: float) -> list:
        pub = self.client
        key = pub.frame == 0 or self.room.keyframe_wanted(pub)
        packets = pub.layer_frame(now, SendLayer("", pub.send["video"]), 720, 2900, key)
        pub.frame += 1
        return packets


class Meter:
    """CPU spent in one server's core, and the time media datagrams took in it."""

    def __init__(self, core) -> None:
        self.cpu = 0.0
        self.media: list[float] = []
        handle, timeout = core.handle_datagram, core.handle_timeout

        def timed_datagram(datagram, now):
            start, cpu = time.perf_counter(), time.process_time()
            handle(datagram, now)
            self.cpu += time.process_time() - cpu
            if datagram.kind is PacketKind.RTP:
                self.media.append(time.perf_counter() - start)

        def timed_timeout(now):
            cpu = time.process_time()
            timeout(now)
            self.cpu += time.process_time() - cpu

        core.handle_datagram, core.handle_timeout = timed_datagram, timed_timeout

    def percentile(self, share: float) -> float:
        ordered = sorted(self.media)
        return ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1e6


def single_server(subscribers: int) -> dict[str, float]:
    """The anchor: one call server, the same publisher and ``subscribers`` receive-only subscribers."""
    room = Room(seed=subscribers)
    room.join("pub", slots=0)
    for i in range(subscribers):
        room.join(f"sub{i}", publish=(), slots=1)
    room.connect(until=10.0)
    publisher = ThreePackets(room, room.clients["pub"], 30)
    publisher.stream(WARM_UP, step=0.02)
    meter = Meter(room.core)
    before = room.core.stats.forwarded_packets
    publisher.stream(SECONDS, step=0.02)
    forwarded = room.core.stats.forwarded_packets - before
    return {"forwarded": forwarded, "us_per_packet": meter.cpu / forwarded * 1e6,
            "p50_us": meter.percentile(0.5), "p99_us": meter.percentile(0.99)}


def cascade(viewers: int) -> dict[str, dict[str, float]]:
    tree = Tree(seed=viewers)
    origin = tree.server("origin", "10.0.0.1")
    tree.server("tier2", "10.0.1.1", upstream="origin", first_client=20)
    edge = tree.server("edge", "10.0.2.1", upstream="tier2", first_client=40)
    origin.join("pub", slots=0)
    origin.connect()
    for i in range(viewers):
        edge.join(f"v{i}", publish=(), slots=1)
    edge.connect(until=10.0)
    publisher = ThreePackets(origin, origin.clients["pub"], 30)
    publisher.stream(WARM_UP, step=0.02)
    names = ("origin", "tier2", "edge")
    meters = {name: Meter(tree.cascade(name)) for name in names}

    def sent() -> dict[str, int]:
        out = {name: sum(d.stats.packets for d in tree.cascade(name).downlinks.values()) for name in names[:2]}
        out["edge"] = edge.core.stats.forwarded_packets
        return out

    before = sent()
    publisher.stream(SECONDS, step=0.02)
    after = sent()
    return {name: {"sent": after[name] - before[name],
                   "us_per_packet": meters[name].cpu / max(1, after[name] - before[name]) * 1e6,
                   "p50_us": meters[name].percentile(0.5), "p99_us": meters[name].percentile(0.99)}
            for name in names}


def main() -> None:
    if sys.argv[1:2] == ["--real"]:
        from bench import broadcast_real
        broadcast_real.main(sys.argv[2:])
        return
    counts = [int(a) for a in sys.argv[1:]] or [10, 50, 200]
    print(f"{'viewers':>7} {'server':>8} {'sent':>7} {'CPU us/packet':>13} {'in-core p50 us':>14} {'p99 us':>8}")
    for n in counts:
        tiers = cascade(n)
        alone = single_server(n)
        for name, r in tiers.items():
            print(f"{n:>7} {name:>8} {r['sent']:>7} {r['us_per_packet']:>13.1f} {r['p50_us']:>14.0f} "
                  f"{r['p99_us']:>8.0f}")
        print(f"{n:>7} {'alone':>8} {alone['forwarded']:>7} {alone['us_per_packet']:>13.1f} "
              f"{alone['p50_us']:>14.0f} {alone['p99_us']:>8.0f}")
        ratio = tiers["edge"]["us_per_packet"] / alone["us_per_packet"]
        added = sum(tiers[t]["p99_us"] for t in ("origin", "tier2"))
        print(f"{n:>7} edge/alone CPU per packet {ratio:.2f}; origin + tier 2 add p99 {added:.0f} us in their cores",
              flush=True)


if __name__ == "__main__":
    main()
