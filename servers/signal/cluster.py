"""Multi-node: what makes a signaling server one of several nodes sharing a Redis.

A :class:`Cluster` is given to a :class:`~.server.SignalServer`, which calls
its public methods at fixed points (``before_frame``, ``before_resume``,
``before_open``, ``session_opened``, ``drain``, ``on_event`` ...); the
cluster reaches the server only through the server's public methods
(``core``, ``flush``, ``spawn``, ``in_db``, ``release`` ...).

What lives in Redis (``nc:`` keys; per-session and per-user keys expire one
resume window plus three heartbeats after their node stops refreshing them):

- ``nc:node:{node}`` -- the node's heartbeat (lives 3 heartbeats), and
  ``nc:nodes``, node -> last heartbeat (each node caches the live set);
- ``nc:user:{user}`` -- the user-to-node map: session id -> node;
- ``nc:sess:{sid}`` (user, node, resume token, seq at open), ``nc:resume:{token}``
  -> sid, ``nc:outbox:{sid}`` (the last messages sent, for replay) and
  ``nc:scalls:{sid}`` (its calls): enough for another node to resume it;
- ``nc:call:{call_id}`` / ``nc:room:{room_id}`` -- call and room snapshots,
  written by the owner node at every change (``nc:srooms:{sid}`` indexes a
  session's rooms);
- ``nc:presence:{user}`` -- each node's view of the user (online/busy);
- ``nc:analytics`` -- the analytics stream (XADD, by the server's analytics producer).

Routing: every node subscribes to ``nc:inbox:{node}`` and to
``nc:broadcast``.  A call is owned by the node of its caller; messages the
owner produces for sessions on other nodes are published to those nodes
(``route``), which sequence them into their sessions; messages a client sends
about a call owned elsewhere are published to the owner (``forward``).
Notifications, relation changes and presence go to ``nc:broadcast``.

Failover: a node is dead when nobody listens on its inbox (PUBSUB NUMSUB;
a killed process drops its connection at once).  A client that resumes on
another node brings its resume token; that node loads the session and its calls from
Redis, adopts them (``SignalCore.adopt_session``/``adopt_call``), replays what
the client missed and carries on.  A forward or route that finds no
subscriber (the owner is dead) makes the sender adopt the call at once.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Callable

import redis.asyncio as aioredis

from .config import SignalConfig
from .core import CallChanged, Forwarded, PresenceChanged, RoomChanged, SessionExpired
from .protocol import CloseCode, Message
from .server import SignalServer, log_event
from .state import STATUS_RANK, Presence

__all__ = ["Cluster"]

BROADCAST = "nc:broadcast"


def _inbox(node: str) -> str:
    return f"nc:inbox:{node}"


class Cluster:
    """The Redis side of one node: users, calls and routing across several nodes."""

    def __init__(self, config: SignalConfig) -> None:
        self.config = config
        self.server: SignalServer | None = None
        self.redis = aioredis.from_url(config.redis, decode_responses=True)
        self._ops: list[tuple[str, tuple, Callable[[Any], None] | None]] = []
        self._ops_ready = asyncio.Event()
        self._indexed_sessions: dict[str, list[str]] = {}
        self._bg: list[asyncio.Task] = []
        self._session_ttl = int(config.resume_window + 3 * config.heartbeat) + 1
        self._alive: set[str] = set()  # nodes whose heartbeat is fresh, as of our last heartbeat
        self._leaving = False
        self._handovers: dict[str, asyncio.Future] = {}  # session id -> answer of its old node

    # --- what the cluster reads of its server ---------------------------------

    def bind(self, server: SignalServer) -> None:
        """The server this cluster serves (called once, by the server)."""
        self.server = server

    @property
    def core(self):
        return self.server.core

    @property
    def node_id(self) -> str:
        return self.server.node_id

    @property
    def metrics(self):
        return self.server.metrics

    # --- lifecycle --------------------------------------------------------

    async def join(self) -> None:
        """Heartbeat and subscribe, before the server takes clients."""
        await self._heartbeat_once()
        self._pubsub = self.redis.pubsub()
        await self._pubsub.subscribe(_inbox(self.node_id), BROADCAST)

    def run(self) -> None:
        """Start the bus reader, the ordered writer and the heartbeat (the server listens now)."""
        loop = asyncio.get_running_loop()
        self._bg = [loop.create_task(self._reader()), loop.create_task(self._writer()),
                    loop.create_task(self._heartbeat())]

    async def leave(self) -> None:
        """Leave the cluster, before the server closes clients with 1001.

        Once our inbox has no listener the other nodes take us for gone, so a
        client that reconnects elsewhere at once is resumed there (its
        session, calls and rooms adopted) instead of getting a fresh session.
        """
        await self._drain_ops()
        self._leaving = True
        await self._pubsub.unsubscribe()
        await self.redis.delete(f"nc:node:{self.node_id}")
        await self.redis.zrem("nc:nodes", self.node_id)

    async def close(self) -> None:
        """After the server closed its clients: write what they left, then disconnect."""
        await self._drain_ops()
        for task in self._bg:
            task.cancel()
        await self._pubsub.aclose()
        await self.redis.aclose()

    async def _heartbeat_once(self) -> None:
        ttl = max(1, int(3 * self.config.heartbeat + 0.999))
        now = time.time()
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(f"nc:node:{self.node_id}", str(now), ex=ttl)
        pipe.zadd("nc:nodes", {self.node_id: now})
        pipe.zremrangebyscore("nc:nodes", 0, now - 10 * ttl)
        pipe.zrangebyscore("nc:nodes", now - ttl, "+inf")
        for sid in self.server.session_ids():  # connected sessions live on; dropped ones expire after the window
            info = self.core.session_keys(sid)
            if info is None:
                continue
            user, resume_token = info
            for key in (f"nc:sess:{sid}", f"nc:outbox:{sid}", f"nc:scalls:{sid}", f"nc:srooms:{sid}",
                        f"nc:resume:{resume_token}", f"nc:user:{user}", f"nc:presence:{user}"):
                pipe.expire(key, self._session_ttl)
        results = await pipe.execute()
        gone = self._alive - set(results[3])
        self._alive = set(results[3])
        self.metrics.redis_round_trips += 1
        if gone:  # their users' views no longer count: tell friends here what is left
            log_event("nodes.gone", node=self.node_id, gone=sorted(gone))
            await self._refresh_presence(self.core.remote_status_users())
            self.server.flush()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat)
            try:
                await self._heartbeat_once()
            except aioredis.RedisError as exc:
                log_event("redis.error", node=self.node_id, error=type(exc).__name__)

    # --- ordered writes to Redis ------------------------------------------

    def _op(self, name: str, *args: Any, then: Callable[[Any], None] | None = None) -> None:
        self._ops.append((name, args, then))
        self._ops_ready.set()

    async def _writer(self) -> None:
        while True:
            await self._ops_ready.wait()
            self._ops_ready.clear()
            await self._drain_ops()

    async def _drain_ops(self) -> None:
        while self._ops:
            ops, self._ops = self._ops, []
            pipe = self.redis.pipeline(transaction=False)
            for name, args, _ in ops:
                getattr(pipe, name)(*args)
            try:
                results = await pipe.execute(raise_on_error=False)
            except aioredis.RedisError as exc:
                log_event("redis.error", node=self.node_id, error=type(exc).__name__)
                continue
            self.metrics.redis_round_trips += 1
            for (_, _, then), result in zip(ops, results):
                if then is not None:
                    then(result)
            self.server.flush()

    # --- the core's outputs -----------------------------------------------

    def drain(self, core) -> None:
        """Routes and the journal out to Redis (the server drains sockets and events after)."""
        batch: dict[str, list[str]] = {}
        while (j := core.poll_journal()) is not None:
            batch.setdefault(j[0], []).append(j[2])
        for sid, texts in batch.items():  # the texts carry their seq: no separate counter
            key = f"nc:outbox:{sid}"
            self._op("rpush", key, *texts)
            self._op("ltrim", key, -core.config.replay_buffer, -1)
        while (r := core.poll_route()) is not None:
            node, sid, kind, payload, mid = r
            body = json.dumps({"op": "route", "sid": sid, "kind": kind, "payload": payload, "id": mid,
                               "owner": self.node_id})
            self._op("publish", _inbox(node), body,
                     then=lambda n, r=r: n == 0 and self.server.spawn(self._undeliverable(r)))

    def on_event(self, event: Any) -> bool:
        """Handle what concerns other nodes; True if the server has nothing more to do with it."""
        if isinstance(event, Forwarded):
            body = json.dumps({"op": "forward", "sid": event.session_id, "user": event.user,
                               "origin": self.node_id, "message": {"type": event.message.type,
                                                                    "id": event.message.id,
                                                                    "payload": event.message.payload}})
            self._op("publish", _inbox(event.node), body,
                     then=lambda n, e=event: n == 0 and self.server.spawn(self._owner_dead(e)))
        elif isinstance(event, CallChanged):
            self._snapshot_changed("call", event.call_id, event.snapshot)
        elif isinstance(event, RoomChanged):
            self._snapshot_changed("room", event.room_id, event.snapshot)
        elif isinstance(event, PresenceChanged):
            key = f"nc:presence:{event.user}"
            if event.status == Presence.OFFLINE:
                self._op("hdel", key, self.node_id)
            else:
                self._op("hset", key, self.node_id, event.status)
            self._op("publish", BROADCAST, json.dumps({"op": "presence", "user": event.user,
                                                       "origin": self.node_id}))
        else:
            if isinstance(event, SessionExpired):
                sid = event.session_id
                self._op("hdel", f"nc:user:{event.user}", sid)
                self.server.spawn(self._forget_resume(sid))
            return False
        return True

    async def _forget_resume(self, sid: str) -> None:
        token = await self.redis.hget(f"nc:sess:{sid}", "resume_token")
        keys = [f"nc:sess:{sid}", f"nc:outbox:{sid}", f"nc:scalls:{sid}", f"nc:srooms:{sid}"]
        await self.redis.delete(*keys, *([f"nc:resume:{token}"] if token else []))

    def _snapshot_changed(self, kind: str, key_id: str, snapshot: dict | None) -> None:
        """Write a call or room snapshot, and index it under each of its sessions."""
        key, index = f"nc:{kind}:{key_id}", "nc:scalls:{}" if kind == "call" else "nc:srooms:{}"
        old = self._indexed_sessions.pop(key, [])
        if snapshot is None:
            self._op("delete", key)
            for sid in old:
                self._op("srem", index.format(sid), key_id)
            return
        sids = list(snapshot["sessions" if kind == "call" else "participants"])
        self._indexed_sessions[key] = sids
        self._op("set", key, json.dumps(dict(snapshot, saved_at=time.time())), 86400)
        for sid in set(old) - set(sids):
            self._op("srem", index.format(sid), key_id)
        for sid in set(sids) - set(old):  # the hosting node's heartbeat keeps the index alive
            self._op("sadd", index.format(sid), key_id)
            self._op("expire", index.format(sid), self._session_ttl)

    def session_opened(self, session_id: str, user: str) -> None:
        session = self.core.session(session_id)
        self._op("hset", f"nc:user:{user}", session_id, self.node_id)
        self._op("hset", f"nc:sess:{session_id}", None, None, {"user": user, "node": self.node_id,
                                                              "resume_token": session.resume_token,
                                                              "seq": session.seq})
        self._op("expire", f"nc:sess:{session_id}", self._session_ttl)
        self._op("set", f"nc:resume:{session.resume_token}", session_id, self._session_ttl)

    # --- inputs from other nodes ------------------------------------------

    async def _reader(self) -> None:
        """Bus messages in; on a lost Redis connection, resubscribe and carry on.

        Pub/sub is at-most-once: what other nodes publish to us while we are
        resubscribing is lost (routes to us then count as undeliverable).
        """
        while not self._leaving:
            try:
                if not self._pubsub.subscribed:
                    await self._pubsub.subscribe(_inbox(self.node_id), BROADCAST)
                    log_event("bus.subscribed", node=self.node_id)
                async for item in self._pubsub.listen():
                    if item.get("type") != "message":
                        continue
                    try:
                        await self._on_bus(json.loads(item["data"]))
                    except (ValueError, KeyError, TypeError) as exc:
                        log_event("bus.bad_message", node=self.node_id, error=type(exc).__name__)
                    self.server.flush()
            except aioredis.RedisError as exc:
                log_event("redis.error", node=self.node_id, error=type(exc).__name__)
                await asyncio.sleep(0.5)

    async def _on_bus(self, body: dict) -> None:
        core, now = self.core, asyncio.get_running_loop().time()
        op = body["op"]
        if op == "route":
            core.handle_routed(body["sid"], body["kind"], body["payload"], body["id"], body["owner"])
        elif op == "forward":
            m = body["message"]
            core.handle_forwarded(body["sid"], body["user"], body["origin"],
                                  Message(m["type"], m["id"], m["payload"]), now)
        elif body.get("origin") == self.node_id:
            return
        elif op == "presence":
            if core.has_local_followers(body["user"]):  # nobody here cares otherwise
                core.handle_remote_presence(body["user"], await self._remote_view(body["user"]))
        elif op == "notify":
            core.notify_user(body["user"], body["kind"], body["payload"])
        elif op == "handover":
            self._hand_over(body["sid"], body["to"])
        elif op == "handed_over":
            waiter = self._handovers.get(body["sid"])
            if waiter is not None and not waiter.done():
                waiter.set_result(body["owned"])
        elif op == "recording.command":
            self.server.send_to_call_server(body["room_id"], body["action"], body["by"])
        elif op == "recording.ready":
            self._notify_recording(body["room_id"], body["location"], body.get("extra"))
        elif op == "relations":
            if core.is_local_user(body["user"]):
                friends, blocked = await self.server.in_db(self.server.store.relations, body["user"])
                core.set_relations(body["user"], friends, blocked)
                await self._refresh_presence(friends)

    async def relations_changed(self, user: str, friends: set[str]) -> None:
        self._op("publish", BROADCAST, json.dumps({"op": "relations", "user": user, "origin": self.node_id}))
        await self._refresh_presence(friends)  # new friends elsewhere: learn their status

    def notified(self, user: str, kind: str, payload: dict) -> None:
        self._op("publish", BROADCAST, json.dumps({"op": "notify", "user": user, "kind": kind,
                                                   "payload": payload, "origin": self.node_id}))

    # --- look-ups before the core acts ------------------------------------

    async def before_frame(self, text: str | bytes) -> None:
        """Before a call.invite or room.invite to a user not on this node, learn their sessions and blocks."""
        if not isinstance(text, str) or ('"call.invite"' not in text and '"room.invite"' not in text):
            return
        try:
            callee = json.loads(text)["payload"]["to"]
        except (ValueError, KeyError, TypeError):
            return
        if not isinstance(callee, str):
            return  # the core answers the validation error
        # Even with sessions here, the callee may have devices on other nodes: ring them all.
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(f"nc:user:{callee}")
        pipe.hgetall(f"nc:presence:{callee}")
        (sessions, views), blocked = await asyncio.gather(pipe.execute(), self.server.in_db(self.server.store.blocked_by, callee))
        self.metrics.redis_round_trips += 1
        await self._learn_nodes(set(sessions.values()) | set(views))
        live = {sid: node for sid, node in sessions.items() if node in self._alive and node != self.node_id}
        if not live:
            return
        for sid, node in live.items():
            self.core.add_foreign_session(sid, callee, node)
        self.core.set_remote_user(callee, set(blocked))
        self.core.handle_remote_presence(callee, self._combine(views))  # for the busy check
        self.server.spawn(self._prune_later(callee))

    async def _prune_later(self, user: str) -> None:
        await asyncio.sleep(0)
        self.core.prune_foreign(user)

    def _combine(self, views: dict[str, str]) -> str:
        """A user's status as the other live nodes see it (the busiest view wins)."""
        best = Presence.OFFLINE
        for node, status in views.items():
            if node != self.node_id and node in self._alive and STATUS_RANK.get(status, 0) > STATUS_RANK[best]:
                best = status
        return best

    async def _learn_nodes(self, nodes: set[str]) -> None:
        """Check nodes we have not seen alive: they may have started since our last heartbeat."""
        for node in nodes - self._alive - {self.node_id}:
            if await self.redis.exists(f"nc:node:{node}"):
                self._alive.add(node)

    async def _remote_view(self, user: str) -> str:
        self.metrics.redis_round_trips += 1
        views = await self.redis.hgetall(f"nc:presence:{user}")
        await self._learn_nodes(set(views))
        return self._combine(views)

    async def before_open(self, user: str, friends: set[str]) -> None:
        await self._refresh_presence(friends)

    async def _refresh_presence(self, users: set[str]) -> None:
        """Read the other nodes' views of these users (one pipeline) and hand them to the core."""
        remote = sorted(f for f in users if not self.core.is_local_user(f))
        if not remote:
            return
        pipe = self.redis.pipeline(transaction=False)
        for friend in remote:
            pipe.hgetall(f"nc:presence:{friend}")
        self.metrics.redis_round_trips += 1
        all_views = await pipe.execute()
        await self._learn_nodes({node for views in all_views for node in views})
        for friend, views in zip(remote, all_views):
            self.core.handle_remote_presence(friend, self._combine(views))

    async def _node_alive(self, node: str) -> bool:
        """A node is alive while it listens on its inbox.

        A killed node's Redis connection closes with its process, so its
        subscription count drops at once, well before its heartbeat expires.
        """
        [(_, listeners)] = await self.redis.pubsub_numsub(_inbox(node))
        self.metrics.redis_round_trips += 1
        return listeners > 0

    # --- failover ----------------------------------------------------------

    # --- the call server's link, wherever it is connected --------------------

    def recording_command(self, room_id: str, action: str, by: str) -> None:
        """The call server's link is not on this node: ask the node that has it."""
        self._op("publish", BROADCAST, json.dumps({"op": "recording.command", "room_id": room_id,
                                                   "action": action, "by": by, "origin": self.node_id}))

    async def recording_ready(self, room_id: str, location: str, extra: dict | None = None) -> bool:
        """Only the room's owner node knows who took part: ask every node (``extra``: more of the
        notification, the recorder's ``files``)."""
        self._op("publish", BROADCAST, json.dumps({"op": "recording.ready", "room_id": room_id,
                                                   "location": location, "extra": extra, "origin": self.node_id}))
        return self._notify_recording(room_id, location, extra)

    def _notify_recording(self, room_id: str, location: str, extra: dict | None = None) -> bool:
        users = self.core.handle_recording_ready(room_id, location, asyncio.get_running_loop().time(),
                                                 extra=extra)
        for user in users:  # their sessions on other nodes
            self.notified(user, "recording.ready", {"room_id": room_id, "location": location, **(extra or {})})
        return bool(users)

    async def before_resume(self, user: str, resume_token: str) -> None:
        if self.core.has_resume_token(resume_token):
            return
        sid = await self.redis.get(f"nc:resume:{resume_token}")
        if sid is None:
            return
        info = await self.redis.hgetall(f"nc:sess:{sid}")
        if info.get("user") != user or info.get("resume_token") != resume_token:
            return
        owned = None
        node = info.get("node", "")
        if node != self.node_id and await self._node_alive(node):
            owned = await self._request_handover(node, sid)
            if owned is None:
                return  # the live node did not let go: a fresh session here
        await self._adopt_session(sid, info, owned)

    async def _request_handover(self, node: str, sid: str) -> dict[str, str] | None:
        """Ask a live node to give up a session whose client came to us; its call owners, or None."""
        waiter = asyncio.get_running_loop().create_future()
        self._handovers[sid] = waiter
        self._op("publish", _inbox(node), json.dumps({"op": "handover", "sid": sid, "to": self.node_id}))
        try:
            return await asyncio.wait_for(waiter, 3.0)
        except asyncio.TimeoutError:
            return None
        finally:
            self._handovers.pop(sid, None)

    def _hand_over(self, sid: str, to: str) -> None:
        """Another node resumes one of our sessions: let go of its socket and its state."""
        owned = self.core.hand_over(sid, to)
        self.server.release(sid, CloseCode.SESSION_REPLACED, "session resumed on another node")
        self.server.flush()  # its last messages reach the outbox in Redis before the answer
        self._op("publish", _inbox(to), json.dumps({"op": "handed_over", "sid": sid, "owned": owned}))

    async def _adopt_session(self, sid: str, info: dict, remote_owned: dict[str, str] | None = None) -> None:
        """Load a session from Redis and take it over, with its calls if their owner is dead."""
        now = asyncio.get_running_loop().time()
        texts = await self.redis.lrange(f"nc:outbox:{sid}", 0, -1)
        outbox = [(json.loads(t)["seq"], t) for t in texts]
        seq = max([int(info.get("seq", 0))] + [s for s, _ in outbox])
        self.core.adopt_session(sid, info["user"], info["resume_token"], seq, outbox, now, remote_owned)
        self._op("hset", f"nc:user:{info['user']}", sid, self.node_id)
        self._op("hset", f"nc:sess:{sid}", "node", self.node_id)
        for call_id in await self.redis.smembers(f"nc:scalls:{sid}"):
            await self._adopt_call(call_id)
        for room_id in await self.redis.smembers(f"nc:srooms:{sid}"):
            await self._adopt_room(room_id)
        log_event("session.adopted", node=self.node_id, session=sid, dead_node=info.get("node"))
        self.server.flush()

    async def _orphan(self, key: str, owner_field: str) -> tuple[dict, float] | None:
        """A snapshot whose owner node is dead (or us), with the seconds since it was saved."""
        raw = await self.redis.get(key)
        if raw is None:
            return None
        snapshot = json.loads(raw)
        owner = snapshot[owner_field]
        if owner != self.node_id and await self._node_alive(owner):
            return None
        return snapshot, max(0.0, time.time() - snapshot.pop("saved_at", time.time()))

    async def _adopt_call(self, call_id: str) -> bool:
        found = await self._orphan(f"nc:call:{call_id}", "owner")
        if found is None:
            return False
        snapshot, elapsed = found
        snapshot["ring_remaining"] -= elapsed
        if snapshot["answered_age"] is not None:
            snapshot["answered_age"] += elapsed
        self._adopted("call", call_id, snapshot, elapsed, snapshot["owner"])
        return True

    async def _adopt_room(self, room_id: str) -> bool:
        found = await self._orphan(f"nc:room:{room_id}", "owner_node")
        if found is None:
            return False
        snapshot, elapsed = found
        self._adopted("room", room_id, snapshot, elapsed, snapshot["owner_node"])
        return True

    def _adopted(self, kind: str, ident: str, snapshot: dict, elapsed: float, dead_node: str) -> None:
        """Hand a dead node's call or room to the core, aged by the time it lay orphaned."""
        snapshot["age"] += elapsed
        adopt = self.core.adopt_call if kind == "call" else self.core.adopt_room
        adopt(snapshot, asyncio.get_running_loop().time())
        log_event(f"{kind}.adopted", node=self.node_id, dead_node=dead_node, **{kind: ident})

    async def _owner_dead(self, event: Forwarded) -> None:
        """A forward found nobody listening: adopt the call or room, then handle the message here."""
        payload = event.message.payload
        call_id, room_id = payload.get("call_id"), payload.get("room_id")
        adopted = (await self._adopt_call(call_id)) if call_id else (await self._adopt_room(room_id)) if room_id else False
        if adopted:
            self.core.handle_forwarded(event.session_id, event.user, self.node_id, event.message,
                                       asyncio.get_running_loop().time())
        self.server.flush()

    async def _undeliverable(self, route: tuple) -> None:
        """A route to a dead node: adopt the session it was for, then deliver here."""
        node, sid, kind, payload, mid = route
        if not self.core.has_session(sid):
            info = await self.redis.hgetall(f"nc:sess:{sid}")
            if not info or await self._node_alive(info.get("node", "")):
                return
            await self._adopt_session(sid, info)
        self.core.handle_routed(sid, kind, payload, mid, self.node_id)
        self.server.flush()
