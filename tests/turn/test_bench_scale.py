"""The pieces of ``bench/turn_scale.py`` its figures rest on: the zero-loss search and a server's share of a core."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import turn_scale  # noqa: E402
from _cgroup import CGROUP_CPU, cpu_group, joined  # noqa: E402
from turn_scale import cpu_ns, process_tree, zero_loss  # noqa: E402


@pytest.mark.parametrize("capacity", [1_000, 1_900, 2_000, 7_777, 23_456, 150_000])
def test_the_zero_loss_search_lands_within_three_per_cent_under_a_capacity(monkeypatch, capacity):
    """A server that carries ``capacity`` round trips/s and loses above it: the search gives a rate it carried,
    at most 3 % under the capacity (0 under the step below the ramp's first rate)."""
    tried = []

    def generate(gen, socks, channel, size, rate, seconds):
        total = rate * len(socks)
        tried.append(total)
        sent = round(total * seconds)
        received = sent if total <= capacity else sent - 1
        return sent, received, 0, 0, 0

    monkeypatch.setattr(turn_scale, "generate", generate)
    monkeypatch.setattr(turn_scale, "drain", lambda socks: None)
    best = zero_loss("gen", [None] * 10, 0x4000, 160, 2.0)
    if capacity < 1600:
        assert best == 0
        return
    assert capacity * 0.97 <= best <= capacity, (best, tried)
    assert tried.count(max(tried)) == 3  # a rate that loses is tried three times before the search gives it up


def test_the_zero_loss_search_stops_past_a_ceiling(monkeypatch):
    def generate(gen, socks, channel, size, rate, seconds):
        return round(rate * seconds), round(rate * seconds), 0, 0, 0  # nothing ever lost

    monkeypatch.setattr(turn_scale, "generate", generate)
    monkeypatch.setattr(turn_scale, "drain", lambda socks: None)
    best = zero_loss("gen", [None], 0, 160, 1.0, ceiling=10_000)
    assert 10_000 <= best <= 12_500  # past the ceiling it was asked to show, not on to a million


@pytest.mark.skipif(os.geteuid() != 0 or not CGROUP_CPU.is_dir(), reason="needs root and cgroup v1's cpu controller")
def test_a_server_started_in_its_group_is_held_to_its_share_with_every_process_it_forks():
    busy = "import os\nos.fork()\nwhile True: pass\n"  # two processes, each spinning
    with cpu_group(0.3, "test-scale") as group:
        server = subprocess.Popen(joined(group, [sys.executable, "-c", busy]))
        try:
            time.sleep(0.3)
            pids = process_tree(server.pid)
            assert len(pids) == 2
            assert set(map(str, pids)) <= set((group / "cgroup.procs").read_text().split())
            start = cpu_ns(pids)
            time.sleep(1.0)
            used = (cpu_ns(pids) - start) / 1e9
            assert 0.2 <= used <= 0.4, used  # 0.3 of a core between the two, where alone they would take 2
        finally:
            for pid in process_tree(server.pid):
                os.kill(pid, 9)
            server.wait()
    assert not (CGROUP_CPU / f"netcore-bench-{os.getpid()}-test-scale").exists()
