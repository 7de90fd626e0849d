"""What holds the call server's loop: ``bench/sfu_janus.py`` with the daemon's entry points timed.

Runs ``bench/sfu_janus.py``'s netcore-sfu rounds (Janus too, as that script
does) with the daemon started through this file (``--daemon``), which times,
without changing what runs, every call into the daemon's one driver
(``Driver.receive`` per datagram, classified as the publisher's RTP, RTCP,
STUN or DTLS by its first bytes; ``Driver._timeout``, with the transports
whose timers fired), in wall time and in the loop thread's CPU time (a call
long in wall time only: the process was not running), the compiled path's
``forward`` and the core's ``handle_datagram`` within each, and every
collection of the cyclic garbage collector, and writes them to a file when
it stops. The window of each round is the span between the bench's two
reads of ``/metrics``. Then it prints, per
round: the distribution of call lengths per kind, the loop's calls of 1 ms
and more, and for each publisher RTP datagram how long the loop had been
busy (calls less than ``GAP`` apart) before it started: the wait behind
other work that shows in a latency tail. Usage:
``python bench/sfu_looptrace.py [--rounds R] [N ...]`` (default one round of 10).

``--cold`` instead runs ``bench/sfu.py``'s room (N subscribers, the
simulated network) and times the core's ``handle_datagram`` per publisher
RTP and subscriber RTCP datagram four ways: back to back (a hot loop), after
a 0.3 ms sleep before each, after 16 MB of memory written before each (the
caches evicted, as the daemon's are by the other processes between two
datagrams), and both: what a datagram costs a loop that starts it cold.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

GAP = 50e-6  # seconds: calls closer than this are one busy stretch of the loop
BATCH = 15e-6  # seconds: datagrams handled closer than this were read in one batch
LONG = 1e-3  # seconds: a call this long is listed
ENV = "NETCORE_SFU_LOOPTRACE"  # the daemon writes its records to this file


def _kind(data: bytes) -> str:
    """RFC 7983's demultiplexing by the first byte, and RTP from RTCP by the second (RFC 5761)."""
    first = data[0] if data else 0
    if first < 4:
        return "stun"
    if 20 <= first < 64:
        return "dtls"
    if 128 <= first < 192:
        return "rtcp" if len(data) > 1 and 192 <= data[1] <= 223 else "rtp"
    return "other"


def daemon() -> None:
    """Run netcore-sfu with its driver's entry points and the collector timed (see the module docstring)."""
    from netcore.driver import Driver
    from netcore.peer.transport import MediaTransport
    from netcore.sfu.core import SfuCore
    from netcore.sfu.fastpath import FastPath
    from servers.sfu import main as sfu_main
    from servers.sfu.server import SfuServer

    records: list[tuple] = []  # (start, end, kind, detail)
    clock, thread_time = time.monotonic, time.thread_time
    receive, timeout, metrics = Driver.receive, Driver._timeout, SfuServer._metrics
    transport_timeout = MediaTransport.handle_timeout
    fired: list[float] = []
    forwarding: list[float] = []  # CPU of the compiled path's forward in the current call
    fast_forward = FastPath.forward

    def timed_datagram(call):
        """``call(driver, datagram)`` recorded as one datagram of its kind (a whole receive, or one of a batch)."""
        def timed(self, datagram):
            forwarding.clear()
            start, cpu = clock(), thread_time()
            call(self, datagram)
            records.append((start, clock(), _kind(datagram.data), [len(datagram.data), thread_time() - cpu,
                                                                   sum(f for f in forwarding if f > 0),
                                                                   -sum(f for f in forwarding if f < 0)]))
        return timed

    timed_receive = timed_datagram(receive)
    handle_one = getattr(Driver, "_handle", None)  # a batch's datagrams, each (code that reads in batches)
    receive_batch = getattr(Driver, "receive_batch", None)

    def timed_batch(self, datagrams):
        datagrams = list(datagrams)
        first, cpu = len(records), thread_time()
        receive_batch(self, datagrams)
        spent = thread_time() - cpu - sum(r[3][1] for r in records[first:] if r[2] != "gc")
        records.append((records[-1][1] if len(records) > first else clock(), clock(), "flush",
                        [len(datagrams), spent, 0.0, 0.0]))  # the events and the deadline, once a batch

    core_handle = SfuCore.handle_datagram

    def timed_core(self, datagram, now):
        cpu = thread_time()
        core_handle(self, datagram, now)
        forwarding.append(-(thread_time() - cpu))  # negative: the core's whole handling

    def timed_forward(self, *args):
        cpu = thread_time()
        result = fast_forward(self, *args)
        forwarding.append(thread_time() - cpu)
        return result

    def timed_timeout(self, now):
        fired.clear()
        start, cpu = clock(), thread_time()
        timeout(self, now)
        records.append((start, clock(), "timer", [len(fired), thread_time() - cpu, sum(fired), start - now]))

    def timed_transport_timeout(self, now):
        start = clock()
        transport_timeout(self, now)
        fired.append(clock() - start)

    def timed_metrics(self):
        start = clock()
        text = metrics(self)
        records.append((start, clock(), "metrics", 0))
        return text

    gc_start = [0.0]

    def collected(phase, info):
        if phase == "start":
            gc_start[0] = clock()
        else:
            records.append((gc_start[0], clock(), "gc", info.get("generation")))

    Driver.receive, Driver._timeout, SfuServer._metrics = timed_receive, timed_timeout, timed_metrics
    if receive_batch is not None:
        Driver._handle, Driver.receive_batch = timed_datagram(handle_one), timed_batch
    MediaTransport.handle_timeout = timed_transport_timeout
    FastPath.forward = timed_forward
    SfuCore.handle_datagram = timed_core
    gc.callbacks.append(collected)
    try:
        sfu_main.main(sys.argv[2:])
    finally:
        with open(os.environ[ENV], "w") as out:
            json.dump(records, out)


