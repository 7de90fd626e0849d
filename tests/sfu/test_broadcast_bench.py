"""``bench/broadcast.py --real`` on a small scale, so that the benchmark cannot rot.

Real processes on loopback, as in the benchmark (an origin with a traced
``netcore-call`` publisher, a tier-2 server, an edge; one viewer on the origin
and one on the edge, then two on the edge for one ramp step). What must hold
whatever the machine's load: both paths decoded the program's frames, every
glass-to-glass latency is positive (the publisher's and the viewers' notes
are on one clock and paired by frame number), and each tier's CPU and
packets were read from its process and its /metrics.
"""

from __future__ import annotations

import asyncio

from bench.broadcast_real import parse, run


def test_the_real_broadcast_benchmark_measures_both_paths_every_tier_and_a_ramp_step(capsys):
    figures = asyncio.run(asyncio.wait_for(run(parse(
        ["--viewers", "1", "--seconds", "3", "--ramp", "2", "--step-seconds", "2", "--budget", "200"])), 240))
    latency = figures["latency"]
    for path in ("direct", "cascade"):
        assert latency[path]["frames"] >= 15, (path, latency[path])  # 3 s at 30 frames/s, one viewer
        assert 0 < latency[path]["min"] <= latency[path]["p50"] <= latency[path]["p99"] < 5, (path, latency[path])
    servers = latency["servers"]
    assert servers["origin"]["viewers"] > 0 and servers["origin"]["links"] > 0, servers
    assert servers["tier2"]["links"] > 0 and servers["tier2"]["viewers"] == 0, servers
    assert servers["edge"]["viewers"] > 0 and servers["edge"]["links"] == 0, servers
    assert all(0 < s["us_per_packet"] < 100_000 for s in servers.values()), servers
    (step,) = figures["steps"]
    assert step["viewers"] == 2 and step["packets_per_viewer"] > 10 and 0 <= step["loss"] < 1, step
    out = capsys.readouterr().out
    assert "added per tier" in out and "the ramp ended at" in out, out
