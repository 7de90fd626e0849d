"""Two real netcore-signal processes sharing a real redis-server and PostgreSQL.

A caller on node A and a callee on node B set up a call; node A is killed
(SIGKILL) mid-call; the caller resumes on node B with its resume token, gets
what it missed, and the call goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest
import redis.asyncio as aioredis
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK

from tests.conftest import free_port, require_program

from .helpers import connect_token, login, negotiate, register

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _wait_tcp(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port}")


@pytest.fixture(scope="module")
def redis_url():
    program = require_program("redis-server")
    port = free_port(socket.SOCK_STREAM)
    proc = subprocess.Popen([program, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_tcp(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed (bash .ci/deps installs it)")
        pytest.skip("PostgreSQL is not installed")
    return found[-1]


@pytest.fixture(scope="module")
def postgres_url():
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    base = tempfile.mkdtemp(prefix="netcore-pg-")
    data = os.path.join(base, "data")
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(base, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port(socket.SOCK_STREAM)
    subprocess.run(as_user + [initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(as_user + [pg_ctl, "-D", data, "-l", os.path.join(base, "log"), "-w", "-o",
                              f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off",
                              "start"], check=True, stdout=subprocess.DEVNULL)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_user + [pg_ctl, "-D", data, "-m", "immediate", "stop"], stdout=subprocess.DEVNULL)
        shutil.rmtree(base, ignore_errors=True)


async def keys_renewed(redis_url: str, key: str, timeout: float = 15.0) -> None:
    """Wait until ``key``'s time to live goes up: a heartbeat renewed it."""
    r = aioredis.from_url(redis_url)
    try:
        async with asyncio.timeout(timeout):
            last = await r.pttl(key)
            assert last > 0, (key, last)
            while (ttl := await r.pttl(key)) <= last:
                assert ttl > 0, (key, ttl)  # still there
                last = ttl
                await asyncio.sleep(0.05)
    finally:
        await r.aclose()


async def start_node(tmp_path, name, redis_url, postgres_url, resume_window=20):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "servers.signal.main", "--port", "0", "--node-id", name,
        "--data-dir", str(tmp_path / name), "--redis", redis_url, "--database", postgres_url,
        "--token-secret", "cluster-secret", "--heartbeat", "1.0", "--resume-window", str(resume_window),
        "--ring-timeout", "20", "--call-server", "wss://cs.example/v1", "--service-secret", "svc",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.startswith(b"listening"), (line, await proc.stderr.read())
    return proc, int(line.split()[2])


@contextlib.asynccontextmanager
async def two_nodes(tmp_path, tag, redis_url, postgres_url, resume_window=20):
    """Nodes A{tag} and B{tag}; stopped with SIGTERM at the end if still running."""
    node_a, port_a = await start_node(tmp_path, f"A{tag}", redis_url, postgres_url, resume_window)
    node_b, port_b = await start_node(tmp_path, f"B{tag}", redis_url, postgres_url, resume_window)
    try:
        yield node_a, port_a, node_b, port_b
    finally:
        for proc in (node_a, node_b):
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 20)
                except asyncio.TimeoutError:
                    proc.kill()


async def friends_across(port_a, port_b, prefix_a, prefix_b):
    """A user logged in on each node, friends with each other."""
    stamp = str(int(time.time() * 1000) % 10**8)
    a, b = f"{prefix_a}{stamp}", f"{prefix_b}{stamp}"
    await register(port_a, a)
    await register(port_b, b)  # users live in PostgreSQL: both nodes see both
    ca, cb = await login(port_a, a), await login(port_b, b)
    # friendship across nodes: notifications and relation changes go over Redis
    await ca.ok("friend.request", {"username": b})
    await cb.expect("friend.requested", **{"from": a})
    await cb.ok("friend.accept", {"username": a})
    await ca.expect("friend.accepted", by=b)
    return ca, cb


