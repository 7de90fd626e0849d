"""A small real WebSocket client for the signaling protocol, used by the tests."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import deque

from websockets.asyncio.client import ClientConnection, connect

PASSWORD = "correct horse battery"
_ids = itertools.count(1)


class Client:
    """One device: sends requests, awaits answers, collects pushed messages."""

    def __init__(self, ws: ClientConnection, user: str) -> None:
        self.ws = ws
        self.user = user
        self.inbox: deque[dict] = deque()
        self.last_seq = 0
        self.welcome: dict | None = None
        self.token: str | None = None

    @property
    def session_id(self) -> str:
        return self.welcome["payload"]["session_id"]

    async def _recv(self, timeout: float) -> dict:
        text = await asyncio.wait_for(self.ws.recv(), timeout)
        message = json.loads(text)
        if message.get("seq") is not None:
            assert message["seq"] == self.last_seq + 1, (message, self.last_seq)
            self.last_seq = message["seq"]
        return message

    async def send_raw(self, text: str | bytes) -> None:
        await self.ws.send(text)

    async def send(self, kind: str, payload: dict | None = None, message_id: str | None = None) -> str:
        message_id = message_id or f"c{next(_ids)}"
        await self.ws.send(json.dumps({"v": 1, "type": kind, "id": message_id, "payload": payload or {}}))
        return message_id

    async def request(self, kind: str, payload: dict | None = None, timeout: float = 10) -> dict:
        """Send and return the ack or error answering it (other messages are kept)."""
        message_id = await self.send(kind, payload)
        return await self.answer(message_id, timeout)

    async def answer(self, message_id: str, timeout: float = 10) -> dict:
        for i, m in enumerate(self.inbox):
            if m.get("id") == message_id and m["type"] in ("ack", "error"):
                del self.inbox[i]
                return m
        while True:
            m = await self._recv(timeout)
            if m.get("id") == message_id and m["type"] in ("ack", "error"):
                return m
            self.inbox.append(m)

    async def ok(self, kind: str, payload: dict | None = None) -> dict:
        answer = await self.request(kind, payload)
        assert answer["type"] == "ack", answer
        return answer["payload"]

    async def expect(self, kind: str, timeout: float = 10, **match) -> dict:
        """The next pushed message of ``kind`` whose payload matches ``match``."""
        for i, m in enumerate(self.inbox):
            if m["type"] == kind and all(m["payload"].get(k) == v for k, v in match.items()):
                del self.inbox[i]
                return m["payload"]
        while True:
            m = await self._recv(timeout)
            if m["type"] == kind and all(m["payload"].get(k) == v for k, v in match.items()):
                return m["payload"]
            self.inbox.append(m)

    async def nothing(self, kind: str, wait: float = 0.2) -> None:
        """Assert no message of ``kind`` arrives within ``wait`` seconds."""
        try:
            m = await self.expect(kind, timeout=wait)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"unexpected {kind}: {m}")

    async def close(self) -> None:
        await self.ws.close()


def url(port: int, **query: str) -> str:
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    return f"ws://127.0.0.1:{port}/v1/ws" + ("?" + qs if qs else "")


async def anonymous(port: int) -> ClientConnection:
    return await connect(url(port), open_timeout=10)


async def register(port: int, user: str, password: str = PASSWORD) -> None:
    ws = await anonymous(port)
    client = Client(ws, user)
    answer = await client.request("register", {"username": user, "password": password})
    assert answer["type"] == "ack", answer
    await ws.close()


async def login(port: int, user: str, password: str = PASSWORD) -> Client:
    """Log in on a fresh connection; the session opens on it (welcome read)."""
    ws = await anonymous(port)
    client = Client(ws, user)
    answer = await client.request("login", {"username": user, "password": password})
    assert answer["type"] == "ack", answer
    client.token = answer["payload"]["token"]
    welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert welcome["type"] == "welcome", welcome
    client.welcome = welcome
    return client


async def connect_token(port: int, user: str, token: str, **query: str) -> Client:
    """A further device (or a resume) with a bearer token."""
    ws = await connect(url(port, **query), additional_headers={"Authorization": f"Bearer {token}"},
                       open_timeout=10)
    client = Client(ws, user)
    client.token = token
    welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert welcome["type"] == "welcome", welcome
    client.welcome = welcome
    return client


async def make_friends(a: Client, b: Client) -> None:
    await a.ok("friend.request", {"username": b.user})
    await b.expect("friend.requested", **{"from": a.user})
    await b.ok("friend.accept", {"username": a.user})
    await a.expect("friend.accepted", by=b.user)


async def friend_pair(port: int, names) -> tuple[Client, Client]:
    """Two fresh users, logged in, friends."""
    a, b = names("alice"), names("bob")
    await register(port, a)
    await register(port, b)
    ca, cb = await login(port, a), await login(port, b)
    await make_friends(ca, cb)
    return ca, cb


async def negotiate(caller: Client, callee: Client, call_id: str) -> None:
    """Offer from the caller, answer from the callee, each relayed to the other."""
    await caller.ok("call.offer", {"call_id": call_id, "sdp": "v=0 offer"})
    assert (await callee.expect("call.offer", call_id=call_id))["sdp"] == "v=0 offer"
    await callee.ok("call.answer", {"call_id": call_id, "sdp": "v=0 answer"})
    assert (await caller.expect("call.answer", call_id=call_id))["sdp"] == "v=0 answer"