def windows(records: list) -> list[list]:
    """The records between each pair of ``/metrics`` reads (a round's window), in order."""
    marks = [r[1] for r in records if r[2] == "metrics"]
    return [[r for r in records if a <= r[0] and r[1] <= b and r[2] != "metrics"]
            for a, b in zip(marks[0::2], marks[1::2])]


def _quantiles(values: list[float]) -> str:
    values = sorted(values)
    if not values:
        return "-"
    at = lambda q: values[min(len(values) - 1, int(len(values) * q))] * 1e3  # noqa: E731
    return f"n={len(values)} p50={at(0.5):.3f} p99={at(0.99):.3f} max={values[-1] * 1e3:.3f} ms"


def report(window: list, seconds: float) -> None:
    """Call lengths per kind, the long calls, and what each publisher packet waited behind."""
    window.sort()
    kinds: dict[str, list[float]] = {}
    cpus: dict[str, list[float]] = {}
    for start, end, kind, detail in window:
        kinds.setdefault(kind, []).append(end - start)
        if kind != "gc":
            cpus.setdefault(kind, []).append(detail[1])
    for kind, lengths in sorted(kinds.items()):
        print(f"  {kind:<6} wall {_quantiles(lengths)}  total {sum(lengths) / seconds * 1e3:.1f} ms/s")
        if kind in cpus:
            print(f"  {'':<6} CPU  {_quantiles(cpus[kind])}  total {sum(cpus[kind]) / seconds * 1e3:.1f} ms/s")
    forwards = [detail[2] for _, _, kind, detail in window if kind == "rtp"]
    print(f"  rtp    CPU in the compiled forward {_quantiles(forwards)}")
    sizes = [detail[0] for _, _, kind, detail in window if kind == "flush"]
    if sizes:
        print(f"  read batches: {len(sizes)}, datagrams each p50 {statistics.median(sizes):.0f} max {max(sizes)}, "
              f"{sum(1 for n in sizes if n > 1) / len(sizes) * 100:.0f} % of more than one")
    for kind in ("rtp", "rtcp"):
        print(f"  {kind:<6} CPU in the core's handle_datagram "
              f"{_quantiles([detail[3] for _, _, k, detail in window if k == kind])}")
    busy = sum(end - start for start, end, kind, _ in window if kind != "gc")
    print(f"  loop busy {busy / seconds * 100:.1f} % of the window")
    longs = [r for r in window if r[1] - r[0] >= LONG]
    print(f"  calls of {LONG * 1e3:.0f} ms and more: {len(longs)}")
    for start, end, kind, detail in longs[:16]:
        print(f"    {(end - start) * 1e3:6.2f} ms {kind} {json.dumps(detail)}")
    waits, cpu_waits, behind = [], [], {}
    stretch_start, previous_end, stretch = None, None, []
    for record in window:
        start, end, kind, _ = record
        if previous_end is None or start - previous_end > GAP:
            stretch_start, stretch = start, []
        if kind == "rtp":
            wait = start - stretch_start
            waits.append(wait)
            cpu_waits.append(sum(o[1] - o[0] if o[2] == "gc" else o[3][1] for o in stretch))
            for other in stretch:
                behind.setdefault(other[2], []).append((wait, other[1] - other[0]))
        stretch.append(record)
        previous_end = max(end, previous_end or end)
    print(f"  publisher RTP: busy before it {_quantiles(waits)}")
    print(f"  publisher RTP: CPU of the loop before it in that stretch {_quantiles(cpu_waits)}")
    print(f"  publisher RTP: CPU of other kinds before it in its read batch {_quantiles(batch_waits(window))}")
    tail = sorted(waits)[int(len(waits) * 0.99)] if waits else 0
    shares = {kind: sum(length for wait, length in pairs if wait >= tail) for kind, pairs in behind.items()}
    total = sum(shares.values()) or 1
    print("  in the stretches before the slowest 1 %: " +
          ", ".join(f"{kind} {share / total * 100:.0f} %" for kind, share in sorted(shares.items(), key=lambda x: -x[1])))


