"""What a studio's program costs the call server per forwarded packet: viewers of the program against
viewers of the camera itself (the anchor), in one run.

One camera sends VP8-shaped video (three one-packet frames of 1000 bytes,
30 frames/s) and Opus-shaped audio (50 packets/s) through one
:class:`SfuCore` on the simulated network (real ICE, DTLS, SRTP, RTCP,
TWCC; no sockets) to N receive-only viewers.  Anchor: the viewers
subscribe to the camera.  Studio: the room is a studio
(netcore.broadcast.studio) with the camera cut to and its microphone
picked, and the viewers are given the program: each camera packet goes
through the program switcher (its rewriting) and is forwarded again as the
program's.  Measured around the core's entry points as bench/sfu.py does:
CPU microseconds per packet forwarded to a viewer, and the time a camera
packet spends in ``handle_datagram`` (p50, p99), with the ratio studio /
anchor.

Usage: ``python3 bench/studio.py [N ...]`` (default 10 50 200).
"""

from __future__ import annotations

import statistics
import sys
import time

sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.dirname(__import__("os").path.abspath(__file__))))

from bench.sfu import SECONDS, ThreePackets  # noqa: E402
from netcore.broadcast.studio import Studios  # noqa: E402
from netcore.demux import PacketKind  # noqa: E402
from tests.sfu.harness import Room  # noqa: E402


class Stopwatch:
    """Wraps a core's ``handle_datagram`` and ``handle_timeout``: the CPU spent in them, and the wall time each
    media packet from ``source`` (an IP) spends in ``handle_datagram``."""

    def __init__(self, core, source: str) -> None:
        self.cpu = 0.0
        self.media: list[float] = []
        self._source = source
        self._datagram, self._timeout = core.handle_datagram, core.handle_timeout
        core.handle_datagram, core.handle_timeout = self.datagram, self.timeout

    def datagram(self, datagram, now: float) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self._datagram(datagram, now)
        self.cpu += time.process_time() - cpu
        if datagram.kind is PacketKind.RTP and datagram.source[0] == self._source:
            self.media.append(time.perf_counter() - wall)

    def timeout(self, now: float) -> None:
        cpu = time.process_time()
        self._timeout(now)
        self.cpu += time.process_time() - cpu

    def percentile(self, share: float) -> float:
        ordered = sorted(self.media)
        return statistics.median(ordered) if share == 0.5 else ordered[int(len(ordered) * share)]


def run(viewers: int, studio: bool) -> dict[str, float]:
    room = Room(seed=viewers)
    room.join("cam", slots=0)
    if studio:
        studios = Studios(room.core)
        studios.start("r1", "op", room.net.now)
        studios.command("studio.cut", "r1", {"source": {"publisher": "cam", "track": "1"}}, room.net.now)
        studios.command("studio.audio", "r1", {"source": {"publisher": "cam", "track": "0"}}, room.net.now)
    for i in range(viewers):
        room.join(f"viewer{i}", publish=(), slots=1)
    room.connect(until=10.0)
    camera = room.clients["cam"]
    watch = Stopwatch(room.core, camera.node.addresses[0][0])
    before = room.core.stats.forwarded_packets
    ThreePackets(room, camera, 30).stream(SECONDS, step=0.02)
    forwarded = room.core.stats.forwarded_packets - before
    return {"forwarded": forwarded, "us_per_packet": watch.cpu / forwarded * 1e6,
            "p50_us": watch.percentile(0.5) * 1e6, "p99_us": watch.percentile(0.99) * 1e6}


def main() -> None:
    counts = [int(a) for a in sys.argv[1:]] or [10, 50, 200]
    print(f"{'viewers':>7} {'path':>7} {'forwarded':>9} {'CPU us/packet':>13} {'in-core p50 us':>14} {'p99 us':>9}")
    for n in counts:
        anchor, program = run(n, False), run(n, True)
        for name, r in (("camera", anchor), ("program", program)):
            print(f"{n:>7} {name:>7} {r['forwarded']:>9} {r['us_per_packet']:>13.1f} {r['p50_us']:>14.0f} "
                  f"{r['p99_us']:>9.0f}")
        print(f"{n:>7} {'ratio':>7} {'':>9} {program['us_per_packet'] / anchor['us_per_packet']:>13.2f} "
              f"{program['p50_us'] / anchor['p50_us']:>14.2f} {program['p99_us'] / anchor['p99_us']:>9.2f}",
              flush=True)


if __name__ == "__main__":
    main()
