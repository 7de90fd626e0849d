"""The real daemons write analytics events the worker aggregates."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import aioice.turn as aioice_turn

from netcore.turn.credentials import rest_api_password, rest_api_username
from servers.analytics.store import open_store
from servers.analytics.events import validate
from tests.peers import netcore_turn_process
from tests.turn.live import Inbox, echo_peer, free_port_range

from .conftest import analytics


async def test_netcore_turn_reports_allocations_with_bytes_and_packets(tmp_path):
    low, high = free_port_range(20)
    events = tmp_path / "turn-analytics.jsonl"
    username = rest_api_username(int(time.time()) + 3600, "alice")
    with netcore_turn_process(tmp_path, "--auth-secret", "s3cret", "--allow-loopback-peers",
                              "--min-port", str(low), "--max-port", str(high),
                              "--analytics", str(events), "--node", "T9") as (proc, port):
        peer_transport, peer = await echo_peer()
        inbox = Inbox()
        transport, _ = await aioice_turn.create_turn_endpoint(lambda: inbox, ("127.0.0.1", port),
                                                              username, rest_api_password("s3cret", username))
        for i in range(10):
            transport.sendto(b"%d" % i, peer)
            await asyncio.wait_for(inbox.queue.get(), 5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        transport.close()
        peer_transport.close()
    records = [validate(json.loads(line)) for line in events.read_text().splitlines()]
    assert [r["event"] for r in records] == ["turn.allocation.granted", "turn.allocation.deleted"]
    granted, deleted = records
    assert granted["allocation_id"] == deleted["allocation_id"] and granted["node"] == "T9"
    assert granted["user"] == deleted["user"] == "alice"  # the user part of a REST API name
    assert deleted["reason"] == "shutdown"
    assert deleted["packets_to_peer"] == deleted["packets_to_client"] == 10
    assert deleted["bytes_to_peer"] == deleted["bytes_to_client"] == 10
    db = str(tmp_path / "a.db")
    analytics("--database", db, "worker", "--jsonl", str(events), "--until-drained")
    store = open_store(db)
    (row,) = store.table("allocations")
    assert (row["user_name"], row["node"], row["packets_to_peer"], row["bytes_to_client"]) == ("alice", "T9", 10, 10)
    (user,) = store.table("users")
    assert (user["user_name"], user["allocations"], user["relayed_bytes"]) == ("alice", 1, 20)
    store.close()
