"""1-to-1 call flows with real WebSocket clients against an in-process node."""

from __future__ import annotations

import asyncio

from .helpers import friend_pair, login, make_friends, negotiate, register


async def test_welcome_carries_session_resume_ice_and_limits(server, names):
    user = names()
    await register(server.port, user)
    c = await login(server.port, user)
    p = c.welcome["payload"]
    assert p["user"] == user and p["session_id"] and p["resume_token"] and p["resumed"] is False
    turn = [s for s in p["ice_servers"] if "username" in s][0]
    expiry, name = turn["username"].split(":")
    assert name == user and int(expiry) > 0 and turn["credential"]
    assert p["limits"]["max_message_bytes"] == 64 * 1024
    await c.close()


async def test_full_call_setup_relay_and_hangup(server, names):
    ca, cb = await friend_pair(server.port, names)
    ack = await ca.ok("call.invite", {"to": cb.user, "media": ["audio", "video"],
                                       "caps": {"bandwidth": 2_000_000, "codecs": ["opus", "VP8"]}})
    call_id = ack["call_id"]
    incoming = await cb.expect("call.incoming", call_id=call_id)
    assert incoming["from"] == ca.user and incoming["media"] == ["audio", "video"]
    assert incoming["caps"]["codecs"] == ["opus", "VP8"]
    await cb.ok("call.accept", {"call_id": call_id})
    await ca.expect("call.accepted", call_id=call_id)
    await negotiate(ca, cb, call_id)
    cand = {"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "sdpMid": "0", "sdpMLineIndex": 0}
    await cb.ok("call.candidate", {"call_id": call_id, "candidate": cand})
    assert (await ca.expect("call.candidate"))["candidate"] == cand
    await ca.ok("call.offer", {"call_id": call_id, "sdp": "v=0 restart", "ice_restart": True})
    restart = await cb.expect("call.offer")
    assert restart["ice_restart"] is True and restart["sdp"] == "v=0 restart"
    # presence: both busy while the call is up
    await ca.ok("call.hangup", {"call_id": call_id})
    ended = await cb.expect("call.ended", call_id=call_id)
    assert ended["reason"] == "hangup"
    # after the hang-up the call id is dead for both
    err = await cb.request("call.offer", {"call_id": call_id, "sdp": "x"})
    assert err["type"] == "error" and err["payload"]["code"] == 404


async def test_multi_device_ringing_accept_stops_others(server, names):
    ca, cb = await friend_pair(server.port, names)
    cb2 = await login(server.port, cb.user)
    call_id = (await ca.ok("call.invite", {"to": cb.user, "media": ["audio"]}))["call_id"]
    await cb.expect("call.incoming", call_id=call_id)
    await cb2.expect("call.incoming", call_id=call_id)
    await cb2.ok("call.accept", {"call_id": call_id})
    assert (await cb.expect("call.ended", call_id=call_id))["reason"] == "answered_elsewhere"
    await ca.expect("call.accepted", call_id=call_id)
    # only the accepting device gets the relay
    await ca.ok("call.offer", {"call_id": call_id, "sdp": "v=0"})
    await cb2.expect("call.offer", call_id=call_id)
    await cb.nothing("call.offer")
    # the device that stopped ringing cannot act on the call
    err = await cb.request("call.answer", {"call_id": call_id, "sdp": "v=0"})
    assert err["payload"]["code"] == 404


async def test_decline_busy_cancel_and_timeout(server, names):
    ca, cb = await friend_pair(server.port, names)
    call_id = (await ca.ok("call.invite", {"to": cb.user, "media": ["audio"]}))["call_id"]
    await cb.expect("call.incoming", call_id=call_id)
    await cb.ok("call.reject", {"call_id": call_id, "reason": "declined"})
    assert (await ca.expect("call.ended", call_id=call_id))["reason"] == "declined"

    call_id = (await ca.ok("call.invite", {"to": cb.user, "media": ["audio"]}))["call_id"]
    await cb.expect("call.incoming", call_id=call_id)
    await cb.ok("call.reject", {"call_id": call_id, "reason": "busy"})
    assert (await ca.expect("call.ended", call_id=call_id))["reason"] == "busy"

    call_id = (await ca.ok("call.invite", {"to": cb.user, "media": ["audio"]}))["call_id"]
    await cb.expect("call.incoming", call_id=call_id)
    await ca.ok("call.cancel", {"call_id": call_id})
    assert (await cb.expect("call.ended", call_id=call_id))["reason"] == "cancelled"

    loop = asyncio.get_running_loop()
    start = loop.time()
    call_id = (await ca.ok("call.invite", {"to": cb.user, "media": ["audio"]}))["call_id"]
    await cb.expect("call.incoming", call_id=call_id)
    assert (await ca.expect("call.ended", call_id=call_id))["reason"] == "timeout"
    assert (await cb.expect("call.ended", call_id=call_id))["reason"] == "timeout"
    assert 0.9 <= loop.time() - start < 3


async def test_callee_in_a_call_is_busy(server, names):
    ca, cb = await friend_pair(server.port, names)
    carol = names("carol")
    await register(server.port, carol)
    cc = await login(server.port, carol)
    await make_friends(cc, cb)
    call_id = (await ca.ok("call.invite", {"to": cb.user, "media": ["audio"]}))["call_id"]
    await cb.ok("call.accept", {"call_id": call_id})
    await cc.expect("presence", user=cb.user, status="busy")
    err = await cc.request("call.invite", {"to": cb.user, "media": ["audio"]})
    assert err["type"] == "error" and err["payload"]["code"] == 486


async def test_hangup_on_disconnect_after_resume_window(server, names):
    ca, cb = await friend_pair(server.port, names)
    call_id = (await ca.ok("call.invite", {"to": cb.user, "media": ["audio"]}))["call_id"]
    await cb.ok("call.accept", {"call_id": call_id})
    await ca.expect("call.accepted")
    await cb.ws.close()
    ended = await ca.expect("call.ended", call_id=call_id, timeout=5)
    assert ended["reason"] == "disconnected"
    assert (await ca.expect("presence", user=cb.user))["status"] in ("online", "offline")


async def test_friends_only_and_blocks(server, names):
    a, b, s = names("a"), names("b"), names("s")
    for u in (a, b, s):
        await register(server.port, u)
    ca, cb, cs = await login(server.port, a), await login(server.port, b), await login(server.port, s)
    err = await cs.request("call.invite", {"to": b, "media": ["audio"]})
    assert err["payload"]["code"] == 403  # strangers may not call
    await make_friends(ca, cb)
    await cb.ok("block", {"username": a})
    err = await ca.request("call.invite", {"to": b, "media": ["audio"]})
    # blocking ends the friendship; the caller learns nothing more than "not a friend"
    assert err["payload"]["code"] in (403, 480)
    await cb.nothing("call.incoming")
    # a blocked user's friend request never reaches the blocker
    await ca.ok("friend.request", {"username": b})
    await cb.nothing("friend.requested")


async def test_block_looks_like_offline_when_friends_only_is_off(start_server, names):
    server = await start_server(friends_only=False)
    a, b = names("a"), names("b")
    await register(server.port, a)
    await register(server.port, b)
    ca, cb = await login(server.port, a), await login(server.port, b)
    await cb.ok("block", {"username": a})
    err = await ca.request("call.invite", {"to": b, "media": ["audio"]})
    offline = await ca.request("call.invite", {"to": "nobody-here", "media": ["audio"]})
    assert err["payload"] == offline["payload"] == {"code": 480, "reason": "user unavailable"}
    await cb.nothing("call.incoming")


async def test_guessed_call_id_reveals_nothing(server, names):
    ca, cb = await friend_pair(server.port, names)
    eve = names("eve")
    await register(server.port, eve)
    ce = await login(server.port, eve)
    call_id = (await ca.ok("call.invite", {"to": cb.user, "media": ["audio"]}))["call_id"]
    for kind, extra in (("call.accept", {}), ("call.hangup", {}), ("call.offer", {"sdp": "x"})):
        real = await ce.request(kind, {"call_id": call_id, **extra})
        fake = await ce.request(kind, {"call_id": "0" * 32, **extra})
        assert real["payload"] == fake["payload"] == {"code": 404, "reason": "no such call"}
