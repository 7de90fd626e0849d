"""A Python client of ``netcore-signal``: the web page's protocol, on asyncio and ``websockets``.

It speaks to the daemon exactly as the page does (``servers/signal/web/signal.js``,
``app.js``): requests carry an id and are answered by ``ack`` or ``error``
with the same id; everything else the server pushes (``call.incoming``,
``call.offer``, ``room.signal`` ...) is queued for the application, in order::

    client = await SignalingClient.connect("ws://127.0.0.1:8080")
    welcome = await client.login("alice", "password-alice")
    call_id = await client.invite("bob", ["audio", "video"])
    accepted = await client.wait_for("call.accepted", call_id=call_id)   # or CallEnded
    await client.send_offer(call_id, sdp)
    message = await client.receive()                                       # call.answer, call.candidate ...
    await client.hangup(call_id)
    await client.close()

Every failure is a :class:`SignalingError`, one subclass per cause, so a
program says one sentence for each without parsing reasons:
:class:`ServerUnreachable` (no connection, or it closed), :class:`LoginFailed`
(401 on login: the server does not say whether the user or the password is
wrong), :class:`NotAllowed` (403), :class:`NotFound` (404),
:class:`Conflict` (409), :class:`RateLimited` (429), :class:`Unavailable`
(480: offline or blocked), :class:`Busy` (486), :class:`RequestRefused`
(any other code), and :class:`CallEnded` (the call ended while we waited for
it; :class:`CallDeclined` when the callee declined or was busy).

It knows nothing of media: :mod:`servers.call.session` ties a call to a
:class:`~netcore.peer.connection.PeerConnection`. Used by ``netcore-call``, by
tests that let the page call our peer, and by load tests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import json
import socket
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from netcore.errors import NetcoreError
from netcore.ice.gathering import TurnServerConfig
from netcore.net import Address

from .protocol import VERSION, ErrorCode

__all__ = [
    "SignalingClient", "ServerMessage", "Welcome", "ice_servers",
    "SignalingError", "ServerUnreachable", "LoginFailed", "NotAllowed", "NotFound", "Conflict",
    "RateLimited", "Unavailable", "Busy", "RequestRefused", "CallEnded", "CallDeclined",
]

REQUEST_TIMEOUT = 10.0  # seconds, as the page waits for an answer


class SignalingError(NetcoreError):
    """A request the server refused, or a connection or call that ended; ``code`` is the server's (0: none)."""

    def __init__(self, reason: str, code: int = 0, request: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.request = request  # the message type that failed ("login", "call.invite" ...)


class ServerUnreachable(SignalingError):
    """No connection to the server (refused, timed out, bad address), or it closed."""


class LoginFailed(SignalingError):
    """401: a wrong username or password (the server does not say which), or not logged in."""


class NotAllowed(SignalingError):
    """403: only friends may be called or invited; only the room owner records; the room is full."""


class NotFound(SignalingError):
    """404: no such user, request, call or room (or not one of ours)."""


class Conflict(SignalingError):
    """409: the wrong state (already in a call, username taken, already friends)."""


class RateLimited(SignalingError):
    """429: too many requests, or failed logins backing off."""


class Unavailable(SignalingError):
    """480: the user is offline, or blocked in either direction (indistinguishable)."""


class Busy(SignalingError):
    """486: the user is in a call or a room."""


class RequestRefused(SignalingError):
    """Any other error answer (400 bad request, 505 version ...)."""


class CallEnded(SignalingError):
    """The call ended while we waited on it; ``reason`` is the server's (``hangup``, ``timeout`` ...)."""


class CallDeclined(CallEnded):
    """The callee declined the call (``declined``) or answered that it is busy (``busy``)."""


_BY_CODE: dict[int, type[SignalingError]] = {
    ErrorCode.UNAUTHORIZED: LoginFailed,
    ErrorCode.FORBIDDEN: NotAllowed,
    ErrorCode.NOT_FOUND: NotFound,
    ErrorCode.CONFLICT: Conflict,
    ErrorCode.RATE_LIMITED: RateLimited,
    ErrorCode.UNAVAILABLE: Unavailable,
    ErrorCode.BUSY: Busy,
}


def error_for(code: int, reason: str, request: str) -> SignalingError:
    """The exception for an ``error`` answer to ``request``."""
    return _BY_CODE.get(code, RequestRefused)(reason, code, request)


@dataclass(frozen=True, slots=True)
class ServerMessage:
    """One message the server pushed: ``type`` ("call.offer" ...) and its ``payload``."""

    type: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Welcome:
    """What the server says when the session opens (the ``welcome`` payload, main fields typed)."""

    session_id: str
    user: str
    ice_servers: list[dict[str, Any]]
    friends: list[dict[str, Any]]
    limits: dict[str, Any]
    token: str | None
    payload: dict[str, Any]


class SignalingClient:
    """One WebSocket session with ``netcore-signal``; see the module docstring."""

    def __init__(self, ws: ClientConnection, url: str) -> None:
        self.url = url
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[str, tuple[asyncio.Future, str]] = {}
        self._inbox: deque[ServerMessage] = deque()
        self._arrived = asyncio.Event()
        self._closed: SignalingError | None = None
        self.last_seq = 0
        self.welcome: Welcome | None = None
        self._token: str | None = None
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(cls, server: str, *, token: str | None = None, timeout: float = 10.0) -> SignalingClient:
        """Open a connection to ``server`` (``ws://host:port``, the ``/v1/ws`` path added if absent).

        With ``token`` (a bearer token from an earlier login) the session opens at once and
        :attr:`welcome` is set on return; without, call :meth:`login`.
        """
        url = ws_url(server)
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            ws = await connect(url, open_timeout=timeout, additional_headers=headers,
                               max_size=1 << 20, ping_interval=20)
        except InvalidURI as exc:
            raise ServerUnreachable(f"{server!r} is not a ws:// or wss:// address", request="connect") from exc
        except InvalidHandshake as exc:
            raise ServerUnreachable(f"the server at {url} refused the connection ({exc})", request="connect") from exc
        except (OSError, asyncio.TimeoutError) as exc:
            if isinstance(exc, ConnectionRefusedError):
                cause = "connection refused: is netcore-signal running there?"
            elif isinstance(exc, OSError) and exc.strerror:
                cause = exc.strerror
            else:
                cause = "no answer within {:.0f} s".format(timeout)
            raise ServerUnreachable(f"cannot reach the signaling server at {url} ({cause})",
                                    request="connect") from exc
        client = cls(ws, url)
        if token:
            client._token = token
            await client.wait_welcome(timeout)
        return client

    # -- requests ----------------------------------------------------------------------

    async def request(self, kind: str, payload: dict[str, Any] | None = None,
                      timeout: float = REQUEST_TIMEOUT) -> dict[str, Any]:
        """Send ``kind`` and return the ``ack`` payload; an ``error`` raises its :class:`SignalingError`."""
        if self._closed is not None:
            raise type(self._closed)(self._closed.reason, self._closed.code, kind)
        message_id = f"c{next(self._ids)}"
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending[message_id] = (future, kind)
        try:
            await self._ws.send(json.dumps({"v": VERSION, "type": kind, "id": message_id, "payload": payload or {}}))
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except ConnectionClosed as exc:
            raise ServerUnreachable("the connection to the signaling server closed", request=kind) from exc
        except asyncio.TimeoutError:
            raise ServerUnreachable("the signaling server did not answer", request=kind) from None
        finally:
            self._pending.pop(message_id, None)

    async def register(self, username: str, password: str) -> None:
        await self.request("register", {"username": username, "password": password})

    async def login(self, username: str, password: str, timeout: float = REQUEST_TIMEOUT) -> Welcome:
        """Log in; the session opens on this connection. Returns the ``welcome``."""
        ack = await self.request("login", {"username": username, "password": password}, timeout)
        self._token = ack.get("token")
        return await self.wait_welcome(timeout)

    async def wait_welcome(self, timeout: float = REQUEST_TIMEOUT) -> Welcome:
        message = await self.wait_for("welcome", timeout=timeout)
        p = message.payload
        self.welcome = Welcome(p.get("session_id", ""), p.get("user", ""), list(p.get("ice_servers", [])),
                               list(p.get("friends", [])), dict(p.get("limits", {})), self._token, p)
        return self.welcome

    async def friend_request(self, username: str) -> str:
        """Ask ``username`` to be friends; the state ("requested", or "friends" if they had asked)."""
        return (await self.request("friend.request", {"username": username}))["state"]

    async def friend_accept(self, username: str) -> None:
        await self.request("friend.accept", {"username": username})

    # -- 1-to-1 calls ------------------------------------------------------------------

    async def invite(self, to: str, media: list[str], caps: dict[str, Any] | None = None) -> str:
        """Ring ``to``; the call id. The answer comes as ``call.accepted`` or ``call.ended``."""
        payload: dict[str, Any] = {"to": to, "media": list(media)}
        if caps:
            payload["caps"] = caps
        return (await self.request("call.invite", payload))["call_id"]

    async def wait_accepted(self, call_id: str, timeout: float | None = None) -> dict[str, Any]:
        """The ``call.accepted`` payload of ``call_id``; :class:`CallDeclined`/:class:`CallEnded` if it ends first."""
        message = await self.wait_for(("call.accepted", "call.ended"), timeout=timeout, call_id=call_id)
        if message.type == "call.ended":
            raise ended(message.payload)
        return message.payload

    async def accept(self, call_id: str, caps: dict[str, Any] | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {"call_id": call_id}
        if caps:
            payload["caps"] = caps
        return await self.request("call.accept", payload)

    async def reject(self, call_id: str, reason: str = "declined") -> None:
        await self.request("call.reject", {"call_id": call_id, "reason": reason})

    async def cancel(self, call_id: str) -> None:
        await self.request("call.cancel", {"call_id": call_id})

    async def hangup(self, call_id: str) -> None:
        await self.request("call.hangup", {"call_id": call_id})

    async def send_offer(self, call_id: str, sdp: str) -> None:
        await self.request("call.offer", {"call_id": call_id, "sdp": sdp})

    async def send_answer(self, call_id: str, sdp: str) -> None:
        await self.request("call.answer", {"call_id": call_id, "sdp": sdp})

    async def send_candidate(self, call_id: str, candidate: dict[str, Any]) -> None:
        """``candidate`` as the page sends it: ``{candidate, sdpMid?, sdpMLineIndex?}`` (empty: the end)."""
        await self.request("call.candidate", {"call_id": call_id, "candidate": candidate})

    async def report_quality(self, call_id: str, path: str, rtt_ms: float, loss: float, **extra: Any) -> None:
        """One ``call.quality`` sample; ``extra``: its optional fields (``bitrate_kbps``, ``jitter_ms`` ...,
        docs/analytics.md), ``None`` values left out."""
        payload = {"call_id": call_id, "path": path, "rtt_ms": rtt_ms, "loss": loss}
        payload.update({key: value for key, value in extra.items() if value is not None})
        await self.request("call.quality", payload)

    # -- rooms -------------------------------------------------------------------------

    async def create_room(self, media: list[str] | None = None) -> dict[str, Any]:
        return await self.request("room.create", {"media": media} if media else {})

    async def invite_to_room(self, room_id: str, to: str) -> None:
        await self.request("room.invite", {"room_id": room_id, "to": to})

    async def join_room(self, room_id: str, region: str | None = None) -> dict[str, Any]:
        """Join (invited users only); the ack: ``room_id``, ``participants``, ``topology`` ... With
        ``region`` (a broadcast's viewer): placed on an edge of that region, named in ``call_server``."""
        return await self.request("room.join", {"room_id": room_id, **({"region": region} if region else {})})

    async def leave_room(self, room_id: str) -> None:
        await self.request("room.leave", {"room_id": room_id})

    async def room_signal(self, room_id: str, to: str, kind: str, *, sdp: str | None = None,
                          candidate: dict[str, Any] | None = None) -> None:
        """Relay an ``offer``/``answer`` (``sdp``) or a ``candidate`` to session ``to`` of a mesh room."""
        payload: dict[str, Any] = {"room_id": room_id, "to": to, "kind": kind}
        if sdp is not None:
            payload["sdp"] = sdp
        if candidate is not None:
            payload["candidate"] = candidate
        await self.request("room.signal", payload)

    # -- pushed messages ---------------------------------------------------------------

    async def receive(self, timeout: float | None = None) -> ServerMessage:
        """The next message the server pushed (in order); :class:`ServerUnreachable` once closed."""
        return await self._take(lambda m: True, timeout)

    async def wait_for(self, kinds: str | tuple[str, ...], timeout: float | None = None,
                       **match: Any) -> ServerMessage:
        """The first pushed message of one of ``kinds`` whose payload has the ``match`` values;
        other messages stay queued for :meth:`receive` in their order."""
        wanted = (kinds,) if isinstance(kinds, str) else kinds
        return await self._take(lambda m: m.type in wanted and all(m.payload.get(k) == v for k, v in match.items()),
                                timeout)

    async def _take(self, accept, timeout: float | None) -> ServerMessage:
        async def take() -> ServerMessage:
            while True:
                for i, message in enumerate(self._inbox):
                    if accept(message):
                        del self._inbox[i]
                        return message
                if self._closed is not None:
                    raise self._closed
                self._arrived.clear()
                await self._arrived.wait()
        return await asyncio.wait_for(take(), timeout)

    async def _read(self) -> None:
        try:
            async for text in self._ws:
                self._dispatch(text)
            self._closed = ServerUnreachable(_close_reason(self._ws), self._ws.close_code or 0, "")
        except ConnectionClosed:
            self._closed = ServerUnreachable(_close_reason(self._ws), self._ws.close_code or 0, "")
        finally:
            if self._closed is None:
                self._closed = ServerUnreachable("the connection to the signaling server closed")
            for future, kind in self._pending.values():
                if not future.done():
                    future.set_exception(ServerUnreachable(self._closed.reason, self._closed.code, kind))
            self._arrived.set()

    def _dispatch(self, text: str | bytes) -> None:
        try:
            message = json.loads(text)
            kind, payload = message["type"], message.get("payload") or {}
        except (ValueError, KeyError, TypeError):
            return  # not a message of the protocol: ignored, as the page does
        if isinstance(message.get("seq"), int):
            self.last_seq = message["seq"]
        waiter = self._pending.get(message.get("id")) if kind in ("ack", "error") else None
        if waiter is not None:
            future, request = waiter
            if not future.done():
                if kind == "ack":
                    future.set_result(payload)
                else:
                    future.set_exception(error_for(int(payload.get("code", 0)), str(payload.get("reason", "")),
                                                   request))
            return
        self._inbox.append(ServerMessage(kind, payload))
        self._arrived.set()

    async def close(self) -> None:
        """Close the connection (the server then keeps the session for its resume window)."""
        await self._ws.close(1000, "bye")
        self._reader.cancel()
        try:
            await self._reader
        except asyncio.CancelledError:
            pass


def ended(payload: dict[str, Any]) -> CallEnded:
    """The exception for a ``call.ended`` payload."""
    reason = str(payload.get("reason", ""))
    kind = CallDeclined if reason in ("declined", "busy") else CallEnded
    return kind(reason, 0, "call")


def _close_reason(ws: ClientConnection) -> str:
    code = ws.close_code
    if code in (None, 1000, 1005, 1006):
        return "the connection to the signaling server closed"
    return f"the signaling server closed the connection (code {code}: {ws.close_reason or 'no reason'})"


def ws_url(server: str) -> str:
    """``ws://host:port`` -> ``ws://host:port/v1/ws``; an address with a path is kept."""
    parts = urlsplit(server)
    if parts.path in ("", "/"):
        return server.rstrip("/") + "/v1/ws"
    return server


def ice_servers(entries: list[dict[str, Any]]) -> tuple[tuple[Address, ...], tuple[TurnServerConfig, ...]]:
    """The welcome's ``ice_servers`` (RTCIceServer dicts) as STUN addresses and TURN servers.

    Only UDP TURN (``turn:host:port`` or ``?transport=udp``) is taken: the peer
    connection opens no TCP or TLS streams to TURN servers. Names are resolved here.
    """
    stun: list[Address] = []
    turn: list[TurnServerConfig] = []
    for entry in entries:
        urls = entry.get("urls", [])
        for url in [urls] if isinstance(urls, str) else urls:
            scheme, _, rest = str(url).partition(":")
            rest, _, query = rest.partition("?")
            address = _address(rest, 5349 if scheme == "turns" else 3478)
            if address is None:
                continue
            if scheme == "stun":
                stun.append(address)
            elif scheme == "turn" and query in ("", "transport=udp"):
                turn.append(TurnServerConfig(address, str(entry.get("username", "")),
                                             str(entry.get("credential", ""))))
    return tuple(stun), tuple(turn)


def _address(text: str, default_port: int) -> Address | None:
    """``host``, ``host:port``, ``[v6]:port`` -> (ip, port); None if the name does not resolve."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]")
        port = port.lstrip(":")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    try:
        number = int(port) if port else default_port
        ipaddress.ip_address(host)
    except ValueError:
        try:
            host = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)[0][4][0]
        except (OSError, UnicodeError):
            return None
        number = int(port) if port.isdigit() else default_port
    return (host, number)
