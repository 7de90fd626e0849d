"""The multi-node half of the signaling core (sans-IO, a part the core owns).

A node's core knows two kinds of sessions: local ones (a socket here) and
*foreign* ones (hosted by another node, ``Session.node`` set).  Messages the
core sends to a foreign session come out of ``poll_route`` for the adapter
to publish to that node, where ``handle_routed`` sequences them into the
session; messages a local client sends about a call or room owned by another
node come out as ``Forwarded`` events and go in there through
``handle_forwarded``.  ``CallChanged``/``RoomChanged`` snapshots let another
node ``adopt_call``/``adopt_room`` (and ``adopt_session``) when the owner dies.

:class:`Replication` owns what other nodes report (their view of users'
presence); sessions live in the :class:`~.directory.Directory` and calls
with the core, reached through :class:`ReplicationHost`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from .directory import Directory
from .events import CallChanged
from .outbox import Outbox
from .part import CorePart
from .protocol import Message
from .session import Session, TokenBucket
from .state import RINGING, Call, CallState, Presence, owned_key

if TYPE_CHECKING:
    from .core import CoreConfig

__all__ = ["ReplicationHost", "Replication"]


class ReplicationHost(Protocol):
    """What replication needs from the core that owns it."""

    def update_presence(self, user: str) -> None: ...
    def dispatch(self, session: Session, message: Message, now: float) -> None: ...
    def detach(self, session: Session, now: float) -> None: ...
    def call(self, call_id: str) -> Call | None: ...
    def add_call(self, call: Call) -> None: ...
    def add_timer(self, deadline: float, kind: str, key: str) -> None: ...


class Replication(CorePart[ReplicationHost]):
    """Foreign sessions, routes, forwards, snapshots and adoption."""

    def __init__(self, config: CoreConfig, node_id: str, directory: Directory, out: Outbox,
                 host: ReplicationHost) -> None:
        super().__init__(config, node_id, directory, out, host)
        # Users' status as the other nodes see it (absent: offline).
        self._remote_status: dict[str, Presence] = {}

    # --- what other nodes report --------------------------------------------

    def remote_status(self, user: str) -> Presence:
        return self._remote_status.get(user, Presence.OFFLINE)

    def set_remote_status(self, user: str, status: str) -> None:
        if status == Presence.OFFLINE:
            self._remote_status.pop(user, None)
        else:
            self._remote_status[user] = Presence(status)

    def remote_status_users(self) -> set[str]:
        """Users whose status other nodes reported as online or busy."""
        return set(self._remote_status)

    # --- foreign sessions -----------------------------------------------------

    def has_session(self, session_id: str) -> bool:
        session = self._directory.get(session_id)
        return session is not None and session.node is None

    def add_foreign_session(self, session_id: str, user: str, node: str) -> None:
        """A session of ``user`` hosted by ``node``: reachable through routes."""
        if session_id in self._directory:
            return
        session = Session(session_id, user, "", TokenBucket(0, 0, 0.0), 0, 0.0)
        session.node = node
        self._directory.add(session)

    def set_remote_user(self, user: str, blocked: set[str]) -> None:
        """What this node must know of a user hosted elsewhere before calling them."""
        if self._directory.has_user(user) and not self._directory.is_local_user(user):
            self._directory.set_blocked(user, blocked)

    def handle_routed(self, session_id: str, kind: str, payload: dict, message_id: str | None, owner: str) -> bool:
        """A message another node produced for one of our sessions; False if unknown."""
        session = self._directory.get(session_id)
        if session is None or session.node is not None:
            return False
        key = owned_key(payload)
        if kind == "_owner":  # internal: the call moved to another node
            if owner == self.node_id:
                session.remote_owned.pop(key, None)
            elif key in session.remote_owned:
                session.remote_owned[key] = owner
            return True
        if kind == "_left":  # internal: the session left a room owned there
            session.remote_owned.pop(key, None)
            return True
        if key and owner != self.node_id:
            if kind == "call.ended":
                session.remote_owned.pop(key, None)
            else:
                session.remote_owned[key] = owner
        self._out.send(session, kind, payload, message_id)
        return True

    def handle_forwarded(self, session_id: str, user: str, origin: str, message: Message, now: float) -> None:
        """A message from a session on ``origin`` about a call or room owned here."""
        self.add_foreign_session(session_id, user, origin)
        session = self._directory[session_id]
        if message.type == "_expired":  # its resume window passed on its node
            self._host.detach(session, now)
            self.drop_foreign(session)
            return
        session.remote_owned.pop(owned_key(message.payload), None)
        self._host.dispatch(session, message, now)

    def hand_over(self, session_id: str, node: str) -> dict[str, str] | None:
        """The session's client resumed on ``node``: from now on it is a foreign session there.

        Calls and rooms stay with their owners; returns, for the new node,
        which node owns each call and room the session is in (None if the
        session is not ours).
        """
        session = self._directory.get(session_id)
        if session is None or session.node is not None:
            return None
        owned = dict(session.remote_owned)
        owned.update({key: self.node_id for key in session.calls | session.rooms})
        self._directory.forget_resume(session)
        session.node, session.connected, session.expires_at = node, False, None
        session.remote_owned = {}
        session.outbox.clear()
        self._host.update_presence(session.user)
        self.drop_foreign(session)
        return owned

    def adopt_session(self, session_id: str, user: str, resume_token: str, seq: int,
                      outbox: list[tuple[int, str]], now: float, remote_owned: dict[str, str] | None = None) -> None:
        """Take over a session from another node; it waits for its client to resume.

        ``remote_owned`` names the owners of calls and rooms that stay elsewhere.
        """
        old = self._directory.get(session_id)
        if old is not None and old.node is None:
            return
        session = Session(session_id, user, resume_token, TokenBucket(self.config.rate, self.config.burst, now),
                          self.config.replay_buffer, now,
                              self.config.replay_bytes)
        if old is not None:
            session.calls = old.calls
            session.rooms = old.rooms
        session.seq = seq
        session.outbox.extend(outbox)
        session.remote_owned = dict(remote_owned or {})
        session.connected = False
        session.expires_at = now + self.config.resume_window
        self._directory.add(session)
        self._host.add_timer(session.expires_at, "expire", session_id)

    def adopt_call(self, snapshot: dict, now: float) -> None:
        """Take over a call from a dead node (see :meth:`_snapshot`)."""
        call_id = snapshot["call_id"]
        if self._host.call(call_id) is not None:
            return
        call = Call(call_id, snapshot["caller"], snapshot["caller_session"], snapshot["callee"],
                    tuple(snapshot["media"]), snapshot["caps"], now - snapshot["age"],
                    now + snapshot["ring_remaining"], set(snapshot["ringing"]),
                    snapshot["callee_session"], CallState(snapshot["state"]),
                    None if snapshot["answered_age"] is None else now - snapshot["answered_age"])
        self._host.add_call(call)
        for sid, (user, node) in snapshot["sessions"].items():
            if sid not in self._directory:
                self.add_foreign_session(sid, user, node)
            session = self._directory[sid]
            session.calls.add(call_id)
            session.remote_owned.pop(call_id, None)
            if session.node is not None:
                self._out.route(session.node, sid, "_owner", {"call_id": call_id})
        if call.state == RINGING:
            self._host.add_timer(call.ring_deadline, "ring", call_id)
        self.call_changed(call, now)

    def call_changed(self, call: Call, now: float) -> None:
        if self._out.journaling:  # multi-node: another node may have to carry it on
            self._out.emit(CallChanged(call.call_id, self._snapshot(call, now)))

    def _snapshot(self, call: Call, now: float) -> dict:
        sids = {call.caller_session, *call.ringing}
        if call.callee_session is not None:
            sids.add(call.callee_session)
        sessions = {}
        for sid in sids:
            s = self._directory.get(sid)
            if s is not None:
                sessions[sid] = (s.user, s.node or self.node_id)
        return {
            "call_id": call.call_id, "caller": call.caller, "caller_session": call.caller_session,
            "callee": call.callee, "callee_session": call.callee_session, "ringing": sorted(call.ringing),
            "state": call.state, "media": list(call.media), "caps": call.caps, "age": now - call.created_at,
            "ring_remaining": call.ring_deadline - now,
            "answered_age": None if call.answered_at is None else now - call.answered_at,
            "sessions": sessions, "owner": self.node_id,
        }

    def prune_foreign(self, user: str) -> None:
        """Forget ``user``'s foreign sessions that no call here needs."""
        for sid in self._directory.sessions_of(user):
            self.drop_foreign(self._directory[sid])

    def drop_foreign(self, session: Session) -> None:
        """Forget a foreign session once no call here needs it."""
        if session.node is None or session.calls or session.rooms or session.session_id not in self._directory:
            return
        self._directory.remove(session)
