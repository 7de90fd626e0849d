"""The signaling core: sessions, presence, 1-to-1 calls and group calls, sans-IO.

Inputs (each with ``now``, float seconds on any monotonic clock):

- :meth:`SignalCore.handle_connect` -- an authenticated WebSocket opened
  (optionally resuming a session with its resume token);
- :meth:`SignalCore.handle_text` -- one text frame from a session;
- :meth:`SignalCore.handle_disconnect` -- the WebSocket of a session closed;
- :meth:`SignalCore.handle_timeout` -- :meth:`next_deadline` has passed;
- the user service's results: :meth:`set_relations`, :meth:`reply`,
  :meth:`reply_error`, :meth:`notify_user`; the call server's
  :meth:`handle_recording_ready`.

Outputs, drained by the adapter until empty:

- :meth:`poll_transmit` -- ``(session_id, text)`` to write to that session's
  socket (the core has already sequenced and buffered it for resume);
- :meth:`poll_event` -- frozen dataclasses below: user-service requests,
  connections to close, recording commands and analytics;
- :meth:`next_deadline`.

No sockets, clocks or storage here: the same core runs behind the WebSocket
adapter, in tests with a fake clock, and later inside a call server.  Group
calls are in :mod:`.rooms`, the multi-node half in :mod:`.replication`, the
events in :mod:`.events` and the call/room records in :mod:`.state`.

1-to-1 call states (the transition table)::

    (none) --invite--> RINGING --accept--> ACTIVE --hangup/disconnect--> ended
                       RINGING --reject/cancel/ring timeout/disconnect--> ended
"""

from __future__ import annotations

import heapq
import os
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Callable

from .protocol import (
    ANONYMOUS_TYPES,
    VERSION,
    CloseCode,
    ErrorCode,
    Message,
    SignalParseError,
    encode,
    parse,
)
from .events import (
    CallAnswered,
    CallChanged,
    CallEnded,
    CallStarted,
    CloseRequested,
    Forwarded,
    PresenceChanged,
    QualityReported,
    RecordingRequested,
    RoomChanged,
    SessionExpired,
    UserRequested,
)
from .replication import ReplicationMixin
from .rooms import RoomsMixin
from .session import Session, TokenBucket
from .state import ACTIVE, RINGING, STATUS_RANK, Call, Room, owned_key

__all__ = [
    "CoreConfig",
    "SignalCore",
    "UserRequested",
    "CloseRequested",
    "RecordingRequested",
    "CallStarted",
    "CallAnswered",
    "CallEnded",
    "QualityReported",
    "SessionExpired",
    "PresenceChanged",
    "Forwarded",
    "CallChanged",
    "RoomChanged",
    "USER_SERVICE_TYPES",
]

def _store_status(table: dict[str, str], user: str, status: str) -> None:
    if status == "offline":
        table.pop(user, None)
    else:
        table[user] = status


USER_SERVICE_TYPES = frozenset(
    {"friend.request", "friend.accept", "friend.remove", "friend.list", "block", "unblock", "call.history"}
)


@dataclass(frozen=True)
class CoreConfig:
    ring_timeout: float = 30.0
    resume_window: float = 30.0
    friends_only: bool = True
    group_threshold: int = 4  # mesh while participants <= threshold and not recording
    call_server: str | None = None  # address clients renegotiate with above the threshold
    max_room_size: int = 50
    rate: float = 20.0  # messages per second per connection
    burst: float = 40.0
    max_strikes: int = 20  # invalid or excess messages per strike window before close
    strike_window: float = 10.0
    replay_buffer: int = 512  # messages kept per session for resume
    replay_bytes: int = 1024 * 1024  # and at most this many bytes of them
    max_message_bytes: int = 64 * 1024  # enforced by the adapter, announced in welcome