async def test_call_across_nodes_and_failover(tmp_path, redis_url, postgres_url):
    import redis.asyncio as aioredis

    r = aioredis.from_url(redis_url, decode_responses=True)
    async with two_nodes(tmp_path, "1", redis_url, postgres_url) as (node_a, port_a, node_b, port_b):
        ca, cb = await friends_across(port_a, port_b, "alice", "bob")
        alice, bob = ca.user, cb.user
        # the user map says where bob is
        assert set((await r.hgetall(f"nc:user:{bob}")).values()) == {"B1"}

        call_id = (await ca.ok("call.invite", {"to": bob, "media": ["audio", "video"]}))["call_id"]
        assert (await cb.expect("call.incoming", call_id=call_id))["from"] == alice
        await cb.ok("call.accept", {"call_id": call_id})
        await ca.expect("call.accepted", call_id=call_id)
        await negotiate(ca, cb, call_id)
        assert json.loads(await r.get(f"nc:call:{call_id}"))["state"] == "active"

        # node A dies mid-call, once its analytics thread has written the call's first events (a
        # SIGKILL loses what a producer still queues: that is the producer's contract, not tested here)
        for _ in range(100):
            written = [json.loads(f["record"]) for _, f in await r.xrange("nc:analytics")]
            if sum(x.get("call_id") == call_id for x in written) >= 2:
                break
            await asyncio.sleep(0.1)
        node_a.send_signal(signal.SIGKILL)
        await node_a.wait()
        with pytest.raises(ConnectionClosedError):  # no close frame: the process is gone
            await ca.expect("never", timeout=5)
        # bob keeps talking while alice is away: node B takes the call over
        cand = {"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 40000 typ host"}
        await cb.ok("call.candidate", {"call_id": call_id, "candidate": cand})
        # alice reconnects to node B with her resume token
        resumed = await connect_token(port_b, alice, ca.token, resume=ca.welcome["payload"]["resume_token"],
                                      last_seq=str(ca.last_seq))
        p = resumed.welcome["payload"]
        assert p["resumed"] is True and p["session_id"] == ca.session_id and p["replay_complete"] is True
        resumed.last_seq = ca.last_seq
        assert (await resumed.expect("call.candidate", call_id=call_id))["candidate"] == cand
        # and the call goes on, now through node B alone
        await resumed.ok("call.offer", {"call_id": call_id, "sdp": "v=0 restart", "ice_restart": True})
        assert (await cb.expect("call.offer"))["ice_restart"] is True
        await cb.ok("call.hangup", {"call_id": call_id})
        assert (await resumed.expect("call.ended", call_id=call_id))["reason"] == "hangup"
        # the history lives in PostgreSQL (LIKE with an escape clause there too)
        history = (await cb.ok("call.history"))["calls"]
        assert history[0]["call_id"] == call_id and history[0]["participants"] == [alice, bob]
        node_b.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(node_b.wait(), 20) == 0
    assert await r.get(f"nc:call:{call_id}") is None  # B drained its writes before exiting
    # analytics reached the Redis stream from both nodes
    records = [json.loads(f["record"]) for _, f in await r.xrange("nc:analytics")]
    mine = [x for x in records if x.get("call_id") == call_id]
    assert [x["event"] for x in mine] == ["call.started", "call.answered", "call.ended"]
    assert {x["node"] for x in mine} == {"A1", "B1"}
    logs = (await node_b.stderr.read()).decode()
    assert '"event":"call.adopted"' in logs and '"dead_node":"A1"' in logs
    assert ca.token not in logs
    await r.aclose()


