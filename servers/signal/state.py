"""The core's records of calls and rooms (plain slotted dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["RINGING", "ACTIVE", "Call", "Room", "owned_key"]

RINGING, ACTIVE = "ringing", "active"


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
    state: str = RINGING
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
    topology: str = "mesh"
    recording: bool = False
