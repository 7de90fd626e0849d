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

- :meth:`poll_transmit` -- an :class:`~.outbox.Outgoing` (session id, text)
  to write to that session's socket (the core has already sequenced and
  buffered it for resume);
- :meth:`poll_event` -- :class:`~.events.SignalEvent` records: user-service
  requests, connections to close, recording commands and analytics;
- :meth:`next_deadline`.

No sockets, clocks or storage here: the same core runs behind the WebSocket
adapter, in tests with a fake clock, and later inside a call server.

The core is composed of parts, each the one owner of its state: the
:class:`~.directory.Directory` (sessions and relations), the
:class:`~.outbox.Outbox` (everything produced), :class:`~.rooms.Rooms`
(group calls) and :class:`~.replication.Replication` (the multi-node half);
the core itself holds the 1-to-1 calls, presence and timers, and is the
host the rooms and replication call back through their narrow protocols.

1-to-1 call states (the transition table)::

    (none) --invite--> RINGING --accept--> ACTIVE --hangup/disconnect--> ended
                       RINGING --reject/cancel/ring timeout/disconnect--> ended
"""

from __future__ import annotations

import enum
import heapq
import os
from collections import deque
from dataclasses import dataclass
from typing import Callable, TypeVar

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
    CallServerDown,
    CallServerSuspect,
    CallStarted,
    CloseRequested,
    Forwarded,
    MediaLeft,
    MediaOffered,
    MediaQualityRequested,
    PresenceChanged,
    QualityReported,
    RecordingRequested,
    RoomChanged,
    RoomMoved,
    SessionExpired,
    UserRequested,
)
from netcore.sfu.topology import ServerRecord

from .directory import Directory
from .events import SignalEvent
from .outbox import JournalEntry, Outbox, Outgoing, Route
from .placement import Load, Placement
from .replication import Replication
from .rooms import Rooms
from .session import Session, TokenBucket
from .state import ACTIVE, RINGING, STATUS_RANK, Call, CallState, Presence, owned_key

__all__ = [
    "CoreConfig", "SignalCore", "Outgoing", "SignalEvent", "CallState", "Presence", "ACTIVE", "RINGING",
    "UserRequested", "CloseRequested", "RecordingRequested", "CallStarted", "CallAnswered", "CallEnded",
    "QualityReported", "SessionExpired", "PresenceChanged", "Forwarded", "CallChanged", "RoomChanged",
    "MediaOffered", "MediaLeft", "MediaQualityRequested", "RoomMoved", "CallServerDown",
    "CallServerSuspect",
    "USER_SERVICE_TYPES",
]

T = TypeVar("T")

def _store_status(table: dict[str, Presence], user: str, status: Presence) -> None:
    if status is Presence.OFFLINE:
        table.pop(user, None)
    else:
        table[user] = status


def _pop(queue: deque[T] | None) -> T | None:
    """The oldest output of ``queue``, or None when it is empty (or not kept)."""
    return queue.popleft() if queue else None


class TimerKind(enum.Enum):
    EXPIRE = "expire"  # a disconnected session's resume window
    RING = "ring"  # a ringing call's ring timeout


# The optional fields of a call.quality sample, in QualityReported's field order.
QUALITY_OPTIONAL = ("jitter_ms", "bitrate_kbps", "freezes", "width", "height", "connect_ms",
                    "local_type", "remote_type")

USER_SERVICE_TYPES = frozenset(
    {"friend.request", "friend.accept", "friend.remove", "friend.list", "block", "unblock", "call.history",
     "recording.list"}
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


class SignalCore:
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
        self._directory = Directory()
        # journal: multi-node, every sequenced message is also kept for other nodes.
        self._out = Outbox(journal)
        self._rooms = Rooms(self.config, node_id, self._directory, self._out, self)
        self._replication = Replication(self.config, node_id, self._directory, self._out, self)
        self._local_presence: dict[str, Presence] = {}
        self._presence: dict[str, Presence] = {}
        self._calls: dict[str, Call] = {}
        self._timers: list[tuple[float, int, TimerKind, str]] = []
        self._timer_seq = 0
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
            **self._rooms.handlers(),
        }

    @property
    def counters(self) -> dict[str, int]:
        return self._out.counters

    # --- outputs ----------------------------------------------------------

    def poll_transmit(self) -> Outgoing | None:
        return _pop(self._out.transmit)

    def poll_event(self) -> SignalEvent | None:
        return _pop(self._out.events)

    def poll_route(self) -> Route | None:
        """Multi-node: a message for a session on another node."""
        return _pop(self._out.routes)

    def poll_journal(self) -> JournalEntry | None:
        """Multi-node: a sequenced message to persist for resume on another node."""
        return _pop(self._out.journal)

    def next_deadline(self) -> float | None:
        while self._timers and not self._timer_valid(self._timers[0]):
            heapq.heappop(self._timers)
        deadlines = [d for d in (self._timers[0][0] if self._timers else None, self._rooms.next_deadline())
                     if d is not None]
        return min(deadlines) if deadlines else None

    # --- read-only views --------------------------------------------------

    def session(self, session_id: str) -> Session | None:
        """A session (local or foreign) by id, to read."""
        return self._directory.get(session_id)

    def sessions(self):
        """Every session this core knows, local and foreign (a view, to read)."""
        return self._directory.all()

    def session_user(self, session_id: str) -> str | None:
        session = self._directory.get(session_id)
        return session.user if session else None

    def session_keys(self, session_id: str) -> tuple[str, str] | None:
        """(user, resume token) of a local session, for the adapter to keep it resumable."""
        session = self._directory.get(session_id)
        if session is None or session.node is not None:
            return None
        return session.user, session.resume_token

    def status(self, user: str) -> Presence:
        """Presence: ``offline``, ``busy`` (in a call or room) or ``online``.

        What this node sees, combined with what other nodes report.
        """
        local = self._local_status(user)
        remote = self._replication.remote_status(user)
        return local if STATUS_RANK[local] >= STATUS_RANK[remote] else remote

    def _local_status(self, user: str) -> Presence:
        """Online if the user has a session here; busy if in a call or room held here."""
        sessions = self._directory.sessions_of(user)
        if not sessions:
            return Presence.OFFLINE
        online = False
        for sid in sessions:
            s = self._directory[sid]
            online = online or s.node is None
            if s.rooms:
                return Presence.BUSY
            for call_id in s.calls:
                call = self._calls.get(call_id)
                if call is not None and call.state == ACTIVE and sid in (call.caller_session, call.callee_session):
                    return Presence.BUSY
        return Presence.ONLINE if online else Presence.OFFLINE

    def calls_by_state(self) -> dict[str, int]:
        counts: dict[str, int] = {RINGING: 0, ACTIVE: 0, "group": len(self._rooms)}
        for call in self._calls.values():
            counts[call.state] += 1
        return counts

    def session_count(self) -> tuple[int, int]:
        """(connected sessions, sessions waiting to be resumed)."""
        local = [s for s in self._directory.all() if s.node is None]
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
            candidate = self._directory.by_resume(resume_token)
            if candidate is not None and candidate.user == user:
                session = candidate
        resumed = session is not None
        if session is None:
            sid = self.new_id()
            token = self.new_id(24)
            session = Session(sid, user, token, TokenBucket(self.config.rate, self.config.burst, now),
                              self.config.replay_buffer, now,
                              self.config.replay_bytes)
            self._directory.add(session)
        if friends is not None:
            self._directory.set_friends(user, set(friends))
        if blocked is not None:
            self._directory.set_blocked(user, set(blocked))
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
            "friends": [{"user": f, "status": self.status(f)} for f in sorted(self._directory.friends_of(user))],
        }
        self._out.send_unsequenced(session.session_id, encode("welcome", None, welcome))
        for text in missed:
            self._out.send_unsequenced(session.session_id, text)
        self.update_presence(user)
        return session.session_id

    def handle_disconnect(self, session_id: str, now: float) -> None:
        """The socket closed: keep the session for the resume window."""
        session = self._directory.get(session_id)
        if session is None or not session.connected:
            return
        session.connected = False
        session.expires_at = now + self.config.resume_window
        self.add_timer(session.expires_at, TimerKind.EXPIRE, session_id)

    def end_session(self, session_id: str, now: float) -> None:
        """Drop a session at once (logout, or its resume window passed elsewhere)."""
        session = self._directory.get(session_id)
        if session is not None:
            self._expire(session, now)

    def handle_timeout(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            entry = heapq.heappop(self._timers)
            if not self._timer_valid(entry):
                continue
            _, _, kind, key = entry
            if kind is TimerKind.EXPIRE:
                self._expire(self._directory[key], now)
            else:
                self._ring_timeout(self._calls[key], now)
        self._rooms.check_call_servers(now)

    # --- inputs: messages -------------------------------------------------

    def handle_text(self, session_id: str, text: str | bytes, now: float) -> None:
        """One frame from a session: rate-limit, validate, dispatch; never raises."""
        session = self._directory.get(session_id)
        if session is None or not session.connected or session.node is not None:
            return
        if not session.bucket.take(now):
            self.count("errors", ErrorCode.RATE_LIMITED)
            self._out.send_error(session, None, ErrorCode.RATE_LIMITED,
                             f"more than {self.config.rate:g} messages per second")
            self._strike(session, now)
            return
        try:
            message = parse(text)
        except SignalParseError as exc:
            self.count("errors", exc.code)
            self._out.send_error(session, exc.message_id, exc.code, exc.reason)
            self._strike(session, now)
            return
        self.count("messages", message.type)
        if message.type in ANONYMOUS_TYPES and message.type != "ping":
            self._out.send_error(session, message.id, ErrorCode.CONFLICT, "already authenticated")
            return
        if message.type in USER_SERVICE_TYPES:
            self._out.emit(UserRequested(session_id, session.user, message))
            return
        owner = session.remote_owned.get(owned_key(message.payload))
        if owner is not None:
            self._out.emit(Forwarded(owner, session_id, session.user, message))
            return
        self.dispatch(session, message, now)

    def dispatch(self, session: Session, message: Message, now: float) -> None:
        """Run the handler of a parsed message (also for sessions forwarded by other nodes)."""
        self._handlers[message.type](session, message, now)

    # --- inputs: from the user service and the call server ----------------

    def set_relations(self, user: str, friends: set[str] | frozenset[str], blocked: set[str] | frozenset[str]) -> None:
        """The user's friends and the users they block (from storage)."""
        if not self._directory.has_user(user):
            return
        old = set(self._directory.friends_of(user))
        self._directory.set_friends(user, set(friends))
        self._directory.set_blocked(user, set(blocked))
        for friend in set(friends) - old:
            status = self.status(friend)
            if status is not Presence.OFFLINE:
                self.notify_user(user, "presence", {"user": friend, "status": status})

    def blocks(self, user: str, other: str) -> bool:
        return self._directory.blocks(user, other)

    def reply(self, session_id: str, message_id: str | None, payload: dict) -> None:
        session = self._directory.get(session_id)
        if session is not None and message_id is not None:
            self._out.send(session, "ack", payload, message_id)

    def reply_error(self, session_id: str, message_id: str | None, code: int, reason: str) -> None:
        session = self._directory.get(session_id)
        if session is not None:
            self.count("errors", code)
            self._out.send_error(session, message_id, code, reason)

    def notify_session(self, session_id: str, kind: str, payload: dict) -> bool:
        """Push a message to one local session (the call server's answer, its slots); False if unknown."""
        session = self._directory.get(session_id)
        if session is None or session.node is not None:
            return False
        self._out.send(session, kind, payload)
        return True

    def room_sessions(self, room_id: str) -> list[str]:
        """The participants' session ids of a room owned here (empty if unknown)."""
        room = self._rooms.get(room_id)
        return list(room.participants) if room is not None else []

    def connected_sessions(self, user: str) -> int:
        """How many local sessions of ``user`` have a socket now (not waiting in their resume window)."""
        return sum(1 for sid in self._directory.sessions_of(user)
                   if self._directory[sid].node is None and self._directory[sid].connected)

    def notify_user(self, user: str, kind: str, payload: dict) -> int:
        """Push a message to every local session of ``user``; returns how many."""
        count = 0
        for sid in self._directory.sessions_of(user):
            session = self._directory[sid]
            if session.node is None:
                self._out.send(session, kind, payload)
                count += 1
        return count

    def handle_remote_presence(self, user: str, status: str) -> None:
        """The other nodes' combined view of ``user`` changed: tell local friends."""
        self._replication.set_remote_status(user, status)
        self.update_presence(user)

    def remote_status_users(self) -> set[str]:
        """Users whose status other nodes reported as online or busy."""
        return self._replication.remote_status_users()

    def has_local_followers(self, user: str) -> bool:
        """Whether some user here has ``user`` as a friend (and so needs their presence)."""
        return self._directory.has_followers(user)

    # --- multi-node (see :mod:`.replication`) and rooms (:mod:`.rooms`) ------

    def is_local_user(self, user: str) -> bool:
        return self._directory.is_local_user(user)

    def has_session(self, session_id: str) -> bool:
        return self._replication.has_session(session_id)

    def has_resume_token(self, resume_token: str) -> bool:
        return self._directory.has_resume_token(resume_token)

    def add_foreign_session(self, session_id: str, user: str, node: str) -> None:
        self._replication.add_foreign_session(session_id, user, node)

    def set_remote_user(self, user: str, blocked: set[str]) -> None:
        self._replication.set_remote_user(user, blocked)

    def handle_routed(self, session_id: str, kind: str, payload: dict, message_id: str | None, owner: str) -> bool:
        return self._replication.handle_routed(session_id, kind, payload, message_id, owner)

    def handle_forwarded(self, session_id: str, user: str, origin: str, message: Message, now: float) -> None:
        self._replication.handle_forwarded(session_id, user, origin, message, now)

    def hand_over(self, session_id: str, node: str) -> dict[str, str] | None:
        return self._replication.hand_over(session_id, node)

    def adopt_session(self, session_id: str, user: str, resume_token: str, seq: int,
                      outbox: list[tuple[int, str]], now: float, remote_owned: dict[str, str] | None = None) -> None:
        self._replication.adopt_session(session_id, user, resume_token, seq, outbox, now, remote_owned)

    def adopt_call(self, snapshot: dict, now: float) -> None:
        self._replication.adopt_call(snapshot, now)

    def prune_foreign(self, user: str) -> None:
        self._replication.prune_foreign(user)

    def adopt_room(self, snapshot: dict, now: float) -> None:
        self._rooms.adopt(snapshot, now)

    def handle_recording_ready(self, room_id: str, location: str, now: float, users: tuple[str, ...] = (),
                               extra: dict | None = None) -> dict[str, int]:
        """``recording.ready`` to everyone who took part (see :meth:`Rooms.handle_recording_ready`)."""
        return self._rooms.handle_recording_ready(room_id, location, now, users, extra)

    # --- inputs: the call servers' links (see :mod:`.placement`) -------------

    def handle_call_server_linked(self, name: str, now: float) -> None:
        """A call server's link opened under ``name``."""
        self._rooms.call_server_linked(name, now)

    def handle_call_server_load(self, name: str, payload: dict, now: float) -> bool:
        """Its ``service.load`` report; ValueError if malformed, False if ``name`` is not linked."""
        return self._rooms.call_server_load(name, Load.from_payload(payload), now)

    def handle_call_server_unlinked(self, name: str, now: float) -> None:
        """Its link closed: it is dead at once, its rooms and viewers move (``room.moved``, at the move
        budget's pace)."""
        self._rooms.call_server_down(name, "unlinked", now)

    def handle_call_server_pong(self, name: str, probe: int, now: float) -> None:
        """Its link answered the ping of :class:`CallServerSuspect` ``probe``: the process is there, so it
        is not dead before the silent grace ends (it stays suspect until it reports)."""
        self._rooms.placement.answered(name, probe)

    def handle_loop_stall(self, seconds: float, now: float) -> None:
        """This node's own loop was held up ``seconds`` (measured by :class:`~.placement.LoopLag`): that
        time is not counted against any call server's reports or pings."""
        self._rooms.placement.stalled(seconds)

    def handle_edges(self, records: list[ServerRecord]) -> None:
        """The broadcast tree's live records (``ServerRecord``s read from its registry): the edges that
        viewers who say their region are placed on (servers/signal/edges.py)."""
        self._rooms.edges.update(records)

    def room_call_server(self, room_id: str) -> str | None:
        """The call server a room owned here is placed on."""
        room = self._rooms.get(room_id)
        return room.call_server if room is not None else None

    @property
    def moves_pending(self) -> int:
        """Rooms and viewers waiting to move off dead call servers (the move budget's queue)."""
        return self._rooms.moves_pending

    @property
    def placement(self) -> Placement:
        """The call servers and their rooms (to read: metrics, health)."""
        return self._rooms.placement

    # --- what the parts ask of the core (RoomHost, ReplicationHost) --------

    def new_id(self, size: int = 16) -> str:
        return self._random(size).hex()

    def drop_foreign(self, session: Session) -> None:
        self._replication.drop_foreign(session)

    def call(self, call_id: str) -> Call | None:
        return self._calls.get(call_id)

    def add_call(self, call: Call) -> None:
        self._calls[call.call_id] = call

    # --- helpers: output -------------------------------------------------

    def count(self, family: str, key: object) -> None:
        self._out.count(family, key)

    def _strike(self, session: Session, now: float) -> None:
        if now - session.strike_window_start > self.config.strike_window:
            session.strike_window_start = now
            session.strikes = 0
        session.strikes += 1
        if session.strikes > self.config.max_strikes and not session.close_requested:
            session.close_requested = True  # once: the frames still queued behind add nothing
            self._out.emit(CloseRequested(session.session_id, CloseCode.POLICY_VIOLATION,
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

    # --- helpers: timers and presence ------------------------------------

    def add_timer(self, deadline: float, kind: TimerKind | str, key: str) -> None:
        kind = TimerKind(kind)
        self._timer_seq += 1
        heapq.heappush(self._timers, (deadline, self._timer_seq, kind, key))

    def _timer_valid(self, entry: tuple[float, int, TimerKind, str]) -> bool:
        deadline, _, kind, key = entry
        if kind is TimerKind.EXPIRE:
            s = self._directory.get(key)
            return s is not None and not s.connected and s.expires_at == deadline
        call = self._calls.get(key)
        return call is not None and call.state == RINGING and call.ring_deadline == deadline

    def update_presence(self, user: str) -> None:
        """Tell other nodes when our view changed, and local friends when the status did."""
        local = self._local_status(user)
        if self._local_presence.get(user, Presence.OFFLINE) != local:
            _store_status(self._local_presence, user, local)
            self._out.emit(PresenceChanged(user, local))
        status = self.status(user)
        if self._presence.get(user, Presence.OFFLINE) == status:
            return
        _store_status(self._presence, user, status)
        for friend in self._directory.followers_of(user):
            if self._directory.is_friend(friend, user):
                self.notify_user(friend, "presence", {"user": user, "status": status})

    def _expire(self, session: Session, now: float) -> None:
        """The resume window passed: the session ends, and its calls with it."""
        self.detach(session, now)
        for owner in sorted(set(session.remote_owned.values())):
            # Calls and rooms owned by other nodes end there too.
            self._out.emit(Forwarded(owner, session.session_id, session.user, Message("_expired", None, {})))
        self._directory.remove(session)
        self._out.emit(SessionExpired(session.session_id, session.user))
        self.update_presence(session.user)

    def detach(self, session: Session, now: float) -> None:
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
        self._rooms.leave_all(session, now, "disconnected")

    # --- 1-to-1 calls -----------------------------------------------------

    def _on_ping(self, session: Session, message: Message, now: float) -> None:
        self._out.ack(session, message, {"pong": True})

    def _party_call(self, session: Session, message: Message) -> Call | None:
        """The call named in the message if this session belongs to it, else answer 404."""
        call = self._calls.get(message.payload["call_id"])
        if call is None or message.payload["call_id"] not in session.calls:
            self._out.error(session, message, ErrorCode.NOT_FOUND, "no such call")
            return None
        return call

    def _ringing_call(self, session: Session, message: Message) -> Call | None:
        """The call named in the message if it rings on this session (to accept or reject), else answer
        404 or CONFLICT."""
        call = self._party_call(session, message)
        if call is not None and session.session_id not in call.ringing:
            self._out.error(session, message, ErrorCode.CONFLICT, "call is not ringing here")
            return None
        return call

    def _on_invite(self, session: Session, message: Message, now: float) -> None:
        callee = message.payload["to"]
        caller = session.user
        if callee == caller:
            return self._out.error(session, message, ErrorCode.BAD_REQUEST, "cannot call yourself")
        if any(self._calls[c].caller_session == session.session_id or self._calls[c].state == ACTIVE
               for c in session.calls if c in self._calls):
            return self._out.error(session, message, ErrorCode.CONFLICT, "this session is already in a call")
        if self.config.friends_only and not self._directory.is_friend(caller, callee):
            return self._out.error(session, message, ErrorCode.FORBIDDEN, "only friends may be called")
        sids = self._directory.sessions_of(callee)
        # A block in either direction looks exactly like an offline callee.
        if not sids or self.blocks(callee, caller) or self.blocks(caller, callee):
            return self._out.error(session, message, ErrorCode.UNAVAILABLE, "user unavailable")
        if self.status(callee) is Presence.BUSY:
            return self._out.error(session, message, ErrorCode.BUSY, "user busy")
        call_id = self.new_id()
        media = tuple(message.payload["media"])
        caps = message.payload.get("caps", {})
        deadline = now + self.config.ring_timeout
        call = Call(call_id, caller, session.session_id, callee, media, caps, now, deadline, set(sids))
        self._calls[call_id] = call
        session.calls.add(call_id)
        self.add_timer(deadline, TimerKind.RING, call_id)
        self._out.ack(session, message, {"call_id": call_id})
        incoming = {"call_id": call_id, "from": caller, "media": list(media), "caps": caps,
                    "ring_timeout": self.config.ring_timeout}
        for sid in sids:
            self._directory[sid].calls.add(call_id)
            self._out.send(self._directory[sid], "call.incoming", incoming)
        self._out.emit(CallStarted(call_id, "p2p", caller, callee, media))
        self._replication.call_changed(call, now)

    def _on_accept(self, session: Session, message: Message, now: float) -> None:
        call = self._ringing_call(session, message)
        if call is None:
            return
        others = call.ringing - {session.session_id}
        call.ringing.clear()
        call.state = ACTIVE
        call.callee_session = session.session_id
        call.answered_at = now
        self._out.ack(session, message, {"call_id": call.call_id, "peer": call.caller, "caps": call.caps})
        for sid in others:
            other = self._directory[sid]
            other.calls.discard(call.call_id)
            self._out.send(other, "call.ended", {"call_id": call.call_id, "reason": "answered_elsewhere"})
            self._replication.drop_foreign(other)
        caller = self._directory[call.caller_session]
        self._out.send(caller, "call.accepted", {"call_id": call.call_id, "peer": call.callee,
                                             "caps": message.payload.get("caps", {})})
        self._out.emit(CallAnswered(call.call_id, now - call.created_at))
        self._replication.call_changed(call, now)
        self.update_presence(call.caller)
        self.update_presence(call.callee)

    def _on_reject(self, session: Session, message: Message, now: float) -> None:
        call = self._ringing_call(session, message)
        if call is None:
            return
        self._out.ack(session, message, {"call_id": call.call_id})
        self._end_call(call, message.payload["reason"], now, skip=session.session_id)

    def _on_cancel(self, session: Session, message: Message, now: float) -> None:
        call = self._party_call(session, message)
        if call is None:
            return
        if call.caller_session != session.session_id or call.state != RINGING:
            return self._out.error(session, message, ErrorCode.CONFLICT, "only a ringing outgoing call can be cancelled")
        self._out.ack(session, message, {"call_id": call.call_id})
        self._end_call(call, "cancelled", now, skip=session.session_id)

    def _on_hangup(self, session: Session, message: Message, now: float) -> None:
        call = self._party_call(session, message)
        if call is None:
            return
        if session.session_id not in (call.caller_session, call.callee_session):
            return self._out.error(session, message, ErrorCode.CONFLICT, "call is not active here")
        self._out.ack(session, message, {"call_id": call.call_id})
        self._end_call(call, "hangup" if call.state == ACTIVE else "cancelled", now, skip=session.session_id)

    def _on_relay(self, session: Session, message: Message, now: float) -> None:
        """Offer, answer, candidate (and ICE restart offers) go to the other party only."""
        call = self._party_call(session, message)
        if call is None:
            return
        if call.state != ACTIVE or session.session_id not in (call.caller_session, call.callee_session):
            return self._out.error(session, message, ErrorCode.CONFLICT, "call is not active here")
        peer_sid = call.callee_session if session.session_id == call.caller_session else call.caller_session
        payload = dict(message.payload)
        payload["from"] = session.user
        self._out.send(self._directory[peer_sid], message.type, payload)
        self._out.ack(session, message)

    def _on_quality(self, session: Session, message: Message, now: float) -> None:
        call = self._party_call(session, message)
        if call is None:
            return
        p = message.payload
        self._out.emit(QualityReported(call.call_id, session.user, p["path"], p["rtt_ms"], p["loss"],
                                       *(p.get(key) for key in QUALITY_OPTIONAL)))
        self._out.ack(session, message)

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
            s = self._directory.get(sid)
            if s is None:
                continue
            s.calls.discard(call.call_id)
            if sid != skip:
                self._out.send(s, "call.ended", payload)
            self._replication.drop_foreign(s)
        if self._out.journaling:
            self._out.emit(CallChanged(call.call_id, None))
        answered = call.answered_at is not None
        duration = now - call.answered_at if answered else 0.0
        self._out.emit(CallEnded(call.call_id, "p2p", (call.caller, call.callee), "p2p",
                                      reason, duration, answered))
        if answered:
            self.update_presence(call.caller)
            self.update_presence(call.callee)
