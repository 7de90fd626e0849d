"""Prometheus text exposition of the TURN server's counters, on a tiny HTTP endpoint."""

from __future__ import annotations

import asyncio
from typing import Callable

from netcore.turn.aio_server import TurnServerEndpoint
from netcore.turn.allocation import relay_counts

__all__ = ["render_metrics", "serve_metrics"]


def render_metrics(endpoint: TurnServerEndpoint, worker: int, analytics=None) -> str:
    """The text format (version 0.0.4), every series labelled with the worker."""
    endpoint.update_counters()
    native = endpoint.native_stats()
    core = endpoint.core
    stats = core.stats
    live = core.allocations.values()
    # deleted allocations' relay counters are in the stats, live ones' on themselves
    to_peer, to_peer_bytes, to_client, to_client_bytes = map(
        sum, zip(relay_counts(stats), *(relay_counts(a) for a in live)))
    label = f'worker="{worker}"'
    series = [
        ("turn_allocations_active", "gauge", "Allocations alive now", len(core.allocations)),
        ("turn_allocations_total", "counter", "Allocations created", stats.allocations_total),
        ("turn_allocations_expired_total", "counter", "Allocations that expired", stats.allocations_expired),
        ("turn_permissions_active", "gauge", "Permissions alive now", sum(len(a.permissions) for a in live)),
        ("turn_channels_active", "gauge", "Channel bindings alive now", sum(len(a.channels) for a in live)),
        ("turn_requests_total", "counter", "STUN/TURN requests received", stats.requests),
        ("turn_auth_failures_total", "counter", "Requests refused with 401", stats.auth_failures),
        ("turn_stale_nonces_total", "counter", "Requests answered 438", stats.stale_nonces),
        ("turn_unauthorized_rate_limited_total", "counter", "401 answers suppressed by the rate limit",
         stats.unauthorized_rate_limited),
        ("turn_quota_refusals_total", "counter", "Allocations refused with 486", stats.quota_refusals),
        ("turn_port_exhaustion_total", "counter", "Allocations refused with 508 for lack of ports",
         stats.port_exhaustion),
        ("turn_denied_peers_total", "counter", "Peers refused by the peer policy", stats.denied_peers),
        ("turn_parse_errors_total", "counter", "Datagrams dropped as malformed", stats.parse_errors),
        ("turn_dropped_total", "counter", "Datagrams without allocation, permission or channel", stats.dropped),
        ("turn_bandwidth_dropped_total", "counter", "Datagrams dropped by the bandwidth cap", stats.bandwidth_dropped),
        ("turn_send_errors_total", "counter", "Datagrams the kernel refused to send",
         endpoint.send_errors + native.get("send_errors", 0)),
        ("turn_analytics_dropped_total", "counter", "Analytics events dropped (queue full or sink failing)",
         analytics.dropped if analytics is not None else 0),
    ]
    if native:
        series += [
            ("turn_native_handoffs_total", "counter",
             "Datagrams the compiled data path passed to Python (all but ChannelData on a route)", native["handoffs"]),
            ("turn_native_handoff_drops_total", "counter",
             "Datagrams the compiled data path dropped because Python was behind", native["handoff_drops"]),
        ]
    lines = []
    for name, kind, text, value in series:
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name}{{{label}}} {value}"]
    lines += ["# HELP turn_relayed_packets_total Packets relayed", "# TYPE turn_relayed_packets_total counter",
              f'turn_relayed_packets_total{{{label},direction="to_peer"}} {to_peer}',
              f'turn_relayed_packets_total{{{label},direction="to_client"}} {to_client}',
              "# HELP turn_relayed_bytes_total Payload bytes relayed", "# TYPE turn_relayed_bytes_total counter",
              f'turn_relayed_bytes_total{{{label},direction="to_peer"}} {to_peer_bytes}',
              f'turn_relayed_bytes_total{{{label},direction="to_client"}} {to_client_bytes}',
              "# HELP turn_errors_total Error responses by code", "# TYPE turn_errors_total counter"]
    for code, count in sorted(stats.by_error.items()):
        lines.append(f'turn_errors_total{{{label},code="{code}"}} {count}')
    return "\n".join(lines) + "\n"


async def serve_metrics(host: str, port: int, render: Callable[[], str]) -> asyncio.AbstractServer:
    """Answer ``GET /metrics`` with ``render()``; 404 for anything else."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            path = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b""
            if path.split(b"?")[0] == b"/metrics":
                body = render().encode()
                head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
            else:
                body, head = b"not found\n", b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
            writer.write(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)
