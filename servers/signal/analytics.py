"""Which core events are analytics events, and their fields in the analytics schema.

The server hands each one to its :class:`~servers.analytics.producer.AnalyticsProducer`
(a JSON lines file on a single node, the Redis stream ``nc:analytics`` with
``--redis``), which adds the envelope (id, version, time, node).  The names
and fields are those of :mod:`servers.analytics.events` (docs/analytics.md).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from .core import CallAnswered, CallEnded, CallStarted, QualityReported

__all__ = ["ANALYTICS_EVENTS", "analytics_fields"]

ANALYTICS_EVENTS = {
    CallStarted: "call.started",
    CallAnswered: "call.answered",
    CallEnded: "call.ended",
    QualityReported: "call.quality",
}


def analytics_fields(event: Any) -> tuple[str, dict] | None:
    """(event name, fields) of a core event, or None if it is not an analytics event."""
    name = ANALYTICS_EVENTS.get(type(event))
    if name is None:
        return None
    return name, {key: getattr(event, key) for key in _field_names(type(event))}


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))
