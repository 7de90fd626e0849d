"""The analytics event schema: one table of event names and their fields.

Every record is one flat JSON object::

    {"id": "A1-5f3a-42", "event": "call.answered", "v": 1, "time": 1733300000.25,
     "node": "A1", "call_id": "c7", "setup_time": 2.5}

``id`` is unique per event (the producer's node, a per-process nonce and a
sequence number) and makes processing idempotent; ``v`` is the schema version
of the record; ``time`` is Unix seconds at the producer; ``node`` names the
daemon that produced it.  Identifiers (``call_id``, ``room_id``, ``user``,
``session_id``, ``allocation_id``) and fields sit next to them.
``docs/analytics.md`` documents every event; :data:`EVENTS` is the same table
as data, and :func:`validate` checks a record against it.

A consumer skips (and counts) records whose ``v`` is newer than
:data:`VERSION`, whose ``event`` it does not know, or whose fields do not
match; it never fails on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from netcore.errors import ParseError

__all__ = ["VERSION", "ENVELOPE", "IDS", "EVENTS", "EventSpec", "EventParseError", "UnknownEventError",
           "validate", "record"]

VERSION = 1
ENVELOPE = ("id", "event", "v", "time", "node")
IDS = ("call_id", "room_id", "user", "session_id", "allocation_id")


class EventParseError(ParseError):
    """A record that is not an analytics event of this schema (malformed)."""


class UnknownEventError(EventParseError):
    """A well-formed record of an event name or version this consumer does not know."""


def _text(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 256


def _number(low: float, high: float) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        return (isinstance(value, (int, float)) and not isinstance(value, bool)
                and math.isfinite(value) and low <= value <= high)
    return check


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2 ** 63


def _choice(*allowed: str) -> Callable[[Any], bool]:
    return lambda value: value in allowed


def _texts(value: Any) -> bool:
    return isinstance(value, list) and len(value) <= 1000 and all(_text(v) for v in value)


def _optional_text(value: Any) -> bool:
    return value is None or _text(value)


def _boolean(value: Any) -> bool:
    return isinstance(value, bool)


_SECONDS = _number(0, 10 * 86400)
_MS = _number(0, 600_000)
_PATH = _choice("direct", "relay")


@dataclass(frozen=True)
class EventSpec:
    """The identifiers and fields of one event: name -> (check, required)."""

    ids: tuple[str, ...]
    fields: dict[str, tuple[Callable[[Any], bool], bool]]


EVENTS: dict[str, EventSpec] = {
    # Call set-up stages (signaling): invite, answer, media (the first quality sample), end.
    "call.started": EventSpec(("call_id",), {
        "kind": (_choice("p2p", "group"), True), "caller": (_text, True),
        "callee": (_optional_text, False), "media": (_texts, False)}),
    "call.answered": EventSpec(("call_id",), {"setup_time": (_SECONDS, True)}),
    "call.ended": EventSpec(("call_id",), {
        "kind": (_choice("p2p", "group"), True), "participants": (_texts, True),
        "topology": (_choice("p2p", "mesh", "sfu"), True), "reason": (_text, True),
        "duration": (_SECONDS, True), "answered": (_boolean, True)}),
    # Periodic client sample (every few seconds, from getStats): the ICE path of the
    # reporting user's outgoing media, and what it receives.
    "call.quality": EventSpec(("call_id", "user"), {
        "path": (_PATH, True), "rtt_ms": (_MS, True), "loss": (_number(0, 1), True),
        "jitter_ms": (_MS, False), "bitrate_kbps": (_number(0, 10_000_000), False),
        "freezes": (_count, False), "width": (_count, False), "height": (_count, False),
        "connect_ms": (_MS, False), "local_type": (_choice("host", "srflx", "prflx", "relay"), False),
        "remote_type": (_choice("host", "srflx", "prflx", "relay"), False)}),
    # Call server (SFU) events.
    "sfu.joined": EventSpec(("call_id", "user"), {"session_id": (_optional_text, False)}),
    "sfu.left": EventSpec(("call_id", "user"), {"reason": (_text, False)}),
    "sfu.layer_switched": EventSpec(("call_id", "user"), {
        "source": (_text, False), "from_layer": (_text, True), "to_layer": (_text, True)}),
    "sfu.keyframe_requested": EventSpec(("call_id", "user"), {
        "source": (_text, False), "reason": (_text, False)}),
    # Recorder.
    "recording.started": EventSpec(("call_id",), {"by": (_text, False), "recording_id": (_text, False)}),
    "recording.stopped": EventSpec(("call_id",), {
        "recording_id": (_text, False), "duration": (_SECONDS, False), "bytes": (_count, False)}),
    # TURN allocations (user is the user part of a REST API username ``expiry:user``).
    "turn.allocation.granted": EventSpec(("allocation_id", "user"), {
        "client": (_text, True), "relayed": (_texts, True), "lifetime": (_count, True)}),
    "turn.allocation.renewed": EventSpec(("allocation_id", "user"), {"lifetime": (_count, True)}),
    "turn.allocation.deleted": EventSpec(("allocation_id", "user"), {
        "reason": (_text, True), "duration": (_SECONDS, True),
        "packets_to_peer": (_count, True), "bytes_to_peer": (_count, True),
        "packets_to_client": (_count, True), "bytes_to_client": (_count, True)}),
}


def validate(candidate: Any) -> dict:
    """``candidate`` if it is a record of this schema; else EventParseError
    (UnknownEventError for an unknown name or a newer version)."""
    if not isinstance(candidate, dict):
        raise EventParseError("a record is a JSON object")
    for key, check in (("id", _text), ("event", _text), ("node", _text), ("time", _number(0, 2 ** 33)),
                       ("v", _count)):
        if not check(candidate.get(key)):
            raise EventParseError(f"bad or missing {key!r}")
    spec = EVENTS.get(candidate["event"])
    if spec is None or candidate["v"] > VERSION or candidate["v"] < 1:
        raise UnknownEventError(f"unknown event {candidate['event']!r} version {candidate['v']}")
    for key in spec.ids:
        if not _text(candidate.get(key)):
            raise EventParseError(f"{candidate['event']}: bad or missing {key!r}")
    for key, (check, required) in spec.fields.items():
        if key in candidate:
            if not check(candidate[key]):
                raise EventParseError(f"{candidate['event']}: bad {key!r}")
        elif required:
            raise EventParseError(f"{candidate['event']}: missing {key!r}")
    return candidate


def record(event_id: str, name: str, time: float, node: str, **fields: Any) -> dict:
    """A record of this schema version (fields that are None are left out)."""
    out = {"id": event_id, "event": name, "v": VERSION, "time": round(time, 3), "node": node}
    for key, value in fields.items():
        if value is not None:
            out[key] = list(value) if isinstance(value, tuple) else value
    return out
