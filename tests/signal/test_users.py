"""The user service over the WebSocket: friend graph, blocks, presence, devices."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed

from .helpers import connect_token, friend_pair, login, register


async def test_friend_list_remove_and_mutual_request(server, names):
    a, b, c = names("a"), names("b"), names("c")
    for u in (a, b, c):
        await register(server.port, u)
    ca, cb, cc = await login(server.port, a), await login(server.port, b), await login(server.port, c)
    assert (await ca.request("friend.request", {"username": "no_such_user"}))["payload"]["code"] == 404
    assert (await ca.request("friend.request", {"username": a}))["payload"]["code"] == 400
    await ca.ok("friend.request", {"username": c})
    listed = await cc.ok("friend.list")
    assert listed == {"friends": [], "requests": [a], "blocked": []}
    # c asking a back completes the friendship at once
    assert (await cc.ok("friend.request", {"username": a}))["state"] == "friends"
    await ca.expect("friend.accepted", by=c)
    assert (await ca.request("friend.request", {"username": c}))["payload"]["code"] == 409
    listed = await ca.ok("friend.list")
    assert listed["friends"] == [{"user": c, "status": "online"}]
    await ca.ok("friend.remove", {"username": c})
    assert (await cc.expect("friend.removed"))["by"] == a
    assert (await ca.ok("friend.list"))["friends"] == []
    assert (await ca.request("friend.accept", {"username": b}))["payload"]["code"] == 404
    # blocking and unblocking
    await cb.ok("block", {"username": a})
    assert (await cb.ok("friend.list"))["blocked"] == [a]
    assert (await cb.request("friend.request", {"username": a}))["payload"]["code"] == 409
    await cb.ok("unblock", {"username": a})
    await ca.ok("friend.request", {"username": b})
    await cb.expect("friend.requested", **{"from": a})


async def test_presence_online_busy_offline(server, names):
    ca, cb = await friend_pair(server.port, names)
    call_id = (await ca.ok("call.invite", {"to": cb.user, "media": ["audio"]}))["call_id"]
    await cb.ok("call.accept", {"call_id": call_id})
    await ca.expect("presence", user=cb.user, status="busy")
    await ca.ok("call.hangup", {"call_id": call_id})
    await ca.expect("presence", user=cb.user, status="online")
    await cb.ws.close()
    await ca.expect("presence", user=cb.user, status="offline", timeout=5)
    # back online: the welcome lists friends with their status, and friends hear it
    cb2 = await connect_token(server.port, cb.user, cb.token)
    assert cb2.welcome["payload"]["friends"] == [{"user": ca.user, "status": "online"}]
    await ca.expect("presence", user=cb.user, status="online")


async def test_resume_on_a_new_socket_replaces_the_old_one(server, names):
    ca, cb = await friend_pair(server.port, names)
    seen = cb.last_seq
    again = await connect_token(server.port, cb.user, cb.token, resume=cb.welcome["payload"]["resume_token"],
                                last_seq=str(seen))
    again.last_seq = seen  # replayed messages continue the sequence
    assert again.welcome["payload"]["resumed"] is True
    with pytest.raises(ConnectionClosed):
        await cb.expect("never", timeout=5)
    assert cb.ws.close_code == 4002
    await again.ok("ping")


async def test_call_history_after_a_call(server, names):
    ca, cb = await friend_pair(server.port, names)
    call_id = (await ca.ok("call.invite", {"to": cb.user, "media": ["audio"]}))["call_id"]
    await cb.ok("call.accept", {"call_id": call_id})
    await ca.ok("call.hangup", {"call_id": call_id})
    await cb.expect("call.ended", call_id=call_id)
    for c in (ca, cb):
        [entry] = (await c.ok("call.history"))["calls"]
        assert entry["call_id"] == call_id and entry["reason"] == "hangup" and entry["answered"] is True
        assert entry["participants"] == [ca.user, cb.user]


def test_history_matches_names_exactly(tmp_path):
    from servers.signal.store import SqliteStore

    store = SqliteStore(str(tmp_path / "s.db"))
    store.record_call("c1", "p2p", ("bob_1", "ann"), "p2p", "hangup", True, 3.0, 10.0)
    store.record_call("c2", "p2p", ("bobx1", "ann"), "p2p", "hangup", True, 3.0, 11.0)
    assert [c["call_id"] for c in store.call_history("bob_1")] == ["c1"]
    assert [c["call_id"] for c in store.call_history("ann")] == ["c2", "c1"]
