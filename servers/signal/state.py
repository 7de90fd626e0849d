"""The core's records of calls and rooms (plain slotted dataclasses) and their states.

States are enums whose values are the strings the wire and the page use
(``StrEnum``: a member *is* its string in JSON, in Redis and in metrics).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["CallState", "Presence", "Topology", "RINGING", "ACTIVE", "STATUS_RANK", "Call", "Room", "owned_key"]


class CallState(enum.StrEnum):
    """A 1-to-1 call (transition table in :mod:`.core`)."""

    RINGING = "ringing"
    ACTIVE = "active"


class Presence(enum.StrEnum):
    """A user's status, least to most engaged."""

    OFFLINE = "offline"
    ONLINE = "online"
    BUSY = "busy"


class Topology(enum.StrEnum):
    """How a room's media flows: peer to peer, or through the call server (one-way switch)."""

    MESH = "mesh"
    SFU = "sfu"


RINGING, ACTIVE = CallState.RINGING, CallState.ACTIVE
# Views of one user combine to the highest.
STATUS_RANK = {Presence.OFFLINE: 0, Presence.ONLINE: 1, Presence.BUSY: 2}


def owned_key(payload: dict) -> str:
    """The call or room a message is about ("" if none)."""
    return payload.get("call_id") or payload.get("room_id") or ""


@dataclass(slots=True)
class Call:
    call_id: str
    caller: str
    caller_session: str
    callee: str
    media: tuple[str, ...]
    caps: dict
    created_at: float
    ring_deadline: float
    ringing: set[str] = field(default_factory=set)
    callee_session: str | None = None
    state: CallState = CallState.RINGING
    answered_at: float | None = None


@dataclass(slots=True)
class Room:
    room_id: str
    owner: str
    media: tuple[str, ...]
    created_at: float
    invited: set[str] = field(default_factory=set)
    participants: dict[str, str] = field(default_factory=dict)  # session_id -> user
    everyone: set[str] = field(default_factory=set)  # users who ever joined
    topology: Topology = Topology.MESH
    recording: bool = False
    call_server: str | None = None  # the call server it is placed on (servers/signal/placement.py)
    studio: bool = False  # a studio (docs/broadcast.md): on the call server from its start, its owner the operator
    # while a studio: what its operator last put on air, {"video": source, "audio": source or None} (a source as
    # in studio.cut; {"card": true} from the start), kept in the room's snapshot for a node that adopts it
    on_air: dict = field(default_factory=dict)
