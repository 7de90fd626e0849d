"""The signaling wire format: versioned JSON envelopes, validated per type.

Every message, both ways, is one WebSocket text frame holding a JSON object::

    {"v": 1, "type": "call.invite", "id": "c7", "payload": {...}}

``type`` names the message, ``id`` correlates a request with its answer (the
server echoes the client's id on ``ack`` and ``error``; messages the server
pushes carry their own id and a per-session ``seq``), ``payload`` is an object
whose fields depend on ``type``.  ``docs/signaling.md`` documents every type.

:func:`parse` turns text into a :class:`Message` and checks the payload against
the table :data:`CLIENT_SCHEMAS`; whatever the input it raises only
:class:`SignalParseError`, which carries the error ``code`` and a ``reason``
naming the field that is wrong.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable

from netcore.errors import ParseError

__all__ = [
    "VERSION",
    "Message",
    "SignalParseError",
    "ErrorCode",
    "CloseCode",
    "CLIENT_SCHEMAS",
    "ANONYMOUS_TYPES",
    "parse",
    "encode",
]

VERSION = 1
MEDIA_KINDS = frozenset({"audio", "video", "screen"})


class ErrorCode:
    """Codes of ``error`` answers (HTTP/SIP-like numbers, one reason each)."""

    BAD_REQUEST = 400  # malformed JSON, unknown type, bad field
    UNAUTHORIZED = 401  # bad credentials or token
    FORBIDDEN = 403  # not allowed (not friends, not the room owner)
    NOT_FOUND = 404  # unknown user, or a call/room the sender is not part of
    CONFLICT = 409  # the call/room is not in a state that allows this
    TOO_LARGE = 413
    RATE_LIMITED = 429
    UNAVAILABLE = 480  # callee offline, or unreachable (blocks look the same)
    BUSY = 486  # callee already in a call
    UNSUPPORTED_VERSION = 505
    INTERNAL = 500


class CloseCode:
    """WebSocket close codes the server uses (RFC 6455 section 7.4)."""

    GOING_AWAY = 1001  # server shutting down: reconnect elsewhere and resume
    POLICY_VIOLATION = 1008  # too many invalid or excess messages
    MESSAGE_TOO_BIG = 1009
    TRY_AGAIN_LATER = 1013  # too far behind in reading, or too many connections from one address
    UNAUTHORIZED = 4001  # bad bearer token at connect time
    SESSION_REPLACED = 4002  # the same resume token was used by a newer connection


class SignalParseError(ParseError):
    """A client message that cannot be accepted; ``code`` and ``reason`` go back."""

    def __init__(self, code: int, reason: str, message_id: str | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.message_id = message_id


@dataclass(frozen=True, slots=True)
class Message:
    """One validated envelope."""

    type: str
    id: str | None
    payload: dict[str, Any]


# --- field checkers: each returns None when the value is fine, else a reason


def _string(max_len: int, min_len: int = 1) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return "must be a string"
        if not min_len <= len(value) <= max_len:
            return f"length must be {min_len}..{max_len}"
        return None

    return check


def _integer(low: int, high: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be an integer"
        if not low <= value <= high:
            return f"must be in {low}..{high}"
        return None

    return check


def _number(low: float, high: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be a number"
        if not low <= value <= high:
            return f"must be in {low}..{high}"
        return None

    return check


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be a boolean"


def _choice(*allowed: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value not in allowed:
            return "must be one of " + ", ".join(allowed)
        return None

    return check


def _media(value: Any) -> str | None:
    if not isinstance(value, list) or not 1 <= len(value) <= 3:
        return "must be a list of 1..3 media kinds"
    if len(set(map(str, value))) != len(value) or not all(
        isinstance(v, str) and v in MEDIA_KINDS for v in value
    ):
        return "must hold distinct kinds among audio, video, screen"
    return None


def _object(schema: dict[str, tuple[Callable[[Any], str | None], bool]]):
    def check(value: Any) -> str | None:
        if not isinstance(value, dict):
            return "must be an object"
        return _check_fields(value, schema, prefix="")

    return check


def _source(value: Any) -> str | None:
    """A studio's source: a track ``{"publisher", "track"}``, the card ``{"card": true}``, the audio mix
    ``{"mix": true}``, or null."""
    if value is None:
        return None
    if isinstance(value, dict) and len(value) == 1 and (value.get("card") is True or value.get("mix") is True):
        return None
    return _object({"publisher": (ID, True), "track": (ID, True)})(value)


def _string_list(max_items: int, max_len: int) -> Callable[[Any], str | None]:
    item = _string(max_len)

    def check(value: Any) -> str | None:
        if not isinstance(value, list) or len(value) > max_items:
            return f"must be a list of at most {max_items} strings"
        for v in value:
            if item(v) is not None:
                return f"items must be strings of length 1..{max_len}"
        return None

    return check


def _username(value: Any) -> str | None:
    if not isinstance(value, str) or _USERNAME_RE.fullmatch(value) is None:
        return "must be 3..32 characters among a-z 0-9 _ -"
    return None


_USERNAME_RE = re.compile(r"[a-z0-9_-]{3,32}")
USERNAME = _username
PASSWORD = _string(128, 8)
ID = _string(64)
SDP = _string(48 * 1024)  # a call-server offer: 27 sections, the camera as simulcast
CANDIDATE = _object(
    {
        "candidate": (_string(1024, 0), True),
        "sdpMid": (_string(64, 0), False),
        "sdpMLineIndex": (_integer(0, 1024), False),
    }
)
CAPS = _object(
    {
        "bandwidth": (_integer(0, 100_000_000), False),
        "codecs": (_string_list(32, 64), False),
        "max_resolution": (_string(16), False),
        "max_framerate": (_integer(1, 240), False),
    }
)

# type -> {field: (checker, required)}.  The one table of what clients may send.
CLIENT_SCHEMAS: dict[str, dict[str, tuple[Callable[[Any], str | None], bool]]] = {
    "register": {"username": (USERNAME, True), "password": (PASSWORD, True)},
    "login": {"username": (USERNAME, True), "password": (PASSWORD, True)},
    "ping": {},
    "friend.request": {"username": (USERNAME, True)},
    "friend.accept": {"username": (USERNAME, True)},
    "friend.remove": {"username": (USERNAME, True)},
    "friend.list": {},
    "call.history": {"limit": (_integer(1, 200), False)},
    "recording.list": {"limit": (_integer(1, 200), False)},
    "block": {"username": (USERNAME, True)},
    "unblock": {"username": (USERNAME, True)},
    "call.invite": {"to": (USERNAME, True), "media": (_media, True), "caps": (CAPS, False)},
    "call.accept": {"call_id": (ID, True), "caps": (CAPS, False)},
    "call.reject": {"call_id": (ID, True), "reason": (_choice("declined", "busy"), True)},
    "call.cancel": {"call_id": (ID, True)},
    "call.hangup": {"call_id": (ID, True)},
    "call.offer": {"call_id": (ID, True), "sdp": (SDP, True), "ice_restart": (_boolean, False)},
    "call.answer": {"call_id": (ID, True), "sdp": (SDP, True)},
    "call.candidate": {"call_id": (ID, True), "candidate": (CANDIDATE, True)},
    "call.quality": {
        "call_id": (ID, True),
        "path": (_choice("direct", "relay"), True),
        "rtt_ms": (_number(0, 60_000), True),
        "loss": (_number(0, 1), True),
        # Optional getStats-derived fields of a periodic sample (docs/analytics.md).
        "jitter_ms": (_number(0, 60_000), False),
        "bitrate_kbps": (_number(0, 10_000_000), False),
        "freezes": (_integer(0, 1_000_000), False),
        "width": (_integer(0, 100_000), False),
        "height": (_integer(0, 100_000), False),
        "connect_ms": (_number(0, 600_000), False),
        "local_type": (_choice("host", "srflx", "prflx", "relay"), False),
        "remote_type": (_choice("host", "srflx", "prflx", "relay"), False),
    },
    "room.create": {"media": (_media, False)},
    "room.invite": {"room_id": (ID, True), "to": (USERNAME, True)},
    "room.join": {"room_id": (ID, True), "region": (_string(32), False)},  # region: a broadcast's viewer
    "room.leave": {"room_id": (ID, True)},
    "room.signal": {
        "room_id": (ID, True),
        "to": (ID, True),
        "kind": (_choice("offer", "answer", "candidate"), True),
        "sdp": (SDP, False),
        "candidate": (CANDIDATE, False),
    },
    "room.record": {"room_id": (ID, True), "action": (_choice("start", "stop"), True)},
    "room.media": {"room_id": (ID, True), "sdp": (SDP, True)},
    "room.quality": {"room_id": (ID, True), "publisher": (ID, True), "track": (ID, True),
                     "max_height": (_integer(1, 4320), False), "max_fps": (_number(1, 240), False)},
    # the operator of a studio room (its owner; docs/broadcast.md "Input manager")
    "studio.start": {"room_id": (ID, True)},
    "studio.stop": {"room_id": (ID, True)},  # the program off air; viewers get the cameras again
    "studio.cut": {"room_id": (ID, True), "source": (_source, True)},
    "studio.audio": {"room_id": (ID, True), "source": (_source, False)},  # absent or null: no audio
    "studio.card": {"room_id": (ID, True)},
}

# Types accepted on a connection that has not authenticated yet.
ANONYMOUS_TYPES = frozenset({"register", "login", "ping"})


def _check_fields(payload: dict, schema: dict, prefix: str) -> str | None:
    for name in payload:
        if name not in schema:
            return f"unknown field {prefix}{name!r}"
    for name, (check, required) in schema.items():
        if name not in payload:
            if required:
                return f"missing field {prefix}{name!r}"
            continue
        problem = check(payload[name])
        if problem is not None:
            return f"field {prefix}{name!r} {problem}"
    return None


def parse(text: str | bytes, schemas: dict = CLIENT_SCHEMAS) -> Message:
    """Decode and validate one client message; raise only SignalParseError."""
    if isinstance(text, bytes):
        raise SignalParseError(ErrorCode.BAD_REQUEST, "binary frames are not accepted")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise SignalParseError(ErrorCode.BAD_REQUEST, f"invalid JSON: {type(exc).__name__}") from None
    if not isinstance(obj, dict):
        raise SignalParseError(ErrorCode.BAD_REQUEST, "message must be a JSON object")
    message_id = obj.get("id")
    if message_id is not None and (not isinstance(message_id, str) or not 1 <= len(message_id) <= 64):
        raise SignalParseError(ErrorCode.BAD_REQUEST, "field 'id' must be a string of length 1..64")
    for name in obj:
        if name not in ("v", "type", "id", "payload"):
            raise SignalParseError(ErrorCode.BAD_REQUEST, f"unknown envelope field {name!r}", message_id)
    version = obj.get("v")
    if version != VERSION:
        raise SignalParseError(
            ErrorCode.UNSUPPORTED_VERSION, f"field 'v' must be {VERSION}", message_id
        )
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise SignalParseError(ErrorCode.BAD_REQUEST, "field 'type' must be a string", message_id)
    schema = schemas.get(kind)
    if schema is None:
        raise SignalParseError(ErrorCode.BAD_REQUEST, f"unknown type {kind[:64]!r}", message_id)
    payload = obj.get("payload", {})
    if not isinstance(payload, dict):
        raise SignalParseError(ErrorCode.BAD_REQUEST, "field 'payload' must be an object", message_id)
    problem = _check_fields(payload, schema, prefix="")
    if problem is not None:
        raise SignalParseError(ErrorCode.BAD_REQUEST, problem, message_id)
    return Message(kind, message_id, payload)


def encode(kind: str, message_id: str | None, payload: dict[str, Any], seq: int | None = None) -> str:
    """Serialize one server message (compact JSON, one line)."""
    obj: dict[str, Any] = {"v": VERSION, "type": kind, "id": message_id}
    if seq is not None:
        obj["seq"] = seq
    obj["payload"] = payload
    return json.dumps(obj, separators=(",", ":"))