async def test_room_across_nodes(tmp_path, redis_url, postgres_url):
    async with two_nodes(tmp_path, "2", redis_url, postgres_url) as (_, port_a, _, port_b):
        co, cg = await friends_across(port_a, port_b, "own", "gst")
        owner, guest = co.user, cg.user
        # presence crosses nodes: the owner on A sees the guest on B come and go busy
        await co.expect("presence", user=guest, status="online")
        room_id = (await co.ok("room.create", {}))["room_id"]
        await co.ok("room.invite", {"room_id": room_id, "to": guest})
        assert (await cg.expect("room.invited", room_id=room_id))["from"] == owner
        joined = await cg.ok("room.join", {"room_id": room_id})
        assert joined["topology"] == "mesh" and [p["user"] for p in joined["participants"]] == [owner, guest]
        assert (await co.expect("room.joined", room_id=room_id))["user"] == guest
        await cg.ok("room.signal", {"room_id": room_id, "to": co.session_id, "kind": "offer", "sdp": "v=0"})
        assert (await co.expect("room.signal", room_id=room_id))["from_user"] == guest
        await cg.ok("room.leave", {"room_id": room_id})
        assert (await co.expect("room.left", room_id=room_id))["user"] == guest
        await co.expect("presence", user=guest, status="online")
        err = await cg.request("room.signal", {"room_id": room_id, "to": co.session_id, "kind": "offer",
                                               "sdp": "v=0"})
        assert err["payload"]["code"] == 404
        # a fresh device of the owner on node B learns the guest's status in its welcome;
        # the owner's room (on A) makes them busy as B sees it
        co_b = await login(port_b, owner)
        assert co_b.welcome["payload"]["friends"] == [{"user": guest, "status": "online"}]
        assert (await cg.ok("friend.list"))["friends"] == [{"user": owner, "status": "busy"}]


async def room_of_two(owner, guest) -> str:
    """``owner`` opens a room and invites ``guest``, who joins (the owner told): its id."""
    room_id = (await owner.ok("room.create", {}))["room_id"]
    await owner.ok("room.invite", {"room_id": room_id, "to": guest.user})
    await guest.expect("room.invited", room_id=room_id)
    await guest.ok("room.join", {"room_id": room_id})
    await owner.expect("room.joined", room_id=room_id)
    return room_id


async def test_room_survives_its_owner_node(tmp_path, redis_url, postgres_url):
    async with two_nodes(tmp_path, "3", redis_url, postgres_url) as (node_a, port_a, _, port_b):
        co, cg = await friends_across(port_a, port_b, "rown", "rgst")
        room_id = await room_of_two(co, cg)
        node_a.send_signal(signal.SIGKILL)
        await node_a.wait()
        # the guest keeps signalling: node B takes the room over and keeps the owner's messages
        await cg.ok("room.signal", {"room_id": room_id, "to": co.session_id, "kind": "offer", "sdp": "v=0 x"})
        resumed = await connect_token(port_b, co.user, co.token, resume=co.welcome["payload"]["resume_token"],
                                      last_seq=str(co.last_seq))
        assert resumed.welcome["payload"]["resumed"] is True
        resumed.last_seq = co.last_seq
        assert (await resumed.expect("room.signal", room_id=room_id))["sdp"] == "v=0 x"
        await resumed.ok("room.signal", {"room_id": room_id, "to": cg.session_id, "kind": "answer", "sdp": "v=0 y"})
        assert (await cg.expect("room.signal", room_id=room_id))["sdp"] == "v=0 y"
        await resumed.ok("room.leave", {"room_id": room_id})
        assert (await cg.expect("room.left", room_id=room_id))["user"] == co.user


async def test_sigterm_sends_clients_elsewhere_and_they_resume(tmp_path, redis_url, postgres_url):
    # a short resume window: the session must stay resumable elsewhere for as long as it is
    # connected, not just for the window after it opened
    async with two_nodes(tmp_path, "4", redis_url, postgres_url, resume_window=1) as (node_a, port_a, _, port_b):
        ca, cb = await friends_across(port_a, port_b, "talice", "tbob")
        cb_on_a = await login(port_a, cb.user)  # bob has a device on each node: both ring
        call_id = (await ca.ok("call.invite", {"to": cb.user, "media": ["audio"]}))["call_id"]
        await cb.expect("call.incoming", call_id=call_id)
        await cb_on_a.expect("call.incoming", call_id=call_id)
        await cb.ok("call.accept", {"call_id": call_id})
        await ca.expect("call.accepted", call_id=call_id)
        assert (await cb_on_a.expect("call.ended", call_id=call_id))["reason"] == "answered_elsewhere"
        # The session keys live window + 3 heartbeats from the open; the heartbeat must renew them.
        await keys_renewed(redis_url, f"nc:sess:{ca.session_id}")
        node_a.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosedOK):
            await ca.expect("never", timeout=10)
        assert ca.ws.close_code == 1001
        # reconnect elsewhere at once, while node A may still be shutting down
        resumed = await connect_token(port_b, ca.user, ca.token, resume=ca.welcome["payload"]["resume_token"],
                                      last_seq=str(ca.last_seq))
        assert resumed.welcome["payload"]["resumed"] is True
        resumed.last_seq = ca.last_seq
        await negotiate(resumed, cb, call_id)
        assert await asyncio.wait_for(node_a.wait(), 20) == 0


