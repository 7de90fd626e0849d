"""Analytics events as JSON records: one line per call started, answered,
ended and per client quality report, for an analytics consumer to read.

Single node: appended to a JSON lines file.  Multi-node: added to the Redis
stream ``netcore:analytics`` (see :mod:`servers.signal.cluster`).
"""

from __future__ import annotations

import dataclasses
import functools
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
    for key in _field_names(type(event)):
        value = getattr(event, key)
        record[key] = list(value) if isinstance(value, tuple) else value
    return record


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


class JsonLinesSink:
    """Append records to a file, one JSON object per line.

    Writes are buffered; the adapter calls :meth:`flush` once per batch of
    core output, so a consumer tailing the file sees each batch at once.
    """

    def __init__(self, path: str) -> None:
        self._file = open(path, "a", encoding="utf-8")
        self._dirty = False

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._dirty = True

    def flush(self) -> None:
        if self._dirty:
            self._file.flush()
            self._dirty = False

    def close(self) -> None:
        self._file.close()
