"""The WebSocket adapter: sockets, the one timer, storage and sinks around the core.

Paths on the one port:

- ``/v1/ws`` -- clients.  With ``Authorization: Bearer TOKEN`` (or
  ``?token=TOKEN`` for browsers) the session opens at once; without, the
  connection may only ``register``, ``login`` (which then opens the session)
  and ``ping``.  ``?resume=RESUME_TOKEN&last_seq=N`` resumes a session.
- ``/v1/service?server=NAME`` -- a call server's link (``Authorization:
  Bearer SERVICE_SECRET``), one per call server: it receives participants'
  offers and ``recording.start``/``recording.stop``, and sends answers,
  slots, the speaker, ``recording.ready`` and its load (``service.load``);
  the core places rooms on the linked servers and moves them when one dies.
- ``/health`` and ``/metrics`` -- plain HTTP (also on ``metrics_port`` if set).
- ``/v1/recordings/NAME?access=TOKEN`` -- with ``recordings_dir`` set, a
  file of a recording to a user who took part (``recording.list`` gives the
  URLs; :mod:`.recordings`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import secrets
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from netcore.driver import Timer
from netcore.sfu.topology import HEARTBEAT

from servers.analytics.producer import AnalyticsProducer, open_writer
from servers.sfu.registry import Registry

from .analytics import analytics_fields
from .config import SignalConfig
from .core import (
    CallEnded,
    CallServerDown,
    CallServerSuspect,
    CloseRequested,
    MediaLeft,
    MediaOffered,
    MediaQualityRequested,
    RecordingRequested,
    RoomMoved,
    SessionExpired,
    SignalCore,
    UserRequested,
)
from .events import StudioCommanded
from .credentials import hash_password, issue_token, turn_rest_credentials, verify_file_token, verify_token
from .guard import HashGate, LoginLimiter, SourceCounter, origin_allowed
from .metrics import Metrics
from .placement import LoopLag
from .protocol import ANONYMOUS_TYPES, CloseCode, ErrorCode, SignalParseError, encode, parse
from .recordings import (
    PREFIX as RECORDINGS_PREFIX,
    entry_files,
    file_response,
    not_found,
    ready_fields,
    recording_entry,
    servable_path,
    with_urls,
)
from .session import TokenBucket
from .static import allowed_methods, method_not_allowed, static_response
from .store import open_store
from .users import UserService

if TYPE_CHECKING:
    from .cluster import Cluster

__all__ = ["SignalServer"]

log = logging.getLogger("netcore.signal")

# What the call server sends back over its link about rooms on it (docs/signaling.md).
MEDIA_REPLIES = frozenset({"media.answer", "media.slots", "media.speaker", "studio.state"})


def log_event(event: str, **fields: Any) -> None:
    """One structured log line (JSON); callers never pass tokens or passwords."""
    if log.isEnabledFor(logging.INFO):
        log.info(json.dumps({"event": event, **fields}, separators=(",", ":")))


class Connection:
    """A client socket and its ordered write queue (one writer task).

    The queue is bounded in bytes (the texts are ASCII JSON, so characters
    are bytes): a client that does not read while messages keep coming
    would otherwise grow the daemon's memory without limit.  The message
    being written counts until the socket took it.
    """

    __slots__ = ("ws", "pending", "pending_bytes", "max_bytes", "wake", "writer", "closing")

    def __init__(self, ws: ServerConnection, max_bytes: int) -> None:
        self.ws = ws
        self.pending: deque[str] = deque()
        self.pending_bytes = 0
        self.max_bytes = max_bytes
        self.wake = asyncio.Event()
        self.writer = asyncio.create_task(self._write())
        self.closing = False  # a close was started: nothing more is queued or closed again

    def push(self, text: str) -> bool:
        """Queue ``text``; False if that puts the connection over its byte bound."""
        if self.closing:
            return True
        if self.pending_bytes + len(text) > self.max_bytes:
            return False
        self.pending.append(text)
        self.pending_bytes += len(text)
        self.wake.set()
        return True

    def discard(self) -> None:
        """Stop writing and free what was queued (the connection is being closed)."""
        self.closing = True
        self.writer.cancel()
        self.pending.clear()
        self.pending_bytes = 0

    async def _write(self) -> None:
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                while self.pending:
                    text = self.pending[0]
                    await self.ws.send(text)
                    self.pending.popleft()
                    self.pending_bytes -= len(text)
        except ConnectionClosed:
            pass


def _release(conn: Connection, table: dict[str, Connection], key: str) -> bool:
    """Stop ``conn``'s writer and take it out of ``table``; False when a newer connection
    (a resumed session, a relinked call server) holds ``key`` by now and must stay."""
    conn.writer.cancel()
    if table.get(key) is not conn:
        return False
    del table[key]
    return True


class SignalServer:
    """One node of the signaling service.

    Alone, or one of several when given a :class:`~.cluster.Cluster`: the
    server then hands it what concerns other nodes at fixed points (before
    a frame, a resume or a session open; after relations change; every
    flush, event and analytics record) through the cluster's public methods,
    and the cluster reaches back only through this class's public ones.
    """

    def __init__(self, config: SignalConfig, *, cluster: Cluster | None = None) -> None:
        self.config = config
        self.node_id = config.node_id or secrets.token_hex(4)
        self.cluster = cluster
        self.core = SignalCore(config.core_config(), node_id=self.node_id, journal=cluster is not None)
        os.makedirs(config.data_dir, exist_ok=True)
        self.store = open_store(config.database, config.data_dir)
        self.users = UserService(self.store)
        self.metrics = Metrics()
        self.token_secret = self._token_secret()
        # One stream for every node with Redis, else a file; written by a thread, never blocking.
        self.analytics = AnalyticsProducer(self.node_id, open_writer(
            config.redis if cluster is not None else None,
            config.analytics or os.path.join(config.data_dir, "analytics.jsonl")))
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="signal-db")
        # Password hashing has threads of its own, and a bound: see HashGate.
        self._hasher = ThreadPoolExecutor(max_workers=config.hash_workers, thread_name_prefix="signal-hash")
        self.hash_gate = HashGate(config.hash_workers, config.hash_queue)
        self.logins = LoginLimiter(config.login_free_failures, config.login_backoff, config.login_backoff_max)
        self.sources = SourceCounter(config.max_connections_per_source)
        self._conns: dict[str, Connection] = {}  # session_id -> connection
        self._links: dict[str, Connection] = {}  # call server name -> its service link
        self._unnamed_links = 0
        self._timer: Timer | None = None  # made on the first flush, on the running loop
        self._lag = LoopLag()  # our own loop's stalls, not counted against the call servers
        self._lag_handle: asyncio.TimerHandle | None = None
        self._servers: list[Any] = []
        self._tasks: set[asyncio.Task] = set()
        self._registry: Registry | None = None  # with config.registry: the broadcast tree's edges
        self.port = 0
        self.metrics_port: int | None = None
        if cluster is not None:
            cluster.bind(self)

    # --- lifecycle --------------------------------------------------------

    def _token_secret(self) -> bytes:
        if self.config.token_secret:
            return self.config.token_secret.encode()
        path = os.path.join(self.config.data_dir, "token.key")
        try:
            with open(path, "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            secret = secrets.token_bytes(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(secret)
            return secret

    async def start(self) -> None:
        """Listen on the configured port(s); an OSError names the address that failed."""
        if self.cluster is not None:
            await self.cluster.join()  # known to the other nodes before the first client
        with _naming(self.config.host, self.config.port):
            server = await serve(
            self._handle, self.config.host, self.config.port,
                process_request=self._process_request,
                max_size=self.config.max_message_bytes,
                compression=None,
                ping_interval=20, ping_timeout=20,
                server_header="netcore-signal",  # no library or version names
            )
        self._servers.append(server)
        self.port = server.sockets[0].getsockname()[1]
        self._lag_tick()
        if self.config.metrics_port is not None:
            with _naming(self.config.host, self.config.metrics_port):
                http = await asyncio.start_server(self._http, self.config.host, self.config.metrics_port)
            self._servers.append(http)
            self.metrics_port = http.sockets[0].getsockname()[1]
        log_event("listening", node=self.node_id, host=self.config.host, port=self.port,
                  metrics_port=self.metrics_port)
        if self.cluster is not None:
            self.cluster.run()
        if self.config.registry:
            self._registry = Registry(self.config.registry, None, log_event)
            self._edges_task = asyncio.ensure_future(self._read_edges(self._registry))

    async def _read_edges(self, registry: Registry) -> None:
        """The broadcast tree's live records into the core every HEARTBEAT: the edges viewers are placed
        on (servers/signal/edges.py). Redis away: the last records stay, said once."""
        failing = False
        while True:
            try:
                self.core.handle_edges(await registry.servers())
                failing = False
            except Exception as exc:  # noqa: BLE001 - keep trying
                if not failing:
                    log_event("registry.unreachable", node=self.node_id, reason=str(exc) or type(exc).__name__)
                failing = True
            await asyncio.sleep(HEARTBEAT)

    async def stop(self) -> None:
        """Close every connection with 1001 going away, so clients resume elsewhere."""
        if self.cluster is not None:
            await self.cluster.leave()  # first: clients that reconnect at once resume elsewhere
        if self._registry is not None:
            self._edges_task.cancel()
            await self._registry.close()
        for server in self._servers:
            server.close()
        conns = list(self._conns.values())
        self.metrics.closed_by_code[CloseCode.GOING_AWAY] = (
            self.metrics.closed_by_code.get(CloseCode.GOING_AWAY, 0) + len(conns))
        # All at once: one slow client must not hold up the others' close handshakes.
        await asyncio.gather(*(c.ws.close(CloseCode.GOING_AWAY, "server shutting down") for c in conns),
                             return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        if self._timer is not None:
            self._timer.close()
        if self._lag_handle is not None:
            self._lag_handle.cancel()
        self._db.shutdown(wait=True)
        self._hasher.shutdown(wait=True)
        self.store.close()
        self.analytics.close()
        if self.cluster is not None:
            await self.cluster.close()
        log_event("stopped", node=self.node_id)

    # --- HTTP -------------------------------------------------------------

    def _http_body(self, path: str) -> tuple[int, str] | None:
        if path == "/health":
            return 200, json.dumps({"status": "ok", "node": self.node_id, "call_servers": sorted(self._links)}) + "\n"
        if path == "/metrics":
            return 200, self.metrics.render(self.core, len(self._conns), self.analytics.dropped,
                                           asyncio.get_running_loop().time())
        return None

    def _process_request(self, connection: ServerConnection, request):
        url = urlsplit(request.path)
        if request.method not in allowed_methods(request):
            return method_not_allowed(request)
        answer = self._http_body(url.path)
        if answer is not None:
            response = connection.respond(HTTPStatus(answer[0]), answer[1])
            if request.method == "HEAD":
                response.body = b""  # RFC 9110 section 9.3.2: GET's headers, no content
            return response
        if url.path.startswith(RECORDINGS_PREFIX) and self.config.recordings_dir:
            return self._recording_file(request, url.path[len(RECORDINGS_PREFIX):], url.query)
        page = static_response(request)  # the web client (servers/signal/web/)
        if page is not None:
            return page
        if not origin_allowed(request.headers.get("Origin"), request.headers.get("Host"),
                              self.config.allowed_origins):
            log_event("origin.refused", node=self.node_id, origin=request.headers.get("Origin", "")[:200])
            return connection.respond(HTTPStatus.FORBIDDEN, "origin not allowed\n")
        if url.path == "/v1/service":
            secret = self.config.service_secret
            if not secret or not hmac.compare_digest((_bearer(request) or "").encode(), secret.encode()):
                return connection.respond(HTTPStatus.UNAUTHORIZED, "bad service secret\n")
            return None
        if url.path not in ("/v1/ws", "/"):
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        token = _bearer(request) or _query(url.query, "token")
        if token is not None and verify_token(self.token_secret, token, time.time()) is None:
            return connection.respond(HTTPStatus.UNAUTHORIZED, "invalid or expired token\n")
        return None

    async def _recording_file(self, request, name: str, query: str):
        """A recording's file to a user who took part (its URL's ``access`` token, or the user's bearer
        token), from inside ``recordings_dir`` only; 404 for anything else, whoever asks."""
        access, now = _query(query, "access"), time.time()
        user = verify_file_token(self.token_secret, access, name, now) if access else None
        if user is None and (bearer := _bearer(request)) is not None:
            user = verify_token(self.token_secret, bearer, now)
        location = await self.in_db(self.store.recording_file, user, name) if user is not None else None
        path = servable_path(self.config.recordings_dir, location or "")
        if path is None:
            return not_found()
        return await asyncio.get_running_loop().run_in_executor(
            None, file_response, path, request.headers.get("Range"), request.method)

    def _servable(self, location: str) -> bool:
        """Whether a file at ``location`` would be served (inside ``recordings_dir``): it gets a URL."""
        return servable_path(self.config.recordings_dir, location) is not None

    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The separate metrics port: a minimal HTTP/1.0 GET responder."""
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            parts = line.decode("latin-1").split()
            answer = self._http_body(urlsplit(parts[1]).path) if len(parts) >= 2 else None
            status, body = answer or (404, "not found\n")
            data = body.encode()
            writer.write(f"HTTP/1.0 {status} {HTTPStatus(status).phrase}\r\nContent-Type: text/plain; "
                         f"version=0.0.4\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
            await writer.drain()
        except (OSError, asyncio.TimeoutError, UnicodeDecodeError):
            pass
        finally:
            writer.close()

    # --- connections ------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        self.metrics.connections_total += 1
        source = _source(ws)
        if not self.sources.add(source):
            await self._close(ws, CloseCode.TRY_AGAIN_LATER, "too many connections from this address")
            return
        try:
            await self._serve_connection(ws, source)
        finally:
            self.sources.remove(source)

    async def _serve_connection(self, ws: ServerConnection, source: str) -> None:
        url = urlsplit(ws.request.path)
        if url.path == "/v1/service":
            if _query(url.query, "role") == "recorder":
                return await self._recorder_link(ws)
            return await self._service_link(ws)
        token = _bearer(ws.request) or _query(url.query, "token")
        user = verify_token(self.token_secret, token, time.time()) if token else None
        if user is None:
            try:
                async with asyncio.timeout(self.config.login_timeout):
                    user = await self._anonymous(ws, source)
            except TimeoutError:
                await self._close(ws, CloseCode.POLICY_VIOLATION,
                                  f"no login within {self.config.login_timeout:g} s")
                return
            if user is None:
                return
        resume = _query(url.query, "resume")
        try:
            last_seq = int(_query(url.query, "last_seq") or 0)
        except ValueError:
            last_seq = 0
        if resume is not None and self.cluster is not None:
            await self.cluster.before_resume(user, resume)
        friends, blocked = await self.in_db(self.store.relations, user)
        if self.cluster is not None:
            await self.cluster.before_open(user, friends)
        loop = asyncio.get_running_loop()
        conn = Connection(ws, self.config.max_pending_bytes)
        resuming = resume is not None and self.core.has_resume_token(resume)
        sid = self.core.handle_connect(user, loop.time(), ice_servers=self._ice_servers(user),
                                       resume_token=resume, last_seq=last_seq,
                                       friends=friends, blocked=blocked)
        old = self._conns.get(sid)
        self._conns[sid] = conn
        if self.cluster is not None:
            self.cluster.session_opened(sid, user)
        if old is not None and not old.closing:
            old.closing = True
            self.spawn(old.ws.close(CloseCode.SESSION_REPLACED, "session resumed elsewhere"))
        log_event("session.open", node=self.node_id, user=user, session=sid, resumed=resume is not None)
        notices = await self.in_db(self.store.take_notices, user)  # kept while the user was away
        for kind, payload in notices if not resuming else ():  # a resumed session had them queued
            self.core.notify_session(sid, kind, payload)
        self.flush()
        try:
            async for text in ws:
                if self.cluster is not None:
                    await self.cluster.before_frame(text)
                self.core.handle_text(sid, text, loop.time())
                self.flush()
        except ConnectionClosed:
            pass
        finally:
            if _release(conn, self._conns, sid):
                self.core.handle_disconnect(sid, loop.time())
                self.flush()
            log_event("session.drop", node=self.node_id, user=user, session=sid,
                      code=ws.close_code)

    async def _anonymous(self, ws: ServerConnection, source: str) -> str | None:
        """Before login: only register, login and ping; returns the user once logged in.

        Failed logins count per account and per source address (not per
        connection, which a guesser simply reopens), and every password hash
        goes through the bounded hash gate.
        """
        loop = asyncio.get_running_loop()
        bucket = TokenBucket(self.config.rate, self.config.burst, loop.time())
        strikes = 0

        async def answer(kind: str, message_id: str | None, payload: dict) -> None:
            await ws.send(encode(kind, message_id, payload))

        try:
            async for text in ws:
                try:
                    if not bucket.take(loop.time()):
                        raise SignalParseError(ErrorCode.RATE_LIMITED, "too many messages")
                    message = parse(text)
                    if message.type not in ANONYMOUS_TYPES:
                        raise SignalParseError(ErrorCode.UNAUTHORIZED, "log in first", message.id)
                except SignalParseError as exc:
                    strikes += 1
                    self.core.count("errors", exc.code)
                    await answer("error", exc.message_id, {"code": exc.code, "reason": exc.reason})
                    if strikes > self.config.max_strikes:
                        await self._close(ws, CloseCode.POLICY_VIOLATION, "too many invalid messages")
                        return None
                    continue
                self.core.count("messages", message.type)
                p = message.payload
                if message.type == "ping":
                    await answer("ack", message.id, {"pong": True})
                    continue
                if message.type == "register":
                    hashed = await self._hash(hash_password, p["password"])
                    if hashed is None:
                        await answer("error", message.id, _BUSY)
                        continue
                    outcome = await self.in_db(self.users.register, p["username"], hashed, time.time())
                    if outcome.error:
                        await answer("error", message.id, {"code": outcome.error[0], "reason": outcome.error[1]})
                    else:
                        log_event("user.registered", node=self.node_id, user=p["username"])
                        await answer("ack", message.id, outcome.payload)
                    continue
                wait = self.logins.retry_after(p["username"], source, loop.time())
                if wait > 0:
                    strikes += 1
                    await answer("error", message.id, {"code": ErrorCode.RATE_LIMITED,
                                                       "reason": f"too many failed logins; retry in {wait:.0f} s"})
                    if strikes > self.config.max_strikes:
                        await self._close(ws, CloseCode.POLICY_VIOLATION, "too many failed logins")
                        return None
                    continue
                matches = await self._hash(self.users.check_password, p["password"],
                                           await self.in_db(self.users.stored_hash, p["username"]))
                if matches is None:
                    await answer("error", message.id, _BUSY)
                elif matches:
                    self.logins.succeeded(p["username"])
                    expiry = int(time.time()) + self.config.token_ttl
                    token = issue_token(self.token_secret, p["username"], expiry)
                    await answer("ack", message.id, {"user": p["username"], "token": token, "expires": expiry})
                    return p["username"]
                else:
                    self.logins.failed(p["username"], source, loop.time())
                    log_event("login.failed", node=self.node_id, user=p["username"], source=source)
                    strikes += 1  # password guessing counts like invalid input
                    await answer("error", message.id, {"code": ErrorCode.UNAUTHORIZED,
                                                       "reason": "bad username or password"})
                    if strikes > self.config.max_strikes:
                        await self._close(ws, CloseCode.POLICY_VIOLATION, "too many failed logins")
                        return None
        except ConnectionClosed:
            pass
        return None

    async def _service_link(self, ws: ServerConnection) -> None:
        """A call server: recording commands and participants' offers out; recording.ready, answers,
        slots, the active speaker and its load in (docs/signaling.md, "The call server's link")."""
        name = (_query(urlsplit(ws.request.path).query, "server") or "")[:100]
        if not name:
            self._unnamed_links += 1
            name = f"call-server-{self._unnamed_links}"
        conn = Connection(ws, self.config.max_pending_bytes)
        old = self._links.get(name)
        self._links[name] = conn  # a server that relinks replaces its old link (its rooms stay)
        if old is not None and not old.closing:
            self._close_once(old, CloseCode.SESSION_REPLACED, "call server linked again")
        loop = asyncio.get_running_loop()
        log_event("service.open", node=self.node_id, server=name)
        self.core.handle_call_server_linked(name, loop.time())
        self.flush()
        try:
            async for text in ws:
                try:
                    obj = json.loads(text)
                    payload = obj["payload"]
                    kind = obj.get("type")
                    if kind == "service.load":  # no ack: two a second
                        self.core.handle_call_server_load(name, payload, loop.time())
                        self.flush()
                        continue
                    if kind in MEDIA_REPLIES:
                        found = self._media_reply(kind, payload)
                        conn.push(encode("ack", obj.get("id"), {"delivered": found}))
                        self.flush()
                        continue
                    if kind != "recording.ready":
                        raise ValueError("unknown type")
                except (ValueError, KeyError, TypeError):
                    conn.push(encode("error", None, {"code": ErrorCode.BAD_REQUEST, "reason": "bad message"}))
                    continue
                await self._on_recording_ready(conn, obj)
        except ConnectionClosed:
            pass
        finally:
            if _release(conn, self._links, name):
                log_event("service.closed", node=self.node_id, server=name)
                self.core.handle_call_server_unlinked(name, loop.time())
                self.flush()

    async def _recorder_link(self, ws: ServerConnection) -> None:
        """A recording worker (``/v1/service?role=recorder``): only recording.ready comes in. It is no
        call server: never placed rooms on, never expected to report its load."""
        conn = Connection(ws, self.config.max_pending_bytes)
        log_event("service.open", node=self.node_id, role="recorder")
        try:
            async for text in ws:
                try:
                    obj = json.loads(text)
                except ValueError:
                    obj = None
                await self._on_recording_ready(conn, obj)
        except ConnectionClosed:
            pass
        finally:
            conn.writer.cancel()

    async def _on_recording_ready(self, conn: Connection, obj: Any) -> None:
        """A recording.ready from a service link: notify (see :meth:`_recording_ready`), then ack."""
        try:
            if obj.get("type") != "recording.ready":
                raise ValueError("unknown type")
            ready = ready_fields(obj["payload"])
        except (ValueError, KeyError, TypeError, AttributeError):
            conn.push(encode("error", None, {"code": ErrorCode.BAD_REQUEST, "reason": "bad message"}))
            return
        found = await self._recording_ready(*ready)
        conn.push(encode("ack", obj.get("id"), {"delivered": found}))
        self.flush()

    # --- the core's outputs -----------------------------------------------

    def flush(self) -> None:
        """Deliver everything the core produced; call after every input to it."""
        core = self.core
        if self.cluster is not None:
            self.cluster.drain(core)  # what goes to other nodes, before what goes to sockets
        while (out := core.poll_transmit()) is not None:
            conn = self._conns.get(out.session_id)
            if conn is not None and not conn.push(out.text):
                self._close_once(conn, CloseCode.TRY_AGAIN_LATER,
                                 f"over {conn.max_bytes} bytes waiting to be sent")
        while (event := core.poll_event()) is not None:
            self._on_event(event)
        if self._timer is None:
            self._timer = Timer(asyncio.get_running_loop(), self._on_timer)
        self._timer.arm(core.next_deadline())

    def _on_event(self, event: Any) -> None:
        if self.cluster is not None and self.cluster.on_event(event):
            return
        named = analytics_fields(event)
        if named is not None:
            self.analytics.emit(named[0], time.time(), **named[1])
        if isinstance(event, UserRequested):
            self.spawn(self._user_request(event))
        elif isinstance(event, CloseRequested):
            conn = self._conns.get(event.session_id)
            if conn is not None:
                self._close_once(conn, event.code, event.reason)
        elif isinstance(event, MediaOffered):
            relayed = self._media_command(event.call_server, "media.offer", {
                "room_id": event.room_id, "session_id": event.session_id, "user": event.user, "sdp": event.sdp})
            if relayed:
                self.core.reply(event.session_id, event.message_id, {"room_id": event.room_id})
            else:
                self.core.reply_error(event.session_id, event.message_id, ErrorCode.UNAVAILABLE,
                                      "the call server is not connected")
            asyncio.get_running_loop().call_soon(self.flush)  # the reply, queued after this flush's sends
        elif isinstance(event, MediaLeft):
            self._media_command(event.call_server, "media.leave",
                                {"room_id": event.room_id, "session_id": event.session_id})
        elif isinstance(event, MediaQualityRequested):
            self._media_command(event.call_server, "media.quality",
                                {"room_id": event.room_id, "session_id": event.session_id,
                                 "publisher": event.publisher, "track": event.track, "max_height": event.max_height,
                                 **({"max_fps": event.max_fps} if event.max_fps is not None else {})})
        elif isinstance(event, StudioCommanded):
            self._media_command(event.call_server, event.kind, {"room_id": event.room_id, "by": event.by,
                                                                **event.payload})
        elif isinstance(event, RoomMoved):
            self.metrics.rooms_moved[event.reason] = self.metrics.rooms_moved.get(event.reason, 0) + 1
            log_event("room.moved", node=self.node_id, room=event.room_id, previous=event.previous,
                      server=event.call_server, reason=event.reason)
        elif isinstance(event, CallServerSuspect):
            log_event("service.suspect", node=self.node_id, server=event.name, probe=event.probe)
            self.spawn(self._probe(event.name, event.probe))
        elif isinstance(event, CallServerDown):
            log_event("service.dead", node=self.node_id, server=event.name, reason=event.reason, rooms=event.rooms)
            conn = self._links.pop(event.name, None)
            if conn is not None:  # silent: close its link, so it links again afresh
                self._close_once(conn, CloseCode.GOING_AWAY, "no load reports")
        elif isinstance(event, RecordingRequested):
            log_event("recording." + event.action, node=self.node_id, room=event.room_id, by=event.by)
            self._recording_command(event.room_id, event.action, event.by, event.call_server)
        elif isinstance(event, CallEnded):
            self.spawn(self.in_db(self.store.record_call, event.call_id, event.kind, event.participants,
                                    event.topology, event.reason, event.answered, event.duration, time.time()))
        elif isinstance(event, SessionExpired):
            log_event("session.expired", node=self.node_id, user=event.user, session=event.session_id)

    async def _user_request(self, event: UserRequested) -> None:
        outcome = await self.in_db(self.users.handle, event.user, event.message, time.time())
        core, mid = self.core, event.message.id
        if outcome.error is not None:
            core.reply_error(event.session_id, mid, *outcome.error)
        else:
            payload = outcome.payload
            if event.message.type == "friend.list":
                payload = dict(payload, friends=[{"user": f, "status": core.status(f)} for f in payload["friends"]])
            elif event.message.type == "recording.list":  # URLs for this user, valid for recording_url_ttl
                expiry = int(time.time()) + self.config.recording_url_ttl
                payload = dict(payload, recordings=await asyncio.to_thread(
                    with_urls, payload["recordings"], event.user, self.token_secret, expiry, self._servable))
            core.reply(event.session_id, mid, payload)
        for user in outcome.changed:
            friends, blocked = await self.in_db(self.store.relations, user)
            core.set_relations(user, friends, blocked)
            if self.cluster is not None:
                await self.cluster.relations_changed(user, friends)
        for user, kind, payload in outcome.notify:
            core.notify_user(user, kind, payload)
            if self.cluster is not None:
                self.cluster.notified(user, kind, payload)
        self.flush()

    # The core's one timer is a netcore.driver.Timer rather than a whole
    # Driver: this core has two more outputs than a driver drains (routes and
    # the journal, for other nodes), and every flush
    # here, the timer's included, must drain them.

    def _on_timer(self, now: float) -> None:
        self._count_stall(self._lag.observe(now), now)  # first: a stall is nobody's silence
        self.core.handle_timeout(now)
        self.flush()

    def _lag_tick(self) -> None:
        """Every LAG_TICK: how late this tick is is how long our loop was held up (placement.LoopLag)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._count_stall(self._lag.tick(now), now):
            self.flush()
        self._lag_handle = loop.call_at(self._lag.expected, self._lag_tick)

    def _count_stall(self, seconds: float, now: float) -> bool:
        if seconds <= 0.0:
            return False
        self.metrics.loop_stalls += 1
        self.metrics.loop_stalled_seconds += seconds
        self.core.handle_loop_stall(seconds, now)
        return True

    async def _probe(self, name: str, probe: int) -> None:
        """Ping a suspect call server's link; its pong goes to the core (no pong: the core's deadline)."""
        conn = self._links.get(name)
        if conn is None:
            return
        try:
            await (await conn.ws.ping())
        except (ConnectionClosed, RuntimeError):
            return  # the link's own close says it
        self.core.handle_call_server_pong(name, probe, asyncio.get_running_loop().time())
        self.flush()

    # --- the call server's link, and what the cluster asks of this node ------

    def _recording_command(self, room_id: str, action: str, by: str, server: str | None = None) -> None:
        if not self.send_to_call_server(room_id, action, by, server) and self.cluster is not None:
            self.cluster.recording_command(room_id, action, by)  # its link may be on another node

    def _media_reply(self, kind: str, payload: dict) -> bool:
        """The call server's answer, slots or active speaker, to the room's session(s) on this node."""
        room_id = str(payload["room_id"])
        if kind == "studio.state":  # what is on air, and the sources: to everyone in the studio room
            sessions = self.core.room_sessions(room_id)
            for session_id in sessions:
                self.core.notify_session(session_id, "studio.state", dict(payload))
            return bool(sessions)
        if kind == "media.speaker":
            speaker = payload.get("session_id")
            out = {"room_id": room_id, "session_id": None if speaker is None else str(speaker)}
            sessions = self.core.room_sessions(room_id)
            for session_id in sessions:
                self.core.notify_session(session_id, "room.speaker", out)
            return bool(sessions)
        session_id = str(payload["session_id"])
        if kind == "media.answer":
            if "error" in payload:  # before reading sdp: a refusal has none
                out = {"room_id": room_id, "error": str(payload["error"])}
            else:
                out = {"room_id": room_id, "sdp": str(payload["sdp"]), "slots": list(payload.get("slots") or [])}
            return self.core.notify_session(session_id, "room.media", out)
        return self.core.notify_session(session_id, "room.slots",
                                        {"room_id": room_id, "slots": list(payload.get("slots") or [])})

    def _link(self, server: str | None) -> Connection | None:
        """The link of call server ``server``; without a name (a room placed before any server
        linked, or another node's recording command), the only or first link."""
        if server is not None:
            return self._links.get(server)
        return next(iter(self._links.values()), None)

    def _media_command(self, server: str | None, kind: str, payload: dict) -> bool:
        """Relay to the room's call server; False if it is not linked here."""
        link = self._link(server)
        if link is None:
            return False
        link.push(encode(kind, None, payload))
        return True

    def send_to_call_server(self, room_id: str, action: str, by: str, server: str | None = None) -> bool:
        """Forward start/stop to the room's call server (``server``, else any linked here); False if
        none is linked here."""
        link = self._link(server if server is not None else self.core.room_call_server(room_id))
        if link is None:
            return False
        link.push(encode("recording." + action, None, {"room_id": room_id, "by": by}))
        return True

    async def _recording_ready(self, room_id: str, location: str, users: tuple[str, ...] = (),
                               extra: dict | None = None) -> bool:
        """recording.ready from the call server or a recording worker: notify everyone who took part
        (the room's users and ``users``); whoever has no connected session now gets it at their next
        login (a session waiting in its resume window gets it on resuming, and the kept copy is then
        dropped). Whether anyone was found."""
        now = asyncio.get_running_loop().time()
        if self.cluster is not None:
            found = await self.cluster.recording_ready(room_id, location, extra)  # only the owner knows the room
            everyone = set(users)
            away = {u for u in everyone if self.core.status(u) == "offline"}
        else:
            everyone = set(self.core.handle_recording_ready(room_id, location, now, users, extra))
            found = bool(everyone)
            away = {u for u in everyone if not self.core.connected_sessions(u)}
        payload = {"room_id": room_id, "location": location, **(extra or {})}
        kept = await self.in_db(self._keep_recording, sorted(everyone), away, payload,
                                recording_entry(room_id, location, extra, time.time()))
        log_event("recording.ready", node=self.node_id, room=room_id, location=location,
                  online=sorted(everyone - away), kept=kept)
        return found

    def _keep_recording(self, users: list[str], away: set[str], payload: dict, entry: dict) -> list[str]:
        """On the storage thread: the recording in every existing user's list, and a notice for those
        away; the users a notice was kept for."""
        kept, now = [], time.time()
        for user in users:
            if not self.store.user_exists(user):
                continue
            self.store.add_recording(user, entry["location"], entry["room_id"], entry["started"], entry,
                                     entry_files(entry))
            if user in away:
                self.store.add_notice(user, "recording.ready", f"{entry['room_id']} {entry['location']}", payload, now)
                kept.append(user)
        return kept

    def session_ids(self) -> list[str]:
        """Sessions with a socket on this node."""
        return list(self._conns)

    def release(self, session_id: str, code: int, reason: str) -> None:
        """Let go of a session's socket (it resumed on another node); queued messages still go out."""
        conn = self._conns.pop(session_id, None)
        if conn is not None:
            self._close_once(conn, code, reason, discard=False)

    # --- small helpers ----------------------------------------------------

    def _ice_servers(self, user: str) -> list[dict]:
        servers: list[dict] = []
        if self.config.stun_urls:
            servers.append({"urls": list(self.config.stun_urls)})
        if self.config.turn_urls and self.config.turn_secret:
            username, password = turn_rest_credentials(
                self.config.turn_secret, user, int(time.time()) + self.config.turn_ttl)
            servers.append({"urls": list(self.config.turn_urls), "username": username, "credential": password})
        return servers

    async def _hash(self, fn, *args):
        """Run a password hash on the bounded hashing threads; None if too many wait already."""
        if not self.hash_gate.admit():
            return None
        try:
            return await asyncio.get_running_loop().run_in_executor(self._hasher, fn, *args)
        finally:
            self.hash_gate.release()

    async def in_db(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    async def _close(self, ws: ServerConnection, code: int, reason: str) -> None:
        self.metrics.closed_by_code[code] = self.metrics.closed_by_code.get(code, 0) + 1
        log_event("close", node=self.node_id, code=code, reason=reason)
        await ws.close(code, reason)

    def _close_once(self, conn: Connection, code: int, reason: str, *, discard: bool = True) -> None:
        """Close a session's connection: the first reason wins, later ones are dropped.

        With ``discard`` what was queued for it is freed at once (the session
        keeps its replay buffer, so the client may resume).
        """
        if conn.closing:
            return
        if discard:
            conn.discard()
        conn.closing = True
        self.spawn(self._close(conn.ws, code, reason))

    def spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


@contextlib.contextmanager
def _naming(host: str, port: int):
    """Re-raise a bind error as one sentence naming the address ("Address already in use: 127.0.0.1:8443")."""
    try:
        yield
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise OSError(exc.errno, f"{reason}: {where}") from None


_BUSY = {"code": ErrorCode.RATE_LIMITED, "reason": "too many logins at once; retry shortly"}


def _source(ws: ServerConnection) -> str:
    """The client's address (without the port): the key of per-source limits."""
    address = ws.remote_address
    return str(address[0]) if address else "?"


def _bearer(request) -> str | None:
    value = request.headers.get("Authorization", "")
    if value.startswith("Bearer "):
        return value[7:].strip() or None
    return None


def _query(query: str, name: str) -> str | None:
    values = parse_qs(query).get(name)
    return values[0] if values else None