class SignalCore(RoomsMixin, ReplicationMixin):
    """Sessions, presence, calls and rooms of one node."""

    def __init__(
        self,
        config: CoreConfig | None = None,
        random: Callable[[int], bytes] = os.urandom,
        *,
        node_id: str = "local",
        journal: bool = False,
    ) -> None:
        self.config = config or CoreConfig()
        self._random = random
        self.node_id = node_id
        # Multi-node: (session_id, seq, text) of every sequenced message, to persist.
        self._journal: deque[tuple[str, int, str]] | None = deque() if journal else None
        # Multi-node: (node, session_id, type, payload, id) for sessions hosted elsewhere.
        self._routes: deque[tuple[str, str, str, dict, str | None]] = deque()
        # Multi-node: users' status as the other nodes see it (absent: offline).
        self._remote_status: dict[str, str] = {}
        self._local_presence: dict[str, str] = {}
        self._followers: dict[str, set[str]] = {}  # user -> users here whose friend lists name them
        self._sessions: dict[str, Session] = {}
        self._by_resume: dict[str, str] = {}
        self._user_sessions: dict[str, set[str]] = {}
        self._friends: dict[str, set[str]] = {}
        self._blocked: dict[str, set[str]] = {}
        self._presence: dict[str, str] = {}
        self._calls: dict[str, Call] = {}
        self._rooms: dict[str, Room] = {}
        self._ended_rooms: OrderedDict[str, Room] = OrderedDict()
        self._timers: list[tuple[float, int, str, str]] = []
        self._timer_seq = 0
        self._transmit: deque[tuple[str, str]] = deque()
        self._events: deque[Any] = deque()
        self.counters: dict[str, int] = {}
        self._handlers: dict[str, Callable[[Session, Message, float], None]] = {
            "ping": self._on_ping,
            "call.invite": self._on_invite,
            "call.accept": self._on_accept,
            "call.reject": self._on_reject,
            "call.cancel": self._on_cancel,
            "call.hangup": self._on_hangup,
            "call.offer": self._on_relay,
            "call.answer": self._on_relay,
            "call.candidate": self._on_relay,
            "call.quality": self._on_quality,
            "room.create": self._on_room_create,
            "room.invite": self._on_room_invite,
            "room.join": self._on_room_join,
            "room.leave": self._on_room_leave,
            "room.signal": self._on_room_signal,
            "room.record": self._on_room_record,
        }

    # --- outputs ----------------------------------------------------------

    def poll_transmit(self) -> tuple[str, str] | None:
        return self._transmit.popleft() if self._transmit else None

    def poll_event(self) -> Any | None:
        return self._events.popleft() if self._events else None

    def poll_route(self) -> tuple[str, str, str, dict, str | None] | None:
        """Multi-node: a message for a session on another node."""
        return self._routes.popleft() if self._routes else None

    def poll_journal(self) -> tuple[str, int, str] | None:
        """Multi-node: a sequenced message to persist for resume on another node."""
        return self._journal.popleft() if self._journal else None

    def next_deadline(self) -> float | None:
        while self._timers and not self._timer_valid(self._timers[0]):
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    # --- read-only views --------------------------------------------------

    def session_user(self, session_id: str) -> str | None:
        session = self._sessions.get(session_id)
        return session.user if session else None

    def session_keys(self, session_id: str) -> tuple[str, str] | None:
        """(user, resume token) of a local session, for the adapter to keep it resumable."""
        session = self._sessions.get(session_id)
        if session is None or session.node is not None:
            return None
        return session.user, session.resume_token

    def status(self, user: str) -> str:
        """Presence: ``offline``, ``busy`` (in a call or room) or ``online``.

        What this node sees, combined with what other nodes report.
        """
        local = self._local_status(user)
        remote = self._remote_status.get(user, "offline")
        return local if STATUS_RANK[local] >= STATUS_RANK[remote] else remote

    def _local_status(self, user: str) -> str:
        """Online if the user has a session here; busy if in a call or room held here."""
        sessions = self._user_sessions.get(user)
        if not sessions:
            return "offline"
        online = False
        for sid in sessions:
            s = self._sessions[sid]
            online = online or s.node is None
            if s.rooms:
                return "busy"
            for call_id in s.calls:
                call = self._calls.get(call_id)
                if call is not None and call.state == ACTIVE and sid in (call.caller_session, call.callee_session):
                    return "busy"
        return "online" if online else "offline"

    def calls_by_state(self) -> dict[str, int]:
        counts = {RINGING: 0, ACTIVE: 0, "group": len(self._rooms)}
        for call in self._calls.values():
            counts[call.state] += 1
        return counts

    def session_count(self) -> tuple[int, int]:
        """(connected sessions, sessions waiting to be resumed)."""
        local = [s for s in self._sessions.values() if s.node is None]
        connected = sum(1 for s in local if s.connected)
        return connected, len(local) - connected

    # --- inputs: connections ---------------------------------------------

    def handle_connect(
        self,
        user: str,
        now: float,
        *,
        ice_servers: list[dict] | None = None,
        resume_token: str | None = None,
        last_seq: int = 0,
        friends: set[str] | frozenset[str] | None = None,
        blocked: set[str] | frozenset[str] | None = None,
    ) -> str:
        """Open a session (or resume one) for an authenticated user; returns its id.

        ``friends`` and ``blocked`` are the user's relations read from storage
        by the adapter (kept while the user has a session).
        """
        session = None
        if resume_token is not None:
            sid = self._by_resume.get(resume_token)
            candidate = self._sessions.get(sid) if sid else None
            if candidate is not None and candidate.user == user:
                session = candidate
        resumed = session is not None
        if session is None:
            sid = self._new_id()
            token = self._new_id(24)
            session = Session(sid, user, token, TokenBucket(self.config.rate, self.config.burst, now),
                              self.config.replay_buffer, now,
                              self.config.replay_bytes)
            self._sessions[sid] = session
            self._by_resume[token] = sid
            self._user_sessions.setdefault(user, set()).add(sid)
            self._friends.setdefault(user, set())
            self._blocked.setdefault(user, set())
        if friends is not None:
            self._set_friends(user, set(friends))
        if blocked is not None:
            self._blocked[user] = set(blocked)
        session.connected = True
        session.close_requested = False
        session.expires_at = None
        missed, complete = session.missed(last_seq) if resumed else ([], True)
        welcome = {
            "session_id": session.session_id,
            "user": user,
            "resume_token": session.resume_token,
            "resumed": resumed,
            "replay_complete": complete,
            "last_seq": session.seq,
            "ice_servers": ice_servers or [],
            "limits": self._limits(),
            "friends": [{"user": f, "status": self.status(f)} for f in sorted(self._friends[user])],
        }
        self._transmit.append((session.session_id, encode("welcome", None, welcome)))
        for text in missed:
            self._transmit.append((session.session_id, text))
        self._update_presence(user)
        return session.session_id

    def handle_disconnect(self, session_id: str, now: float) -> None:
        """The socket closed: keep the session for the resume window."""
        session = self._sessions.get(session_id)
        if session is None or not session.connected:
            return
        session.connected = False
        session.expires_at = now + self.config.resume_window
        self._add_timer(session.expires_at, "expire", session_id)

    def end_session(self, session_id: str, now: float) -> None:
        """Drop a session at once (logout, or its resume window passed elsewhere)."""
        session = self._sessions.get(session_id)
        if session is not None:
            self._expire(session, now)

    def handle_timeout(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            entry = heapq.heappop(self._timers)
            if not self._timer_valid(entry):
                continue
            _, _, kind, key = entry
            if kind == "expire":
                self._expire(self._sessions[key], now)
            elif kind == "ring":
                self._ring_timeout(self._calls[key], now)

    # --- inputs: messages -------------------------------------------------

    def handle_text(self, session_id: str, text: str | bytes, now: float) -> None:
        """One frame from a session: rate-limit, validate, dispatch; never raises."""
        session = self._sessions.get(session_id)
        if session is None or not session.connected or session.node is not None:
            return
        if not session.bucket.take(now):
            self.count("errors", ErrorCode.RATE_LIMITED)
            self._send_error(session, None, ErrorCode.RATE_LIMITED,
                             f"more than {self.config.rate:g} messages per second")
            self._strike(session, now)
            return
        try:
            message = parse(text)
        except SignalParseError as exc:
            self.count("errors", exc.code)
            self._send_error(session, exc.message_id, exc.code, exc.reason)
            self._strike(session, now)
            return
        self.count("messages", message.type)
        if message.type in ANONYMOUS_TYPES and message.type != "ping":
            self._send_error(session, message.id, ErrorCode.CONFLICT, "already authenticated")
            return
        if message.type in USER_SERVICE_TYPES:
            self._events.append(UserRequested(session_id, session.user, message))
            return
        owner = session.remote_owned.get(owned_key(message.payload))
        if owner is not None:
            self._events.append(Forwarded(owner, session_id, session.user, message))
            return
        self._handlers[message.type](session, message, now)

    # --- inputs: from the user service and the call server ----------------

    def set_relations(self, user: str, friends: set[str] | frozenset[str], blocked: set[str] | frozenset[str]) -> None:
        """The user's friends and the users they block (from storage)."""
        if user not in self._user_sessions:
            return
        old = set(self._friends.get(user, ()))
        self._set_friends(user, set(friends))
        self._blocked[user] = set(blocked)
        for friend in set(friends) - old:
            status = self.status(friend)
            if status != "offline":
                self.notify_user(user, "presence", {"user": friend, "status": status})

    def blocks(self, user: str, other: str) -> bool:
        return other in self._blocked.get(user, ())

    def reply(self, session_id: str, message_id: str | None, payload: dict) -> None:
        session = self._sessions.get(session_id)
        if session is not None and message_id is not None:
            self._send(session, "ack", payload, message_id)

    def reply_error(self, session_id: str, message_id: str | None, code: int, reason: str) -> None:
        session = self._sessions.get(session_id)
        if session is not None:
            self.count("errors", code)
            self._send_error(session, message_id, code, reason)

    def notify_user(self, user: str, kind: str, payload: dict) -> int:
        """Push a message to every local session of ``user``; returns how many."""
        count = 0
        for sid in self._user_sessions.get(user, ()):
            session = self._sessions[sid]
            if session.node is None:
                self._send(session, kind, payload)
                count += 1
        return count

    def handle_remote_presence(self, user: str, status: str) -> None:
        """The other nodes' combined view of ``user`` changed: tell local friends."""
        if status == "offline":
            self._remote_status.pop(user, None)
        else:
            self._remote_status[user] = status
        self._update_presence(user)

    def remote_status_users(self) -> set[str]:
        """Users whose status other nodes reported as online or busy."""
        return set(self._remote_status)

    def has_local_followers(self, user: str) -> bool:
        """Whether some user here has ``user`` as a friend (and so needs their presence)."""
        return bool(self._followers.get(user))

    def _set_friends(self, user: str, friends: set[str]) -> None:
        """Replace a user's friend list, keeping the reverse index in step."""
        old = self._friends.get(user, set())
        for friend in old - friends:
            followers = self._followers.get(friend)
            if followers is not None:
                followers.discard(user)
                if not followers:
                    del self._followers[friend]
        for friend in friends - old:
            self._followers.setdefault(friend, set()).add(user)
        self._friends[user] = friends

    # --- helpers: output --------------------------------------------------

    def _send(self, session: Session, kind: str, payload: dict, message_id: str | None = None) -> None:
        if session.node is not None:
            self._routes.append((session.node, session.session_id, kind, payload, message_id))
            return
        session.seq += 1
        text = encode(kind, message_id if message_id is not None else f"s{session.seq}", payload, session.seq)
        session.outbox.append((session.seq, text))
        if self._journal is not None:
            self._journal.append((session.session_id, session.seq, text))
        if session.connected:
            self._transmit.append((session.session_id, text))

    def _send_error(self, session: Session, message_id: str | None, code: int, reason: str) -> None:
        self._send(session, "error", {"code": code, "reason": reason}, message_id)

    def _ack(self, session: Session, message: Message, payload: dict | None = None) -> None:
        if message.id is not None:
            self._send(session, "ack", payload or {}, message.id)

    def _error(self, session: Session, message: Message, code: int, reason: str) -> None:
        self.count("errors", code)
        self._send_error(session, message.id, code, reason)

    def count(self, family: str, key: Any) -> None:
        name = f"{family}:{key}"
        self.counters[name] = self.counters.get(name, 0) + 1

    def _strike(self, session: Session, now: float) -> None:
        if now - session.strike_window_start > self.config.strike_window:
            session.strike_window_start = now
            session.strikes = 0
        session.strikes += 1
        if session.strikes > self.config.max_strikes and not session.close_requested:
            session.close_requested = True  # once: the frames still queued behind add nothing
            self._events.append(CloseRequested(session.session_id, CloseCode.POLICY_VIOLATION,
                                               "too many invalid or excess messages"))

    def _limits(self) -> dict:
        c = self.config
        return {
            "max_message_bytes": c.max_message_bytes,
            "rate_per_second": c.rate,
            "burst": c.burst,
            "ring_timeout": c.ring_timeout,
            "resume_window": c.resume_window,
            "group_threshold": c.group_threshold,
            "max_room_size": c.max_room_size,
            "version": VERSION,
        }

    def _new_id(self, size: int = 16) -> str:
        return self._random(size).hex()

    # --- helpers: timers and presence ------------------------------------

    def _add_timer(self, deadline: float, kind: str, key: str) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (deadline, self._timer_seq, kind, key))

    def _timer_valid(self, entry: tuple[float, int, str, str]) -> bool:
        deadline, _, kind, key = entry
        if kind == "expire":
            s = self._sessions.get(key)
            return s is not None and not s.connected and s.expires_at == deadline
        call = self._calls.get(key)
        return call is not None and call.state == RINGING and call.ring_deadline == deadline

    def _update_presence(self, user: str) -> None:
        """Tell other nodes when our view changed, and local friends when the status did."""
        local = self._local_status(user)
        if self._local_presence.get(user, "offline") != local:
            _store_status(self._local_presence, user, local)
            self._events.append(PresenceChanged(user, local))
        status = self.status(user)
        if self._presence.get(user, "offline") == status:
            return
        _store_status(self._presence, user, status)
        for friend in self._followers.get(user, ()):
            if user in self._friends.get(friend, ()):
                self.notify_user(friend, "presence", {"user": user, "status": status})

    def _expire(self, session: Session, now: float) -> None:
        """The resume window passed: the session ends, and its calls with it."""
        self._detach(session, now)
        for owner in sorted(set(session.remote_owned.values())):
            # Calls and rooms owned by other nodes end there too.
            self._events.append(Forwarded(owner, session.session_id, session.user, Message("_expired", None, {})))
        del self._sessions[session.session_id]
        del self._by_resume[session.resume_token]
        sids = self._user_sessions[session.user]
        sids.discard(session.session_id)
        self._events.append(SessionExpired(session.session_id, session.user))
        self._update_presence(session.user)
        if not sids:
            del self._user_sessions[session.user]
            self._set_friends(session.user, set())
            self._friends.pop(session.user, None)
            self._blocked.pop(session.user, None)

    def _detach(self, session: Session, now: float) -> None:
        """End the session's part in every call and room owned here."""
        for call_id in list(session.calls):
            call = self._calls.get(call_id)
            if call is None:
                continue
            if session.session_id in (call.caller_session, call.callee_session):
                self._end_call(call, "disconnected", now, skip=session.session_id)
            else:
                call.ringing.discard(session.session_id)
                if not call.ringing:
                    self._end_call(call, "unavailable", now, skip=session.session_id)
        for room_id in list(session.rooms):
            self._leave_room(self._rooms[room_id], session, now, "disconnected")

    # --- 1-to-1 calls -----------------------------------------------------

    def _on_ping(self, session: Session, message: Message, now: float) -> None:
        self._ack(session, message, {"pong": True})

    def _party_call(self, session: Session, message: Message) -> Call | None:
        """The call named in the message if this session belongs to it, else answer 404."""
        call = self._calls.get(message.payload["call_id"])
        if call is None or message.payload["call_id"] not in session.calls:
            self._error(session, message, ErrorCode.NOT_FOUND, "no such call")
            return None
        return call

    def _on_invite(self, session: Session, message: Message, now: float) -> None:
        callee = message.payload["to"]
        caller = session.user
        if callee == caller:
            return self._error(session, message, ErrorCode.BAD_REQUEST, "cannot call yourself")
        if any(self._calls[c].caller_session == session.session_id or self._calls[c].state == ACTIVE
               for c in session.calls if c in self._calls):
            return self._error(session, message, ErrorCode.CONFLICT, "this session is already in a call")
        if self.config.friends_only and callee not in self._friends.get(caller, ()):
            return self._error(session, message, ErrorCode.FORBIDDEN, "only friends may be called")
        sids = self._user_sessions.get(callee)
        # A block in either direction looks exactly like an offline callee.
        if not sids or self.blocks(callee, caller) or self.blocks(caller, callee):
            return self._error(session, message, ErrorCode.UNAVAILABLE, "user unavailable")
        if self.status(callee) == "busy":
            return self._error(session, message, ErrorCode.BUSY, "user busy")
        call_id = self._new_id()
        media = tuple(message.payload["media"])
        caps = message.payload.get("caps", {})
        deadline = now + self.config.ring_timeout
        call = Call(call_id, caller, session.session_id, callee, media, caps, now, deadline, set(sids))
        self._calls[call_id] = call
        session.calls.add(call_id)
        self._add_timer(deadline, "ring", call_id)
        self._ack(session, message, {"call_id": call_id})
        incoming = {"call_id": call_id, "from": caller, "media": list(media), "caps": caps,
                    "ring_timeout": self.config.ring_timeout}
        for sid in sids:
            self._sessions[sid].calls.add(call_id)
            self._send(self._sessions[sid], "call.incoming", incoming)
        self._events.append(CallStarted(call_id, "p2p", caller, callee, media))
        self._call_changed(call, now)

    def _on_accept(self, session: Session, message: Message, now: float) -> None:
        call = self._party_call(session, message)
        if call is None:
            return
        if session.session_id not in call.ringing:
            return self._error(session, message, ErrorCode.CONFLICT, "call is not ringing here")
        others = call.ringing - {session.session_id}
        call.ringing.clear()
        call.state = ACTIVE
        call.callee_session = session.session_id
        call.answered_at = now
        self._ack(session, message, {"call_id": call.call_id, "peer": call.caller, "caps": call.caps})
        for sid in others:
            other = self._sessions[sid]
            other.calls.discard(call.call_id)
            self._send(other, "call.ended", {"call_id": call.call_id, "reason": "answered_elsewhere"})
            self._drop_foreign(other)
        caller = self._sessions[call.caller_session]
        self._send(caller, "call.accepted", {"call_id": call.call_id, "peer": call.callee,
                                             "caps": message.payload.get("caps", {})})
        self._events.append(CallAnswered(call.call_id, now - call.created_at))
        self._call_changed(call, now)
        self._update_presence(call.caller)
        self._update_presence(call.callee)

    def _on_reject(self, session: Session, message: Message, now: float) -> None:
        call = self._party_call(session, message)
        if call is None:
            return
        if session.session_id not in call.ringing:
            return self._error(session, message, ErrorCode.CONFLICT, "call is not ringing here")
        self._ack(session, message, {"call_id": call.call_id})
        self._end_call(call, message.payload["reason"], now, skip=session.session_id)

    def _on_cancel(self, session: Session, message: Message, now: float) -> None:
        call = self._party_call(session, message)
        if call is None:
            return
        if call.caller_session != session.session_id or call.state != RINGING:
            return self._error(session, message, ErrorCode.CONFLICT, "only a ringing outgoing call can be cancelled")
        self._ack(session, message, {"call_id": call.call_id})
        self._end_call(call, "cancelled", now, skip=session.session_id)

    def _on_hangup(self, session: Session, message: Message, now: float) -> None:
        call = self._party_call(session, message)
        if call is None:
            return
        if session.session_id not in (call.caller_session, call.callee_session):
            return self._error(session, message, ErrorCode.CONFLICT, "call is not active here")
        self._ack(session, message, {"call_id": call.call_id})
        self._end_call(call, "hangup" if call.state == ACTIVE else "cancelled", now, skip=session.session_id)

    def _on_relay(self, session: Session, message: Message, now: float) -> None:
        """Offer, answer, candidate (and ICE restart offers) go to the other party only."""
        call = self._party_call(session, message)
        if call is None:
            return
        if call.state != ACTIVE or session.session_id not in (call.caller_session, call.callee_session):
            return self._error(session, message, ErrorCode.CONFLICT, "call is not active here")
        peer_sid = call.callee_session if session.session_id == call.caller_session else call.caller_session
        payload = dict(message.payload)
        payload["from"] = session.user
        self._send(self._sessions[peer_sid], message.type, payload)
        self._ack(session, message)

    def _on_quality(self, session: Session, message: Message, now: float) -> None:
        call = self._party_call(session, message)
        if call is None:
            return
        p = message.payload
        self._events.append(QualityReported(call.call_id, session.user, p["path"], p["rtt_ms"], p["loss"]))
        self._ack(session, message)

    def _ring_timeout(self, call: Call, now: float) -> None:
        self._end_call(call, "timeout", now, skip=None)

    def _end_call(self, call: Call, reason: str, now: float, skip: str | None) -> None:
        """End a call; tell every session still attached to it except ``skip``."""
        del self._calls[call.call_id]
        attached = {call.caller_session} | call.ringing
        if call.callee_session is not None:
            attached.add(call.callee_session)
        payload = {"call_id": call.call_id, "reason": reason}
        for sid in attached:
            s = self._sessions.get(sid)
            if s is None:
                continue
            s.calls.discard(call.call_id)
            if sid != skip:
                self._send(s, "call.ended", payload)
            self._drop_foreign(s)
        if self._journal is not None:
            self._events.append(CallChanged(call.call_id, None))
        answered = call.answered_at is not None
        duration = now - call.answered_at if answered else 0.0
        self._events.append(CallEnded(call.call_id, "p2p", (call.caller, call.callee), "p2p",
                                      reason, duration, answered))
        if answered:
            self._update_presence(call.caller)
            self._update_presence(call.callee)
