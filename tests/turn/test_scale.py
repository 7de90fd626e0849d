"""A thousand allocations on one daemon: created, refreshed, used and deleted, with exact counters.

The fleet (``tests/turn/fleet.py``) drives a thousand sans-IO TURN clients
and a thousand echo peers on one thread; client ``i`` relays to peer ``i``
only. At the end every count the operator sees -- the metrics and one log
line per allocation created, refreshed and deleted -- must be exact.
"""

from __future__ import annotations

import re
import signal

import pytest

from tests.conftest import free_port
from tests.peers import netcore_turn_process
from tests.turn.fleet import Fleet
from tests.turn.test_daemon import metrics

COUNT = 1000
PACKETS = 5
SIZE = 160


@pytest.mark.parametrize("data_path", ["native", "python"])
def test_a_thousand_allocations_each_relaying_only_to_its_own_peer(tmp_path, data_path):
    from tests.turn.live import free_port_range

    low, high = free_port_range(COUNT + 20)
    metrics_port = free_port(__import__("socket").SOCK_STREAM)
    with netcore_turn_process(tmp_path, "--user", "fleet:fleet", "--allow-loopback-peers", "--data-path", data_path,
                              "--min-port", str(low), "--max-port", str(high), "--user-quota", str(COUNT),
                              "--total-quota", str(COUNT), "--metrics", f"127.0.0.1:{metrics_port}",
                              "--log-level", "info") as (proc, port):
        fleet = Fleet(("127.0.0.1", port), "fleet", "fleet", COUNT)
        try:
            fleet.allocate(timeout=60)
            assert fleet.allocated() == COUNT
            fleet.bind(timeout=60)
            fleet.refresh(timeout=60)
            fleet.exchange(PACKETS, SIZE, timeout=60)
            assert fleet.echoes == [PACKETS] * COUNT
            assert fleet.strays == 0
            relayed = {c.relayed_address for c in fleet.clients}
            assert len(relayed) == COUNT
            for client, sources in zip(fleet.clients, fleet.peer_sources):
                assert sources == {client.relayed_address}  # each peer heard from its own allocation only
            values = metrics(metrics_port)
            assert values["turn_allocations_active"] == COUNT
            assert values["turn_channels_active"] == COUNT
            fleet.delete(timeout=60)
        finally:
            fleet.close()
        values = metrics(metrics_port)
        assert values["turn_allocations_active"] == 0
        assert values["turn_allocations_total"] == COUNT
        for direction in ("to_peer", "to_client"):
            assert values[f'turn_relayed_packets_total{{direction="{direction}"}}'] == COUNT * PACKETS
            assert values[f'turn_relayed_bytes_total{{direction="{direction}"}}'] == COUNT * PACKETS * SIZE
        assert values["turn_bandwidth_dropped_total"] == 0
        if data_path == "native":
            assert values["turn_native_handoff_drops_total"] == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    log = (tmp_path / "netcore-turn.log").read_text()
    assert log.count("allocation created ") == COUNT
    assert log.count("allocation refreshed ") == COUNT
    deleted = re.findall(r"allocation deleted client=(\S+) .*packets_to_peer=(\d+) bytes_to_peer=(\d+) "
                         r"packets_to_client=(\d+) bytes_to_client=(\d+)", log)
    assert len({client for client, *_ in deleted}) == COUNT
    assert {tuple(map(int, counts)) for _, *counts in deleted} == {(PACKETS, PACKETS * SIZE) * 2}
    assert "allocation shutdown" not in log
