"""The real daemons write analytics events the worker aggregates."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid

import pytest

import aioice.turn as aioice_turn

from netcore.turn.credentials import rest_api_password, rest_api_username
from servers.analytics.store import open_store
from servers.analytics.events import validate
from tests.signal.helpers import login, make_friends, register
from tests.signal.test_daemon import start_daemon
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


async def test_netcore_signal_samples_reach_the_call_aggregates_through_redis(tmp_path, redis_url):
    proc, port = await start_daemon(tmp_path, "--redis", redis_url, "--node-id", "S7")
    try:
        a, b = f"an_{uuid.uuid4().hex[:8]}", f"bo_{uuid.uuid4().hex[:8]}"
        await register(port, a)
        await register(port, b)
        ca, cb = await login(port, a), await login(port, b)
        await make_friends(ca, cb)
        call_id = (await ca.ok("call.invite", {"to": b, "media": ["audio", "video"]}))["call_id"]
        await cb.ok("call.accept", {"call_id": call_id})
        first = {"path": "relay", "rtt_ms": 40.0, "loss": 0.02, "jitter_ms": 4.0, "freezes": 1, "width": 640,
                 "height": 480, "bitrate_kbps": 900.5, "connect_ms": 1200.0, "local_type": "relay",
                 "remote_type": "host"}
        await ca.ok("call.quality", {"call_id": call_id, **first})
        await ca.ok("call.quality", {"call_id": call_id, "path": "direct", "rtt_ms": 60.0, "loss": 0.0,
                                     "jitter_ms": 6.0, "freezes": 3})
        await cb.ok("call.quality", {"call_id": call_id, "path": "direct", "rtt_ms": 50.0, "loss": 0.01,
                                     "connect_ms": 900.0})
        with pytest.raises(Exception):  # still validated: an unknown candidate type is refused
            await cb.ok("call.quality", {"call_id": call_id, "path": "direct", "rtt_ms": 1, "loss": 0,
                                         "local_type": "teleport"})
        await ca.ok("call.hangup", {"call_id": call_id})
        await cb.expect("call.ended")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    db = str(tmp_path / "a.db")
    stats = analytics("--database", db, "worker", "--redis", redis_url, "--group", f"g{uuid.uuid4().hex}",
                      "--until-drained")
    assert stats["malformed"] == stats["unknown"] == 0
    store = open_store(db)
    row = next(r for r in store.table("calls") if r["call_id"] == call_id)
    assert (row["node"], row["caller"], row["callee"], row["outcome"]) == ("S7", a, b, "answered")
    assert (row["path_up"], row["path_down"], row["path_switches"]) == ("direct", "direct", 1)
    assert (row["samples"], row["relay_share"], row["freezes"]) == (3, 0.333, 3)
    assert (row["rtt_ms"], row["loss"], row["jitter_ms"], row["connect_time"]) == (50.0, 0.01, 5.0, 1.2)
    assert row["setup_time"] == round(row["answer_time"] + 1.2, 3)
    assert 1 < row["mos"] < 4.5
    store.close()
