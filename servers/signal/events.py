"""What the signaling core tells its adapter: frozen dataclasses, named in the past tense."""

from __future__ import annotations

from dataclasses import dataclass, field

from netcore.net import Event

from .protocol import Message

__all__ = ["SignalEvent", "UserRequested", "CloseRequested", "RecordingRequested", "MediaEvent", "MediaOffered", "MediaLeft", "MediaQualityRequested", "StudioCommanded", "RoomMoved", "CallServerDown", "CallServerSuspect", "SessionExpired", "PresenceChanged", "Forwarded", "CallChanged", "RoomChanged", "CallEvent", "CallStarted", "CallAnswered", "CallEnded", "QualityReported"]


@dataclass(frozen=True, slots=True)
class SignalEvent(Event):
    """Base of every event of the signaling core."""


@dataclass(frozen=True, slots=True)
class UserRequested(SignalEvent):
    """A user-service message (friends, blocks) for the adapter to run on storage."""

    session_id: str
    user: str
    message: Message


@dataclass(frozen=True, slots=True)
class CloseRequested(SignalEvent):
    session_id: str
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class MediaEvent(SignalEvent):
    """For call server ``call_server`` (None: the only link, if any): something about session
    ``session_id``'s media in room ``room_id`` on it."""

    room_id: str
    session_id: str
    call_server: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True, slots=True)
class MediaOffered(MediaEvent):
    """Relay to the call server: a participant's offer for a room on it (the adapter answers ``message_id``)."""

    user: str
    sdp: str
    message_id: str | None


@dataclass(frozen=True, slots=True)
class MediaQualityRequested(MediaEvent):
    """Relay to the call server: a participant wants at most ``max_height`` lines of one track (None: any),
    and at most ``max_fps`` frames a second of it (None: every frame)."""

    publisher: str
    track: str
    max_height: int | None
    max_fps: float | None = None


@dataclass(frozen=True, slots=True)
class MediaLeft(MediaEvent):
    """Tell the call server: a participant of a room on it left (or its session expired)."""


@dataclass(frozen=True, slots=True)
class RoomMoved(SignalEvent):
    """A room was put on another call server (its server died, or it had none); participants were
    told with ``room.moved`` and offer again."""

    room_id: str
    previous: str | None
    call_server: str | None  # None: no live call server (the room waits for one)
    reason: str  # "failover" (its server died) or "placed" (a server linked while it had none)


@dataclass(frozen=True, slots=True)
class CallServerDown(SignalEvent):
    """A call server was taken as dead: its link closed, or it missed its load reports through the grace
    or its ping (then the adapter closes the link); its rooms and viewers are being moved."""

    name: str
    reason: str  # "unlinked", "silent" (no report through the grace) or "unanswered" (its ping neither)
    rooms: int


@dataclass(frozen=True, slots=True)
class CallServerSuspect(SignalEvent):
    """A linked call server missed its load reports: it gets no new rooms, and its link is to be pinged;
    the adapter gives the pong back (``handle_call_server_pong`` with ``probe``). No pong in time, or no
    report through the grace: it is dead (docs/signaling.md, "Call-server liveness")."""

    name: str
    probe: int


@dataclass(frozen=True, slots=True)
class RecordingRequested(SignalEvent):
    """Forward to the call server: start or stop recording a room."""

    room_id: str
    action: str
    by: str
    call_server: str | None = None


@dataclass(frozen=True, slots=True)
class StudioCommanded(SignalEvent):
    """Forward to the call server: the studio operator's ``studio.*`` command (``payload``: its fields)."""

    room_id: str
    kind: str
    payload: dict
    by: str
    call_server: str | None = None


@dataclass(frozen=True, slots=True)
class SessionExpired(SignalEvent):
    session_id: str
    user: str


@dataclass(frozen=True, slots=True)
class PresenceChanged(SignalEvent):
    """A user's status as seen from this node changed (for other nodes)."""

    user: str
    status: str


@dataclass(frozen=True, slots=True)
class Forwarded(SignalEvent):
    """Multi-node: a local session's message about a call owned by ``node``."""

    node: str
    session_id: str
    user: str
    message: Message


@dataclass(frozen=True, slots=True)
class CallChanged(SignalEvent):
    """Multi-node: a call owned here changed; ``snapshot`` None means it ended."""

    call_id: str
    snapshot: dict | None


@dataclass(frozen=True, slots=True)
class RoomChanged(SignalEvent):
    """Multi-node: a room owned here changed; ``snapshot`` None means it ended."""

    room_id: str
    snapshot: dict | None


@dataclass(frozen=True, slots=True)
class CallEvent(SignalEvent):
    """Something happened in call (or group room) ``call_id``: the analytics events of a call."""

    call_id: str


@dataclass(frozen=True, slots=True)
class CallStarted(CallEvent):
    kind: str  # "p2p" or "group"
    caller: str
    callee: str | None
    media: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CallAnswered(CallEvent):
    setup_time: float  # seconds from invite to accept


@dataclass(frozen=True, slots=True)
class CallEnded(CallEvent):
    kind: str
    participants: tuple[str, ...]
    topology: str  # "p2p", "mesh" or "sfu"
    reason: str
    duration: float  # seconds since answered (0 if never answered)
    answered: bool


@dataclass(frozen=True, slots=True)
class QualityReported(CallEvent):
    """A client's periodic getStats sample of a call (optional fields None when not sent)."""

    user: str
    path: str
    rtt_ms: float
    loss: float
    jitter_ms: float | None = None
    bitrate_kbps: float | None = None
    freezes: int | None = None
    width: int | None = None
    height: int | None = None
    connect_ms: float | None = None
    local_type: str | None = None
    remote_type: str | None = None
