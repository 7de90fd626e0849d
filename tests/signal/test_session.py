"""Resume with replay, validation of every message, limits and close codes, HTTP."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from servers.signal.protocol import CLIENT_SCHEMAS

from .helpers import Client, anonymous, connect_token, friend_pair, login, register, url


async def test_resume_keeps_call_and_replays_missed_messages_in_order(server, names):
    ca, cb = await friend_pair(server.port, names)
    call_id = (await ca.ok("call.invite", {"to": cb.user, "media": ["audio"]}))["call_id"]
    await cb.ok("call.accept", {"call_id": call_id})
    await ca.expect("call.accepted")
    resume_token, last_seq = cb.welcome["payload"]["resume_token"], cb.last_seq
    await cb.ws.close()
    # while b is away, a sends three messages
    for i in range(3):
        await ca.ok("call.candidate", {"call_id": call_id, "candidate": {"candidate": f"c{i}"}})
    await ca.ok("call.offer", {"call_id": call_id, "sdp": "v=0 restart", "ice_restart": True})
    cb2 = await connect_token(server.port, cb.user, cb.token, resume=resume_token, last_seq=str(last_seq))
    p = cb2.welcome["payload"]
    assert p["resumed"] is True and p["replay_complete"] is True
    assert p["session_id"] == cb.session_id
    cb2.last_seq = last_seq  # seq continues where the old socket stopped (checked per message)
    got = [(await cb2.expect("call.candidate"))["candidate"]["candidate"] for _ in range(3)]
    assert got == ["c0", "c1", "c2"]
    assert (await cb2.expect("call.offer"))["ice_restart"] is True
    # the call goes on past the resume window
    await asyncio.sleep(server.config.resume_window + 0.3)
    await cb2.ok("call.answer", {"call_id": call_id, "sdp": "v=0 answer"})
    assert (await ca.expect("call.answer"))["sdp"] == "v=0 answer"


async def test_resume_token_of_another_user_opens_a_fresh_session(server, names):
    ca, cb = await friend_pair(server.port, names)
    await cb.ws.close()
    other = await connect_token(server.port, ca.user, ca.token, resume=cb.welcome["payload"]["resume_token"])
    assert other.welcome["payload"]["resumed"] is False
    assert other.welcome["payload"]["session_id"] != cb.session_id


async def test_bad_token_is_refused_at_handshake(server):
    with pytest.raises(InvalidStatus) as info:
        await connect(url(server.port), additional_headers={"Authorization": "Bearer u_1.99999999999.AAAA"})
    assert info.value.response.status_code == 401


async def test_anonymous_connection_may_only_register_and_login(server, names):
    ws = await anonymous(server.port)
    c = Client(ws, "x")
    err = await c.request("call.invite", {"to": "bob_1", "media": ["audio"]})
    assert err["payload"]["code"] == 401
    err = await c.request("login", {"username": "nobody_x", "password": "whatever-long"})
    assert err["payload"] == {"code": 401, "reason": "bad username or password"}
    user = names()
    assert (await c.request("register", {"username": user, "password": "short"}))["payload"]["code"] == 400
    await c.ok("register", {"username": user, "password": "long enough pw"})
    assert (await c.request("register", {"username": user, "password": "long enough pw"}))["payload"]["code"] == 409


INVALID = [
    ("not json", 400, "invalid JSON"),
    ("[1, 2]", 400, "JSON object"),
    ('{"v": 2, "type": "ping", "id": "x"}', 505, "'v'"),
    ('{"v": 1, "type": 5}', 400, "'type'"),
    ('{"v": 1, "type": "nope"}', 400, "unknown type"),
    ('{"v": 1, "type": "ping", "id": 7}', 400, "'id'"),
    ('{"v": 1, "type": "ping", "payload": []}', 400, "'payload'"),
    ('{"v": 1, "type": "ping", "extra": 1}', 400, "envelope"),
    ('{"v": 1, "type": "call.invite", "payload": {"to": "bob_1"}}', 400, "missing field 'media'"),
    ('{"v": 1, "type": "call.invite", "payload": {"to": "bob_1", "media": ["smell"]}}', 400, "'media'"),
    ('{"v": 1, "type": "call.invite", "payload": {"to": "B!", "media": ["audio"]}}', 400, "'to'"),
    ('{"v": 1, "type": "call.reject", "payload": {"call_id": "x", "reason": "meh"}}', 400, "'reason'"),
    ('{"v": 1, "type": "call.candidate", "payload": {"call_id": "x", "candidate": "c"}}', 400, "'candidate'"),
    ('{"v": 1, "type": "call.quality", "payload": {"call_id": "x", "path": "direct", "rtt_ms": -1, "loss": 0}}',
     400, "'rtt_ms'"),
    ('{"v": 1, "type": "call.offer", "payload": {"call_id": "x", "sdp": "v", "bogus": 1}}', 400, "unknown field"),
]


async def test_every_invalid_message_gets_an_error_and_the_connection_stays(start_server, names):
    server = await start_server(max_strikes=100_000, rate=10_000, burst=10_000)
    ca, _ = await friend_pair(server.port, names)
    for text, code, reason in INVALID:
        await ca.send_raw(text)
        err = await ca.expect("error")
        assert err["code"] == code and reason in err["reason"], (text, err)
    # every known type with an empty payload: an error naming a missing field, or an answer
    for kind, schema in CLIENT_SCHEMAS.items():
        answer = await ca.request(kind, {})
        required = [name for name, (_, req) in schema.items() if req]
        if required:
            assert answer["type"] == "error" and "missing field" in answer["payload"]["reason"], (kind, answer)
        # and every field with a value of the wrong type
        for field in schema:
            answer = await ca.request(kind, {field: {"no": ["such", "value"]}})
            assert answer["type"] == "error", (kind, field, answer)
    assert (await ca.request("ping"))["type"] == "ack"


async def test_oversized_message_closes_with_1009(start_server, names):
    server = await start_server(max_message_bytes=1024)
    user = names()
    await register(server.port, user)
    c = await login(server.port, user)
    await c.send("call.offer", {"call_id": "x", "sdp": "a" * 2000})
    with pytest.raises(ConnectionClosed):
        await c.expect("anything", timeout=5)
    assert c.ws.close_code == 1009


async def test_rate_limit_then_policy_close(start_server, names):
    server = await start_server(rate=5, burst=5, max_strikes=10)
    user = names()
    await register(server.port, user)
    c = await login(server.port, user)
    for _ in range(5):
        await c.send("ping")
    await c.send("ping")
    err = await c.expect("error")
    assert err["code"] == 429 and "per second" in err["reason"]
    for _ in range(20):
        try:
            await c.send("ping")
        except ConnectionClosed:
            break
    with pytest.raises(ConnectionClosed):
        while True:
            await c.expect("never", timeout=5)
    assert c.ws.close_code == 1008
    assert "too many" in c.ws.close_reason


def _get(port: int, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return response.status, response.read().decode()


async def test_health_and_metrics_on_the_websocket_port_and_a_separate_one(start_server, names):
    server = await start_server(metrics_port=0)
    ca, cb = await friend_pair(server.port, names)
    await ca.send_raw("garbage")
    await ca.expect("error")
    await ca.ok("call.invite", {"to": cb.user, "media": ["audio"]})
    for port in (server.port, server.metrics_port):
        status, body = await asyncio.to_thread(_get, port, "/health")
        assert status == 200 and json.loads(body)["status"] == "ok"
        status, body = await asyncio.to_thread(_get, port, "/metrics")
        assert "signal_connections 2" in body
        assert 'signal_calls{state="ringing"} 1' in body
        assert 'signal_messages_total{type="call.invite"} 1' in body
        assert 'signal_errors_total{code="400"} 1' in body


async def test_password_guessing_is_cut_off(start_server, names):
    server = await start_server(max_strikes=3)
    user = names()
    await register(server.port, user)
    c = Client(await anonymous(server.port), user)
    for _ in range(4):
        answer = await c.request("login", {"username": user, "password": "wrong password"})
        assert answer["payload"]["code"] == 401
    with pytest.raises(ConnectionClosed):
        await c.expect("never", timeout=5)
    assert c.ws.close_code == 1008
