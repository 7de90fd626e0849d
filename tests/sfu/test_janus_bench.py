"""The Janus side of ``bench/sfu_janus.py`` against a real ``janus``, so that the benchmark's anchor cannot rot.

``janus`` (VideoRoom plugin and HTTP transport only, a fresh configuration
folder, a free RTP port range) and the benchmark's driver: it makes a room
over the JSON API, publishes the replayed VP8 + Opus streams from one of our
transports and subscribes two receive-only ones (in the benchmark's worker
processes), then measures for a short window. Both subscribers must receive
audio and video, their packets' payload counters must match what the
publisher sent (so latency is measured), and the server's CPU must be read.

Janus' ICE library leaves loopback interfaces out, so it needs another
address: the test makes a network namespace of its own with a veth pair in
it and runs the driver and Janus there, so no packet leaves it.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

from tests.peer.netns import ROOT, Netns, require_namespaces, sh

DRIVER = """
import asyncio, dataclasses, json, pathlib, sys
from bench.sfu_janus import DtlsCertificate, janus_process, run_janus
from tests.turn.live import free_port_range

with janus_process(pathlib.Path(sys.argv[1]), free_port_range(40)) as (janus, port):
    figures = asyncio.run(asyncio.wait_for(
        run_janus(port, janus.pid, 2, DtlsCertificate.generate(), warmup=1.0, seconds=3.0), 90))
print(json.dumps(dataclasses.asdict(figures)))
"""


def test_janus_driver_publishes_to_two_subscribers(tmp_path):
    require_namespaces()
    ns = Netns("janus")
    try:
        # a veth pair with both ends inside (this kernel has no dummy devices): an address that is
        # not loopback for Janus' host candidate
        tag = f"{ns.name[-8:]}"
        sh("ip", "link", "add", f"ja{tag}", "type", "veth", "peer", "name", f"jb{tag}")
        for name, ip in ((f"ja{tag}", "10.77.0.1/24"), (f"jb{tag}", "10.77.0.2/24")):
            sh("ip", "link", "set", name, "netns", ns.name)
            ns.ex("ip", "addr", "add", ip, "dev", name)
            ns.ex("ip", "link", "set", name, "up")
        done = subprocess.run(["ip", "netns", "exec", ns.name, sys.executable, "-c", DRIVER, str(tmp_path)],
                              capture_output=True, text=True, cwd=ROOT, timeout=180,
                              env={"PYTHONPATH": str(ROOT), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    finally:
        ns.down()
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["connected"] == 3  # the publisher and both subscribers
    assert figures["streams"] == [2, 2]  # audio and video at each
    # 140 packets/s to each subscriber for 3 s: most of them, whatever the machine's load
    assert figures["packets"] > 300, figures
    assert figures["loss"] < 0.2, figures
    assert figures["stamped"] > 0.9, figures  # arrivals matched to their send times
    assert 0 < figures["p50_ms"] <= figures["p99_ms"], figures
    assert 0 < figures["cpu_us_per_packet"] and math.isfinite(figures["cpu_us_per_packet"]), figures


def test_a_share_of_a_core_holds_a_busy_process_to_it():
    """``--cpu-share``'s cgroup (CFS bandwidth control) holds every thread of a process to its share while it
    is in it, and the group is gone afterwards."""
    import time

    from bench._cgroup import CGROUP_CPU, cpu_share
    from bench.sfu_janus import cpu_seconds

    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        with cpu_share(busy.pid, 0.2, "test"):
            groups = [p for p in CGROUP_CPU.iterdir() if p.name.startswith("netcore-bench-")]
            assert len(groups) == 1 and str(busy.pid) in (groups[0] / "cgroup.procs").read_text().split()
            start = cpu_seconds(busy.pid)
            time.sleep(1.0)
            used = cpu_seconds(busy.pid) - start
        assert 0.1 <= used <= 0.3, used  # a fifth of one core over a second, give or take a tick
        assert not [p for p in CGROUP_CPU.iterdir() if p.name.startswith("netcore-bench-")]
        assert str(busy.pid) in (CGROUP_CPU / "cgroup.procs").read_text().split()  # back where it was
    finally:
        busy.kill()
        busy.wait()


def test_a_server_carries_n_on_its_share_only_under_the_loss_and_busy_bounds():
    from bench.sfu_janus import Figures, share_verdict

    def figures(loss: float, us_per_packet: float) -> Figures:  # 17,000 packets a second over 20 s
        return Figures("netcore-sfu", 100, packets=340_000, cpu_us_per_packet=us_per_packet, p99_ms=10.0,
                       loss=loss)

    carried, line = share_verdict("netcore-sfu", 100, 0.25, 20.0, [figures(0.0, 10.0)])
    assert carried and "busy 68%" in line and "400 subscribers per core" in line
    assert not share_verdict("netcore-sfu", 100, 0.25, 20.0, [figures(0.0, 10.0), figures(0.006, 10.0)])[0]
    assert not share_verdict("netcore-sfu", 100, 0.25, 20.0, [figures(0.0, 13.5)])[0]  # 92 %: saturated
