"""The call server's forwarding path: CPU per forwarded packet and time added, with N receive-only subscribers.

One publisher sends VP8-shaped video (90 one-packet frames of 1000 bytes per
second) and Opus-shaped audio (50 packets/s) through one :class:`SfuCore` to
N subscribers that only receive, all on the simulated network (real ICE,
DTLS, SRTP, RTCP, TWCC; no sockets), for a few virtual seconds.  Measured
around the core's own entry points only (``handle_datagram``,
``handle_timeout``):

* CPU microseconds per forwarded packet (process time of the core's work:
  SRTP unprotect, routing, rewriting, SRTP protect, pacing, RTCP);
* time a media packet spends in ``handle_datagram`` (receive to the last
  subscriber's copy queued), p50 and p99: the latency the server adds
  before its pacer (the pacer lets audio out at once and video at 2.5x
  each subscriber's estimate).

With ``--simulcast`` the publisher sends three layers instead (RIDs q, h,
f: one packet of 300 bytes, one of 900 and three of about 1000 per frame at
30 frames/s, no SSRC signalled) and each subscriber's layer allocator picks
one (on this unlimited network they climb to f): the same packets per
subscriber as without, while the server receives 5/3 as many and runs the
allocators.

With ``--steady`` the one stream is measured after a 3 s warm-up (the
start probes' padding and the estimators' climb left out).

With ``--tl0`` the publisher sends VP8 L1T3 (TIDs 0,2,1,2, three packets of
about 1000 bytes per frame at 30 frames/s) and every subscriber asks for 3
frames a second of it (a broadcast's bulk viewer, ``--max-fps 3``): each
slot is given TL0 alone, three frames in four left out for it.  It is
measured after the same warm-up, once on the compiled forwarding path and
once on the Python one, in the same run (the ratio is what to quote on a
loaded machine).

Usage: ``python3 bench/sfu.py [--simulcast] [--steady] [--tl0] [N ...]`` (default 10 50 200).
The side-by-side run of the real daemon against Janus' VideoRoom, over real
sockets, is ``bench/sfu_janus.py``.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.dirname(__import__("os").path.abspath(__file__))))

from netcore.demux import PacketKind  # noqa: E402
from netcore.sfu import fastpath  # noqa: E402
from tests.sfu.harness import SERVER, Publisher, Room, SimulcastPublisher  # noqa: E402
from tests.sfu.test_temporal import TemporalPublisher  # noqa: E402

SECONDS = 2.0
WARM_UP = 6.0  # virtual seconds of simulcast before measuring
STEADY_WARM_UP = 3.0  # virtual seconds of one stream before measuring, with --steady


LAYERS = (("q", 180, 300), ("h", 360, 900), ("f", 720, 2900))  # rid, height, bytes per frame


class ThreePackets(Publisher):
    """One stream: three VP8-shaped packets of 1000 bytes per frame."""

    def frame(self, now: float) -> list:
        pub, room = self.client, self.room
        packets = []
        ssrc = pub.send["video"]
        for _ in range(3):
            packets += pub.video_packet(now, room.keyframe_wanted(pub) or pub.frame == 0, size=1000)[:1]
            pub.seq[ssrc] = (pub.seq[ssrc] - 1) & 0xFFFF  # the second packet is not sent: no gap in the numbers
        return packets


def run(subscribers: int, simulcast: bool = False, steady: bool = False, tl0: bool = False,
        compiled: bool | None = None) -> dict[str, float]:
    """``compiled``: the compiled forwarding path (True) or the Python one (False); None: as the environment
    says (``NETCORE_SFU_FORWARD``)."""
    room = Room(seed=subscribers)
    if compiled is not None:
        room.core.fastpath = fastpath.FastPath({SERVER: None}) if compiled else None
    room.join("pub", slots=0, simulcast=tuple(rid for rid, _, _ in LAYERS) if simulcast else ())
    for i in range(subscribers):
        room.join(f"sub{i}", publish=(), slots=1)
    room.connect(until=10.0)
    core = room.core
    spent = [0.0]
    media_times: list[float] = []
    handle, timeout = core.handle_datagram, core.handle_timeout

    def timed_datagram(datagram, now):
        start, cpu = time.perf_counter(), time.process_time()
        handle(datagram, now)
        spent[0] += time.process_time() - cpu
        if datagram.kind is PacketKind.RTP and datagram.source[0] == "192.0.2.1":
            media_times.append(time.perf_counter() - start)

    def timed_timeout(now):
        cpu = time.process_time()
        timeout(now)
        spent[0] += time.process_time() - cpu

    pub = room.clients["pub"]
    if simulcast:
        publisher: Publisher = SimulcastPublisher(room, pub, {r: h for r, h, _ in LAYERS},
                                                  {r: b for r, _, b in LAYERS}, 30)
        publisher.stream(WARM_UP, step=0.02)  # the allocators climb to the top layer (UP_HOLD) first
    elif tl0:
        publisher = TemporalPublisher(room, pub, frame_bytes=2900)
        publisher.stream(STEADY_WARM_UP, step=0.02)  # the TIDs' frame rates measured
        mid = next(m for m, p in core.participants["pub"].publications.items() if p.kind == "video")
        for i in range(subscribers):
            core.request_max_height(f"sub{i}", "pub", mid, None, room.net.now, max_fps=3)
        publisher.stream(1.0, step=0.02)
    else:
        publisher = ThreePackets(room, pub, 30)
        if steady:  # past the start probes' padding: what a call costs once it runs
            publisher.stream(STEADY_WARM_UP, step=0.02)
    core.handle_datagram, core.handle_timeout = timed_datagram, timed_timeout
    before = core.stats.forwarded_packets
    publisher.stream(SECONDS, step=0.02)
    forwarded = core.stats.forwarded_packets - before
    media_times.sort()
    if tl0:
        assert all(s.downtrack.temporal == 0 for p in core.participants.values() for s in p.slots
                   if s.kind == "video"), "every slot capped at TL0"
    return {"subscribers": subscribers, "forwarded": forwarded, "us_per_packet": spent[0] / forwarded * 1e6,
            "p50_us": statistics.median(media_times) * 1e6,
            "p99_us": media_times[int(len(media_times) * 0.99)] * 1e6}


def main() -> None:
    simulcast = "--simulcast" in sys.argv[1:]
    steady = "--steady" in sys.argv[1:]
    counts = [int(a) for a in sys.argv[1:] if not a.startswith("--")] or [10, 50, 200]
    if "--tl0" in sys.argv[1:]:
        tl0_main(counts)
        return
    print("simulcast: three layers" if simulcast else "one stream" + (", after a warm-up" if steady else ""))
    print(f"{'subscribers':>11} {'forwarded':>9} {'CPU us/packet':>13} {'in-core p50 us':>14} {'p99 us':>9}")
    for n in counts:
        r = run(n, simulcast, steady)
        print(f"{r['subscribers']:>11} {r['forwarded']:>9} {r['us_per_packet']:>13.1f} {r['p50_us']:>14.0f} "
              f"{r['p99_us']:>9.0f}", flush=True)


def tl0_main(counts: list[int]) -> None:
    """Every subscriber capped at TL0: the compiled path and the Python one side by side."""
    print(f"VP8 L1T3, every subscriber at TL0; load {os.getloadavg()[0]:.1f}")
    print(f"{'subscribers':>11} {'path':>8} {'forwarded':>9} {'CPU us/packet':>13} {'in-core p50 us':>14} "
          f"{'p99 us':>9}")
    for n in counts:
        rows = {}
        for compiled in (True, False):
            r = rows[compiled] = run(n, tl0=True, compiled=compiled)
            print(f"{n:>11} {'C' if compiled else 'Python':>8} {r['forwarded']:>9} {r['us_per_packet']:>13.1f} "
                  f"{r['p50_us']:>14.0f} {r['p99_us']:>9.0f}", flush=True)
        print(f"{'':>11} {'ratio':>8} {'':>9} {rows[False]['us_per_packet'] / rows[True]['us_per_packet']:>12.1f}x "
              f"(load {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
