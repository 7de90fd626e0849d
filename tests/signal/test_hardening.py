"""Bounds an attacker or a careless client meets, driven against a real node on loopback.

Each test is bounded in count (a few hundred messages at most) and in time
(waits are on conditions, with a timeout).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from servers.signal.core import CoreConfig, SignalCore

from .helpers import PASSWORD, Client, anonymous, friend_pair, register, url


async def until(condition, timeout: float = 10.0) -> None:
    """Wait (polling the event loop) until ``condition()`` holds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def close_lines(caplog, reason_part: str = "") -> list[str]:
    return [r.getMessage() for r in caplog.records
            if '"event":"close"' in r.getMessage() and reason_part in r.getMessage()]


async def login_attempt(port: int, user: str, password: str, local: str = "127.0.0.1") -> dict:
    """One login on a fresh connection from ``local``; the answer (ack or error)."""
    async with connect(url(port), open_timeout=10, local_addr=(local, 0)) as ws:
        client = Client(ws, user)
        return await client.request("login", {"username": user, "password": password})


# --- a slow reader (memory) ------------------------------------------------


async def slow_reader(port: int, user: str) -> Client:
    """A logged-in client whose socket hardly buffers and whose library queues one message."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    ws = await connect(url(port), sock=sock, open_timeout=10, max_queue=1)
    client = Client(ws, user)
    answer = await client.request("login", {"username": user, "password": PASSWORD})
    assert answer["type"] == "ack", answer
    client.welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return client


async def test_a_reader_that_falls_behind_is_closed_once_when_its_bytes_pile_up(start_server, names, caplog):
    caplog.set_level(logging.INFO, logger="netcore.signal")
    bound = 256 * 1024
    server = await start_server(max_pending_bytes=bound, rate=10_000, burst=10_000)
    a, b = await friend_pair(server.port, names)
    await b.close()
    slow = await slow_reader(server.port, b.user)
    call_id = (await a.ok("call.invite", {"to": b.user, "media": ["audio"]}))["call_id"]
    await slow.expect("call.incoming")
    await slow.ok("call.accept", {"call_id": call_id})
    await a.expect("call.accepted")
    conn = server._conns[slow.session_id]
    sdp = "v=0 " + "x" * (30 * 1024)
    # Offers of 30 KiB for a reader that takes almost nothing: once the kernel's
    # send buffer (a few MiB at most) is full, they wait in the daemon.
    for _ in range(600):
        await a.ok("call.offer", {"call_id": call_id, "sdp": sdp})
        assert conn.pending_bytes <= bound
        if conn.closing:
            break
    await until(lambda: server.metrics.closed_by_code.get(1013, 0) >= 1)
    for _ in range(20):  # more traffic for the closed connection adds no close
        await a.ok("call.offer", {"call_id": call_id, "sdp": sdp})
    assert server.metrics.closed_by_code.get(1013) == 1
    assert len(close_lines(caplog, "waiting to be sent")) == 1
    assert conn.pending_bytes == 0 and not conn.pending
    await slow.ws.close()


def test_the_replay_buffer_is_bounded_in_bytes():
    core = SignalCore(CoreConfig(replay_bytes=10_000, replay_buffer=512))
    sid = core.handle_connect("ann", 0.0, friends=set(), blocked=set())
    while core.poll_transmit() is not None:
        pass
    token = core.session_keys(sid)[1]
    core.handle_disconnect(sid, 1.0)
    for i in range(200):  # ~30 KB for a session nobody reads
        core.notify_user("ann", "presence", {"user": f"friend{i}", "status": "online", "pad": "p" * 100})
    core.handle_connect("ann", 2.0, resume_token=token, last_seq=0)
    welcome = core.poll_transmit()
    assert json.loads(welcome.text)["payload"]["replay_complete"] is False
    replayed = []
    while (out := core.poll_transmit()) is not None:
        replayed.append(out.text)
    assert replayed and sum(len(t) for t in replayed) <= 10_000
    seqs = [json.loads(t)["seq"] for t in replayed]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) and seqs[-1] == 200  # the newest kept


# --- a burst of errors --------------------------------------------------------


async def test_a_burst_of_invalid_frames_closes_the_connection_once(start_server, names, caplog):
    caplog.set_level(logging.INFO, logger="netcore.signal")
    server = await start_server(max_strikes=5, rate=10_000, burst=10_000)
    a, _ = await friend_pair(server.port, names)
    await asyncio.gather(*(a.send_raw("not json") for _ in range(300)))
    with pytest.raises(ConnectionClosed):
        while True:
            await a._recv(10)
    assert a.ws.close_code == 1008
    await asyncio.sleep(0)  # the close task has logged by the time the peer saw the close
    assert server.metrics.closed_by_code.get(1008) == 1
    assert len(close_lines(caplog)) == 1


# --- HTTP --------------------------------------------------------------------


async def http(port: int, request: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request.encode())
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def head_and_body(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return lines[0], headers, body


async def test_http_serves_get_and_head_only_and_names_no_library(server):
    host = f"127.0.0.1:{server.port}"
    status, headers, body = head_and_body(await http(server.port, f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n"))
    assert status.startswith("HTTP/1.1 200") and b"<html" in body.lower()
    assert headers["server"] == "netcore-signal"
    csp = {d.split()[0]: d.split()[1:] for d in (part.strip() for part in headers["content-security-policy"].split(";"))}
    assert csp["connect-src"] == ["'self'", f"ws://{host}", f"wss://{host}"]
    assert csp["form-action"] == ["'self'"]
    status, head_headers, head_body = head_and_body(await http(server.port, f"HEAD / HTTP/1.1\r\nHost: {host}\r\n\r\n"))
    assert status.startswith("HTTP/1.1 200") and head_body == b""
    assert head_headers["content-length"] == str(len(body))
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        status, headers, _ = head_and_body(await http(
            server.port, f"{method} / HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"))
        assert status.startswith("HTTP/1.1 405"), (method, status)
        assert headers["allow"] == "GET, HEAD"
    status, _, body = head_and_body(await http(server.port, f"HEAD /health HTTP/1.1\r\nHost: {host}\r\n\r\n"))
    assert status.startswith("HTTP/1.1 200") and body == b""


# --- Origin ---------------------------------------------------------------------


async def test_websocket_upgrades_from_another_page_are_refused(start_server):
    server = await start_server(allowed_origins=["https://app.example"])
    port = server.port
    with pytest.raises(InvalidStatus) as refused:
        await connect(url(port), origin="http://evil.example", open_timeout=10)
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        await connect(url(port), origin=f"http://127.0.0.1:{port + 1}", open_timeout=10)
    for origin in (f"http://127.0.0.1:{port}", "https://app.example", None):
        ws = await connect(url(port), origin=origin, open_timeout=10)
        await ws.close()


# --- password guessing ------------------------------------------------------------


async def test_failed_logins_back_off_per_account_and_per_address_across_connections(start_server, names):
    server = await start_server(login_free_failures=3, login_backoff=60.0)
    victim, other = names("victim"), names("other")
    await register(server.port, victim)
    await register(server.port, other)
    for attempt in range(4):  # a fresh connection each time, as a guesser would
        answer = await login_attempt(server.port, victim, f"wrong password {attempt}")
        assert answer["payload"]["code"] == 401
    # Blocked now: even the right password, even from another address.
    answer = await login_attempt(server.port, victim, PASSWORD)
    assert answer["payload"]["code"] == 429, answer
    answer = await login_attempt(server.port, victim, PASSWORD, local="127.0.0.2")
    assert answer["payload"]["code"] == 429, answer
    # And the guessing address for every account.
    answer = await login_attempt(server.port, other, PASSWORD)
    assert answer["payload"]["code"] == 429, answer
    # Another address and another account are untouched.
    answer = await login_attempt(server.port, other, PASSWORD, local="127.0.0.3")
    assert answer["type"] == "ack", answer


async def test_password_hashing_in_flight_is_bounded(start_server, names):
    server = await start_server(hash_workers=1, hash_queue=1, login_free_failures=1000)
    user = names("u")
    await register(server.port, user)
    clients = [Client(await anonymous(server.port), user) for _ in range(8)]
    ids = await asyncio.gather(*(c.send("login", {"username": user, "password": "wrong password"}) for c in clients))
    answers = await asyncio.gather(*(c.answer(i, timeout=30) for c, i in zip(clients, ids)))
    codes = [a["payload"]["code"] for a in answers]
    assert set(codes) <= {401, 429} and codes.count(429) >= 1, codes
    assert server.hash_gate.refused == codes.count(429) and server.hash_gate.in_flight == 0
    for c in clients:
        await c.close()


# --- connections that never log in -------------------------------------------------


async def test_a_connection_that_does_not_log_in_is_closed_at_the_deadline(start_server):
    server = await start_server(login_timeout=0.5)
    ws = await anonymous(server.port)
    await ws.send(json.dumps({"v": 1, "type": "ping", "id": "p1", "payload": {}}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "ack"
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 10)
    assert ws.close_code == 1008 and "login" in ws.close_reason


async def test_connections_per_source_address_are_capped(start_server):
    server = await start_server(max_connections_per_source=3)
    held = [await anonymous(server.port) for _ in range(3)]
    extra = await anonymous(server.port)
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(extra.recv(), 10)
    assert extra.close_code == 1013
    elsewhere = await connect(url(server.port), open_timeout=10, local_addr=("127.0.0.2", 0))
    await elsewhere.send(json.dumps({"v": 1, "type": "ping", "id": "p1", "payload": {}}))
    assert json.loads(await asyncio.wait_for(elsewhere.recv(), 10))["type"] == "ack"
    await held[0].close()
    await until(lambda: server.sources._open.get("127.0.0.1") == 2)
    again = await anonymous(server.port)
    await again.send(json.dumps({"v": 1, "type": "ping", "id": "p2", "payload": {}}))
    assert json.loads(await asyncio.wait_for(again.recv(), 10))["type"] == "ack"
    for ws in (*held[1:], elsewhere, again):
        await ws.close()
