"""Analytics events as JSON records: one line per call started, answered,
ended and per client quality report, for an analytics consumer to read.

Single node: appended to a JSON lines file.  Multi-node: added to the Redis
stream ``netcore:analytics`` (see :mod:`servers.signal.cluster`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from .core import CallAnswered, CallEnded, CallStarted, QualityReported

__all__ = ["ANALYTICS_EVENTS", "analytics_record", "JsonLinesSink"]

ANALYTICS_EVENTS = {
    CallStarted: "call.started",
    CallAnswered: "call.answered",
    CallEnded: "call.ended",
    QualityReported: "call.quality",
}


def analytics_record(event: Any, wall_time: float, node: str) -> dict | None:
    """The JSON record of a core event, or None if it is not an analytics event."""
    name = ANALYTICS_EVENTS.get(type(event))
    if name is None:
        return None
    record = {"event": name, "time": round(wall_time, 3), "node": node}
    for key, value in dataclasses.asdict(event).items():
        record[key] = list(value) if isinstance(value, tuple) else value
    return record


class JsonLinesSink:
    """Append records to a file, one JSON object per line, flushed per record."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