def batch_waits(window: list) -> list[float]:
    """For each publisher RTP datagram, the CPU spent on other kinds of datagrams just before it in the
    same batch of reads (calls less than ``BATCH`` apart): what handling it first would save it."""
    waits, before, previous_end = [], 0.0, None
    for start, end, kind, detail in window:
        if previous_end is None or start - previous_end > BATCH or kind in ("timer", "gc"):
            before = 0.0
        if kind == "rtp":
            waits.append(before)
        elif kind not in ("timer", "gc"):
            before += detail[1]
        previous_end = end
    return waits


def cold(subscribers: int) -> None:
    """The core's CPU per datagram, hot and with its caches cold (see the module docstring)."""
    from bench.sfu import STEADY_WARM_UP, Room, ThreePackets
    from netcore.demux import PacketKind

    scratch = bytearray(16 << 20)
    for sleep, evict in ((False, False), (True, False), (False, True), (True, True)):
        room = Room(seed=subscribers)
        room.join("pub", slots=0)
        for i in range(subscribers):
            room.join(f"sub{i}", publish=(), slots=1)
        room.connect(until=10.0)
        core = room.core
        publisher = ThreePackets(room, room.clients["pub"], 30)
        publisher.stream(STEADY_WARM_UP, step=0.02)
        spent: dict[str, list[float]] = {"rtp": [], "rtcp": []}
        handle = core.handle_datagram

        def timed(datagram, now, handle=handle, spent=spent, sleep=sleep, evict=evict):
            if evict:
                scratch[::64] = bytes(len(scratch) // 64)
            if sleep:
                time.sleep(0.0003)
            cpu = time.thread_time()
            handle(datagram, now)
            kind = {PacketKind.RTP: "rtp", PacketKind.RTCP: "rtcp"}.get(datagram.kind)
            if kind is not None:
                spent[kind].append(time.thread_time() - cpu)

        core.handle_datagram = timed
        publisher.stream(2.0, step=0.02)
        print(f"sleep {'0.3 ms' if sleep else 'none':<6} evict {'16 MB' if evict else 'none':<5}: " +
              ", ".join(f"{kind} p50 {statistics.median(v) * 1e6:.0f} us" for kind, v in spent.items() if v),
              flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--daemon":
        daemon()
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("counts", nargs="*", type=int, default=[10])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--keep", action="store_true", help="keep the daemon's records (their file is printed)")
    parser.add_argument("--cold", action="store_true", help="the core's cost per datagram, hot and cold (no daemon)")
    args = parser.parse_args()
    if args.cold:
        for n in args.counts:
            cold(n)
        return
    
    import bench.sfu_janus as sfu_janus
    import tests.sfu.live as live
    from netcore.aio import run

    trace = tempfile.NamedTemporaryFile(prefix="sfu-looptrace-", suffix=".json", delete=False).name
    os.environ[ENV] = trace
    start = live._start

    async def traced(argv, log, env=None, ready=b"listening"):
        if argv[:2] == ["-m", "servers.sfu.main"]:
            argv = [os.path.abspath(__file__), "--daemon", *argv[2:]]
        return await start(argv, log, env, ready)

    live._start = traced
    run(sfu_janus.bench(args.counts, args.rounds, 3.0, args.seconds, None, 2))
    with open(trace) as f:
        records = json.load(f)
    if not args.keep:
        os.unlink(trace)
    if args.keep:
        print("records:", trace)
    for i, window in enumerate(windows(records)):
        print(f"netcore-sfu round {i + 1}:")
        report(window, args.seconds)


if __name__ == "__main__":
    main()
