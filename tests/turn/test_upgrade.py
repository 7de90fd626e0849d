"""Graceful upgrade: a new daemon takes the listening sockets while the old one drains.

Mid-traffic, a second ``netcore-turn`` started with the same ``--handover``
path takes over the UDP listener: the old daemon's allocations keep
relaying (every echo of every packet comes back, before, during and after
the takeover), are refreshed and deleted there with exact counters in its
log, new allocations are created by the new daemon, and the old one exits
once its last allocation has ended.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.peers import netcore_turn_process, wait_for_stun
from tests.turn.fleet import Fleet
from tests.turn.live import free_port_range

OLD, NEW = 20, 20
SIZE = 100


def log_of(directory: Path) -> str:
    return (directory / "netcore-turn.log").read_text()


@pytest.mark.parametrize("data_path", ["native", "python"])
def test_old_allocations_keep_relaying_while_new_ones_go_to_the_new_daemon(tmp_path, data_path):
    low, high = free_port_range(OLD + NEW + 10)
    path = str(tmp_path / "handover.sock")
    args = ["--user", "u:p", "--allow-loopback-peers", "--data-path", data_path, "--min-port", str(low),
            "--max-port", str(high), "--handover", path, "--log-level", "info"]
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    with netcore_turn_process(tmp_path / "old", *args) as (old, port):
        old_fleet = Fleet(("127.0.0.1", port), "u", "p", OLD)
        new_fleet = None
        try:
            old_fleet.allocate(30)
            old_fleet.bind(30)
            packets = 0
            for _ in range(5):
                old_fleet.exchange(1, SIZE, timeout=10)
                packets += 1
            cmd = [sys.executable, "-m", "servers.turn.main", "--listen", f"127.0.0.1:{port}", *args]
            env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
            with open(tmp_path / "new" / "netcore-turn.log", "wb") as out:
                new = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
            try:
                deadline = time.monotonic() + 30
                while "handed the listeners over" not in log_of(tmp_path / "old"):  # traffic all along
                    assert time.monotonic() < deadline and new.poll() is None
                    old_fleet.exchange(1, SIZE, timeout=10)
                    packets += 1
                for _ in range(20):
                    old_fleet.exchange(1, SIZE, timeout=10)
                    packets += 1
                wait_for_stun(port)
                new_fleet = Fleet(("127.0.0.1", port), "u", "p", NEW)
                new_fleet.allocate(30)
                new_fleet.bind(30)
                new_fleet.exchange(3, SIZE, timeout=10)
                old_fleet.refresh(30)
                old_fleet.exchange(3, SIZE, timeout=10)
                packets += 3
                assert old_fleet.echoes == [packets] * OLD  # zero loss on the old allocations
                assert old_fleet.strays == new_fleet.strays == 0
                old_fleet.delete(30)
                assert old.wait(20) == 0  # drained: its last allocation ended
                new_fleet.exchange(3, SIZE, timeout=10)  # the new daemon serves on alone
                assert new_fleet.echoes == [6] * NEW
                new_fleet.delete(30)
            finally:
                new.terminate()
                assert new.wait(20) == 0
        finally:
            old_fleet.close()
            if new_fleet is not None:
                new_fleet.close()
    old_log, new_log = log_of(tmp_path / "old"), log_of(tmp_path / "new")
    assert old_log.count("allocation created ") == OLD and new_log.count("allocation created ") == NEW
    assert old_log.count("allocation refreshed ") == OLD and "allocation refreshed " not in new_log
    counts = re.findall(r"allocation deleted .*packets_to_peer=(\d+) bytes_to_peer=(\d+) packets_to_client=(\d+) "
                        r"bytes_to_client=(\d+)", old_log)
    assert set(counts) == {(str(packets), str(packets * SIZE)) * 2} and len(counts) == OLD
    assert old_log.count("drained: every allocation has ended") == 1
    assert re.findall(r"allocation deleted .*packets_to_peer=(\d+) ", new_log) == ["6"] * NEW