async def test_recording_with_the_call_server_linked_to_another_node(tmp_path, redis_url, postgres_url):
    from websockets.asyncio.client import connect

    async with two_nodes(tmp_path, "5", redis_url, postgres_url) as (_, port_a, _, port_b):
        co, cg = await friends_across(port_a, port_b, "recown", "recgst")
        # the call server is linked to node B; the room lives on node A
        service = await connect(f"ws://127.0.0.1:{port_b}/v1/service",
                                additional_headers={"Authorization": "Bearer svc"})
        room_id = (await co.ok("room.create", {}))["room_id"]
        await co.ok("room.invite", {"room_id": room_id, "to": cg.user})
        await cg.expect("room.invited", room_id=room_id)
        await cg.ok("room.join", {"room_id": room_id})
        await co.ok("room.record", {"room_id": room_id, "action": "start"})
        assert (await cg.expect("room.topology", room_id=room_id))["reason"] == "recording"
        command = json.loads(await asyncio.wait_for(service.recv(), 10))
        assert command["type"] == "recording.start" and command["payload"]["room_id"] == room_id
        files = [{"participant": "p1", "name": "1-p1.webm", "location": "s3://rec/1-p1.webm"}]
        await service.send(json.dumps({"v": 1, "type": "recording.ready", "id": "r1",
                                       "payload": {"room_id": room_id, "location": "s3://rec/1.webm",
                                                   "users": [co.user, cg.user], "files": files}}))
        for c in (co, cg):  # the owner's node knows the room: its users hear of it, with the files
            ready = await c.expect("recording.ready", room_id=room_id)
            assert ready["location"] == "s3://rec/1.webm" and ready["files"] == files
        await service.close()


