"""Prometheus text exposition (format 0.0.4) of the daemon's counters."""

from __future__ import annotations

__all__ = ["Metrics"]


def _labels(**labels: object) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{str(v)}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


class Metrics:
    """Counters kept by the adapter; gauges are read from the core at scrape time."""

    def __init__(self) -> None:
        self.connections_total = 0
        self.redis_round_trips = 0
        self.closed_by_code: dict[int, int] = {}
        self.rooms_moved: dict[str, int] = {}  # reason -> count
        self.loop_stalls = 0  # our own loop held up past LAG_TOLERANCE (placement.LoopLag)
        self.loop_stalled_seconds = 0.0

    def render(self, core, connections: int, analytics_dropped: int = 0, now: float = 0.0) -> str:
        """The exposition; ``now`` (the loop's clock) tells which call servers are suspect."""
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[dict, float]]) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                lines.append(f"{name}{_labels(**labels)} {value}")

        connected, waiting = core.session_count()
        metric("signal_connections", "gauge", "Open WebSocket connections.", [({}, connections)])
        metric("signal_connections_total", "counter", "WebSocket connections accepted.",
               [({}, self.connections_total)])
        metric("signal_sessions", "gauge", "Sessions by state.",
               [({"state": "connected"}, connected), ({"state": "resumable"}, waiting)])
        metric("signal_calls", "gauge", "Calls by state.",
               [({"state": k}, v) for k, v in sorted(core.calls_by_state().items())])
        messages, errors = [], []
        for name, value in sorted(core.counters.items()):
            family, _, key = name.partition(":")
            if family == "messages":
                messages.append(({"type": key}, value))
            elif family == "errors":
                errors.append(({"code": key}, value))
        metric("signal_messages_total", "counter", "Valid client messages by type.", messages)
        metric("signal_errors_total", "counter", "Error answers by code.", errors)
        metric("signal_closes_total", "counter", "Connections closed by the server, by close code.",
               [({"code": k}, v) for k, v in sorted(self.closed_by_code.items())])
        metric("signal_redis_round_trips_total", "counter", "Round trips to Redis.",
               [({}, self.redis_round_trips)])
        servers = core.placement.servers.values()
        metric("signal_call_servers", "gauge", "Call servers linked to this node.", [({}, len(servers))])
        metric("signal_call_server_rooms", "gauge", "Rooms this node placed on each call server.",
               [({"server": s.name}, len(s.rooms)) for s in sorted(servers, key=lambda s: s.name)])
        metric("signal_call_server_participants", "gauge", "Participants each call server last reported.",
               [({"server": s.name}, s.load.participants) for s in sorted(servers, key=lambda s: s.name)])
        metric("signal_call_servers_suspect", "gauge",
               "Call servers given no new rooms: late reports, or held after a flap.",
               [({}, sum(1 for s in servers if not s.trusted(now)))])
        metric("signal_moves_pending", "gauge", "Rooms and viewers waiting to move off dead call servers.",
               [({}, core.moves_pending)])
        metric("signal_loop_stalls_total", "counter", "Times this node's own loop was held up (not blamed "
               "on call servers).", [({}, self.loop_stalls)])
        metric("signal_loop_stalled_seconds_total", "counter", "Seconds this node's own loop was held up.",
               [({}, round(self.loop_stalled_seconds, 3))])
        metric("signal_rooms_moved_total", "counter", "Rooms moved to another call server, by reason.",
               [({"reason": k}, v) for k, v in sorted(self.rooms_moved.items())])
        metric("signal_analytics_dropped_total", "counter",
               "Analytics events dropped (queue full or sink failing).", [({}, analytics_dropped)])
        return "\n".join(lines) + "\n"
