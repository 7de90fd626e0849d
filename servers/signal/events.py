"""What the signaling core tells its adapter: frozen dataclasses, named in the past tense."""

from __future__ import annotations

from dataclasses import dataclass

from .protocol import Message

__all__ = ["UserRequested", "CloseRequested", "RecordingRequested", "SessionExpired", "PresenceChanged", "Forwarded", "CallChanged", "RoomChanged", "CallStarted", "CallAnswered", "CallEnded", "QualityReported"]


@dataclass(frozen=True)
class UserRequested:
    """A user-service message (friends, blocks) for the adapter to run on storage."""

    session_id: str
    user: str
    message: Message


@dataclass(frozen=True)
class CloseRequested:
    session_id: str
    code: int
    reason: str


@dataclass(frozen=True)
class RecordingRequested:
    """Forward to the call server: start or stop recording a room."""

    room_id: str
    action: str
    by: str


@dataclass(frozen=True)
class SessionExpired:
    session_id: str
    user: str


@dataclass(frozen=True)
class PresenceChanged:
    """A user's status as seen from this node changed (for other nodes)."""

    user: str
    status: str


@dataclass(frozen=True)
class Forwarded:
    """Multi-node: a local session's message about a call owned by ``node``."""

    node: str
    session_id: str
    user: str
    message: Message


@dataclass(frozen=True)
class CallChanged:
    """Multi-node: a call owned here changed; ``snapshot`` None means it ended."""

    call_id: str
    snapshot: dict | None


@dataclass(frozen=True)
class RoomChanged:
    """Multi-node: a room owned here changed; ``snapshot`` None means it ended."""

    room_id: str
    snapshot: dict | None


@dataclass(frozen=True)
class CallStarted:
    call_id: str
    kind: str  # "p2p" or "group"
    caller: str
    callee: str | None
    media: tuple[str, ...]


@dataclass(frozen=True)
class CallAnswered:
    call_id: str
    setup_time: float  # seconds from invite to accept


@dataclass(frozen=True)
class CallEnded:
    call_id: str
    kind: str
    participants: tuple[str, ...]
    topology: str  # "p2p", "mesh" or "sfu"
    reason: str
    duration: float  # seconds since answered (0 if never answered)
    answered: bool


@dataclass(frozen=True)
class QualityReported:
    call_id: str
    user: str
    path: str
    rtt_ms: float
    loss: float