async def test_nodes_recover_when_redis_restarts(tmp_path):
    program = require_program("redis-server")
    port = free_port(socket.SOCK_STREAM)

    def start_redis():
        proc = subprocess.Popen([program, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_tcp(port)
        return proc

    redis_proc = start_redis()
    url = f"redis://127.0.0.1:{port}/0"
    nodes = []
    try:
        for name in ("RA", "RB"):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "servers.signal.main", "--port", "0", "--node-id", name,
                "--data-dir", str(tmp_path / name), "--redis", url, "--token-secret", "s", "--heartbeat", "1.0",
                "--friends-only", "false", cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            nodes.append((proc, int(line.split()[2])))
        (_, port_a), (_, port_b) = nodes
        await register(port_a, "rs_alice")
        await register(port_b, "rs_bob")
        redis_proc.terminate()
        redis_proc.wait(10)
        redis_proc = start_redis()  # empty: the nodes must resubscribe and rebuild the user map
        r = aioredis.from_url(url)
        for _ in range(200):  # both nodes listening on their inboxes again
            counts = dict(await r.pubsub_numsub("nc:inbox:RA", "nc:inbox:RB"))
            if all(counts.values()):
                break
            await asyncio.sleep(0.05)
        await r.aclose()
        ca, cb = await login(port_a, "rs_alice"), await login(port_b, "rs_bob")
        for _ in range(100):  # until node A has heard of bob's session on node B again
            answer = await ca.request("call.invite", {"to": "rs_bob", "media": ["audio"]})
            if answer["type"] == "ack":
                break
            await asyncio.sleep(0.1)
        call_id = answer["payload"]["call_id"]
        await cb.expect("call.incoming", call_id=call_id)
        await cb.ok("call.accept", {"call_id": call_id})  # forwarded to node A through the new Redis
        await ca.expect("call.accepted", call_id=call_id)
    finally:
        for proc, _ in nodes:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 20)
        redis_proc.terminate()
        redis_proc.wait(10)


async def test_friends_see_a_dead_nodes_users_go_offline(tmp_path, redis_url, postgres_url):
    async with two_nodes(tmp_path, "6", redis_url, postgres_url) as (node_a, port_a, _, port_b):
        ca, cb = await friends_across(port_a, port_b, "dalice", "dbob")
        await cb.expect("presence", user=ca.user, status="online")
        node_a.send_signal(signal.SIGKILL)
        await node_a.wait()
        # within a few heartbeats node B notices A is gone and tells bob
        assert (await cb.expect("presence", user=ca.user, timeout=10))["status"] == "offline"


async def test_resume_on_another_live_node_moves_the_session(tmp_path, redis_url, postgres_url):
    async with two_nodes(tmp_path, "7", redis_url, postgres_url) as (_, port_a, _, port_b):
        ca, cb = await friends_across(port_a, port_b, "malice", "mbob")
        call_id = (await ca.ok("call.invite", {"to": cb.user, "media": ["audio"]}))["call_id"]
        await cb.expect("call.incoming", call_id=call_id)
        await cb.ok("call.accept", {"call_id": call_id})
        await ca.expect("call.accepted", call_id=call_id)
        # alice's network changes: she reaches node B while node A still holds her session
        moved = await connect_token(port_b, ca.user, ca.token, resume=ca.welcome["payload"]["resume_token"],
                                    last_seq=str(ca.last_seq))
        assert moved.welcome["payload"]["resumed"] is True
        assert moved.welcome["payload"]["session_id"] == ca.session_id
        moved.last_seq = ca.last_seq
        with pytest.raises(ConnectionClosedError):
            await ca.expect("never", timeout=10)
        assert ca.ws.close_code == 4002
        # the call stays owned by node A and goes on through it
        await negotiate(moved, cb, call_id)
        await cb.ok("call.candidate", {"call_id": call_id, "candidate": {"candidate": "c1"}})
        assert (await moved.expect("call.candidate", call_id=call_id))["candidate"] == {"candidate": "c1"}
        await moved.ok("call.hangup", {"call_id": call_id})
        assert (await cb.expect("call.ended", call_id=call_id))["reason"] == "hangup"


async def test_a_studio_survives_its_owner_node_through_the_rooms_snapshot(tmp_path, redis_url, postgres_url):
    """The studio (and what is on air) is in the room's Redis snapshot: once node A is killed, the operator
    resumes on node B, which adopts the room as a studio and relays its commands, stop included."""
    async with two_nodes(tmp_path, "8", redis_url, postgres_url) as (node_a, port_a, _, port_b):
        co, cg = await friends_across(port_a, port_b, "stown", "stgst")
        room_id = await room_of_two(co, cg)
        await co.ok("studio.start", {"room_id": room_id})
        source = {"publisher": cg.session_id, "track": "1"}
        await co.ok("studio.cut", {"room_id": room_id, "source": source})
        r = aioredis.from_url(redis_url)
        try:
            snapshot = json.loads(await r.get(f"nc:room:{room_id}"))
        finally:
            await r.aclose()
        assert snapshot["studio"] == {"video": source, "audio": None}
        node_a.send_signal(signal.SIGKILL)
        await node_a.wait()
        resumed = await connect_token(port_b, co.user, co.token, resume=co.welcome["payload"]["resume_token"],
                                      last_seq=str(co.last_seq))
        assert resumed.welcome["payload"]["resumed"] is True
        resumed.last_seq = co.last_seq
        await resumed.ok("studio.card", {"room_id": room_id})  # a studio on node B too: not refused with 409
        await resumed.ok("studio.stop", {"room_id": room_id})
        assert (await cg.expect("studio.stopped", room_id=room_id))["by"] == co.user
        err = await resumed.request("studio.cut", {"room_id": room_id, "source": source})
        assert err["payload"]["code"] == 409
