"""Where the slow frames of our impaired call spend their time: per-frame stage timing.

Runs ``bench/call.py``'s call between two of our peers under its impairment
(5 % loss, 25-55 ms one way) with ``callpeer --trace``, joins the two peers'
traces by RTP timestamp and splits each shown frame's glass-to-glass latency
into stages: encode (camera to coded), pacer (coded to its last packet's
first copy on the wire), network (to the last packet's first arrival, an RTX
included), jitter buffer (complete to let out) and decode plus sink. For the
frames at or above the p99 it says why they were slow: a packet recovered by
RTX (how many NACK rounds), a frame before it that held it, a key frame.

Usage: python3 bench/call_frames.py [--duration 30] [--keep DIR] [--loopback]
"""

from __future__ import annotations

import argparse
import bisect
import json
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.call import FPS, run_call  # noqa: E402

TICKS = 90_000 // FPS  # RTP timestamp per frame


def frames_of(sender: dict, receiver: dict, window: tuple[float, float]) -> list[dict]:
    """The frames ``sender`` took in ``window`` that ``receiver`` showed, with their stage times."""
    offset = sender["offsets"][0]
    number_of = lambda ts: ((ts - offset) & 0xFFFFFFFF) // TICKS  # noqa: E731
    taken = {n: t for n, t in sender["sent"] if window[0] <= t <= window[1]}
    shown = {n: t for n, t in receiver["shown"] if n in taken}
    encoded = {number_of(e[0]): e for e in sender["encoded"]}
    first_wire: dict[int, float] = {}
    rtx_wire: dict[int, list[float]] = defaultdict(list)
    for t, rtx, seq, _ in sender["wire"]:
        if rtx:
            rtx_wire[seq].append(t)
        else:
            first_wire.setdefault(seq, t)
    arrival: dict[int, tuple[float, bool]] = {}
    for t, _, seq, rtx in receiver["arrived"]:
        arrival.setdefault(seq, (t, rtx))
    nacks: dict[int, list[float]] = defaultdict(list)
    for t, lost, *_ in receiver["nack_out"]:
        for seq in lost:
            nacks[seq].append(t)
    popped = {number_of(ts): t for t, ts, _, _ in receiver["popped"] if ts is not None}
    plis = sorted(receiver["pli_out"])
    out = []
    for n, shown_at in shown.items():
        e = encoded.get(n)
        if e is None:
            continue
        ts, capture, _, coded, seq0, count, size, key = e
        seqs = [(seq0 + i) & 0xFFFF for i in range(count)]
        wires = [first_wire.get(s) for s in seqs]
        arrivals = [arrival.get(s) for s in seqs]
        if None in wires or None in arrivals:
            continue
        lost = [s for s, a in zip(seqs, arrivals) if a[1]]
        complete = max(a[0] for a in arrivals)
        out.append({
            "number": n, "latency": shown_at - taken[n], "key": key, "packets": count, "bytes": size,
            "encode": coded - taken[n], "pacer": max(wires) - coded,
            "network": complete - max(wires), "jitter": popped.get(n, shown_at) - complete,
            "decode": shown_at - popped.get(n, shown_at),
            "lost": len(lost), "rounds": max((len(nacks[s]) for s in lost), default=0),
            "rtx_sent": max((len(rtx_wire[s]) for s in lost), default=0),
            "first_nack_to_rtx": max((arrival[s][0] - nacks[s][0] for s in lost if nacks[s]), default=0.0),
            "pli_before": bool(plis) and bisect.bisect(plis, shown_at) > bisect.bisect(plis, taken[n] - 0.5),
        })
    return sorted(out, key=lambda f: f["number"])


def held_by(frames: list[dict], frame: dict) -> int | None:
    """The number of an earlier frame with a lost packet that was let out after this one was complete."""
    done = frame["latency"] - frame["jitter"] - frame["decode"]
    for other in frames:
        if other["number"] >= frame["number"] or other["number"] < frame["number"] - 15:
            continue
        let_out = other["latency"] - other["decode"] - (frame["number"] - other["number"]) / FPS
        if other["lost"] and let_out > done:
            return other["number"]
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--keep", help="write the traces to this directory (else a temporary one)")
    parser.add_argument("--loopback", action="store_true", help="the unimpaired call (bench/call.py's loopback row)")
    args = parser.parse_args()
    directory = args.keep or tempfile.mkdtemp(prefix="call_frames.")
    Path(directory).mkdir(parents=True, exist_ok=True)
    result = run_call("ours", args.duration, not args.loopback, trace=directory)
    a = json.loads(Path(directory, "a.json").read_text())
    b = json.loads(Path(directory, "b.json").read_text())
    print(f"{'loopback' if args.loopback else 'impaired'} call, ours: p50 {result['p50'] * 1000:.0f} ms, p99 {result['p99'] * 1000:.0f} ms, "
          f"CPU {result['cpu'] * 100:.0f} %  (traces in {directory})")
    stages = ("encode", "pacer", "network", "jitter", "decode")
    frames = []
    for name, (sender, receiver) in (("a->b", (a, b)), ("b->a", (b, a))):
        these = frames_of(sender, receiver, result["window"])
        for f in these:
            f["direction"] = name
            f["held_by"] = held_by(these, f)
        frames += these
    latencies = sorted(f["latency"] for f in frames)
    p99 = latencies[int(len(latencies) * 0.99)]
    print(f"{len(frames)} frames traced; median ms per stage: " + ", ".join(
        f"{s} {statistics.median(f[s] for f in frames) * 1000:.1f}" for s in stages))
    lossy = [f for f in frames if f["lost"]]
    print(f"frames with a packet recovered by RTX: {len(lossy)} ({len(lossy) / len(frames):.1%}), latency p50 "
          f"{statistics.median(f['latency'] for f in lossy) * 1000:.0f} ms" if lossy else "no RTX")
    slow = sorted((f for f in frames if f["latency"] >= p99), key=lambda f: -f["latency"])
    print(f"\n{len(slow)} frames at or above the p99 ({p99 * 1000:.0f} ms):")
    print(f"{'dir':5} {'frame':>6} {'ms':>5} " + " ".join(f"{s:>7}" for s in stages)
          + f" {'key':>4} {'pkts':>4} {'lost':>4} {'nacks':>5} {'rtx':>4} {'nack->in':>8} {'held by':>7} pli")
    for f in slow:
        print(f"{f['direction']:5} {f['number']:6} {f['latency'] * 1000:5.0f} "
              + " ".join(f"{f[s] * 1000:7.1f}" for s in stages)
              + f" {'K' if f['key'] else '':>4} {f['packets']:4} {f['lost']:4} {f['rounds']:5} {f['rtx_sent']:4} "
              f"{f['first_nack_to_rtx'] * 1000:8.0f} {f['held_by'] if f['held_by'] is not None else '':>7} "
              f"{'y' if f['pli_before'] else ''}")


if __name__ == "__main__":
    main()
