"""Everything the signaling core produces, in one place the core's parts share.

The core, its rooms and its replication each write here through the same
few verbs (:meth:`Outbox.send`, :meth:`Outbox.emit`, :meth:`Outbox.route`);
the adapter drains it through the core's ``poll_*`` methods.  A message to a
local session is sequenced, kept for replay (and journaled when several
nodes share the sessions) and queued as :class:`Outgoing`; a message to a
session hosted by another node becomes a :class:`Route`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, NamedTuple

from .events import SignalEvent
from .protocol import Message, encode
from .session import Session

__all__ = ["Outgoing", "Route", "JournalEntry", "Outbox"]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One text frame for the socket of a local session."""

    session_id: str
    text: str


class Route(NamedTuple):
    """Multi-node: a message for a session hosted by ``node``."""

    node: str
    session_id: str
    kind: str
    payload: dict
    message_id: str | None


class JournalEntry(NamedTuple):
    """Multi-node: a sequenced message to persist, so another node can replay it."""

    session_id: str
    seq: int
    text: str


class Outbox:
    """The core's output queues and counters."""

    __slots__ = ("transmit", "events", "routes", "journal", "counters")

    def __init__(self, journal: bool = False) -> None:
        self.transmit: deque[Outgoing] = deque()
        self.events: deque[SignalEvent] = deque()
        self.routes: deque[Route] = deque()
        self.journal: deque[JournalEntry] | None = deque() if journal else None
        self.counters: dict[str, int] = {}

    @property
    def journaling(self) -> bool:
        """Whether another node may have to carry on what this one holds."""
        return self.journal is not None

    def send(self, session: Session, kind: str, payload: dict, message_id: str | None = None) -> None:
        if session.node is not None:
            self.routes.append(Route(session.node, session.session_id, kind, payload, message_id))
            return
        session.seq += 1
        text = encode(kind, message_id if message_id is not None else f"s{session.seq}", payload, session.seq)
        session.outbox.append((session.seq, text))
        if self.journal is not None:
            self.journal.append(JournalEntry(session.session_id, session.seq, text))
        if session.connected:
            self.transmit.append(Outgoing(session.session_id, text))

    def send_unsequenced(self, session_id: str, text: str) -> None:
        """A frame already encoded (``welcome``, a replayed message)."""
        self.transmit.append(Outgoing(session_id, text))

    def send_error(self, session: Session, message_id: str | None, code: int, reason: str) -> None:
        self.send(session, "error", {"code": code, "reason": reason}, message_id)

    def ack(self, session: Session, message: Message, payload: dict | None = None) -> None:
        if message.id is not None:
            self.send(session, "ack", payload or {}, message.id)

    def error(self, session: Session, message: Message, code: int, reason: str) -> None:
        """Answer ``message`` with an error, and count it."""
        self.count("errors", code)
        self.send_error(session, message.id, code, reason)

    def route(self, node: str, session_id: str, kind: str, payload: dict, message_id: str | None = None) -> None:
        self.routes.append(Route(node, session_id, kind, payload, message_id))

    def emit(self, event: SignalEvent) -> None:
        self.events.append(event)

    def count(self, family: str, key: Any) -> None:
        name = f"{family}:{key}"
        self.counters[name] = self.counters.get(name, 0) + 1
