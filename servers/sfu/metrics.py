"""Prometheus text exposition (format 0.0.4) of the call server, and its tiny HTTP endpoint."""

from __future__ import annotations

import asyncio
import json
from typing import Callable

from netcore.sfu.core import SfuCore

__all__ = ["render_metrics", "serve_http", "series_text"]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def series_text(series: list[tuple[str, str, str, object]]) -> str:
    """Unlabelled series ``(name, kind, help, value)`` as exposition text, each with its HELP and TYPE."""
    return "".join(f"# HELP {name} {text}\n# TYPE {name} {kind}\n{name} {value}\n"
                   for name, kind, text, value in series)


def render_metrics(core: SfuCore) -> str:
    stats = core.stats
    participants = list(core.participants.values())
    tracks = sum(len(p.publications) for p in participants)
    layers = sum(sum(1 for la in pub.layers if la.ssrc is not None)
                 for p in participants for pub in p.publications.values() if pub.simulcast)
    drops: dict[str, int] = dict(core.router.dropped)
    for reason, count in stats.drops.items():
        drops[reason] = drops.get(reason, 0) + count
    for participant in participants:
        for slot in participant.slots:
            for reason, count in slot.downtrack.dropped.items():
                drops[reason] = drops.get(reason, 0) + count
    series = [
        ("sfu_participants", "gauge", "Participants connected or connecting", len(participants)),
        ("sfu_rooms", "gauge", "Rooms with at least one participant", len(core.rooms)),
        ("sfu_tracks", "gauge", "Published tracks", tracks),
        ("sfu_joins_total", "counter", "Participants that joined", stats.joins),
        ("sfu_leaves_total", "counter", "Participants that left", stats.leaves),
        ("sfu_datagrams_total", "counter", "Datagrams received on the media port", stats.datagrams),
        ("sfu_received_packets_total", "counter", "Media packets received from publishers", stats.packets_received),
        ("sfu_forwarded_packets_total", "counter", "Media packets forwarded to subscribers", stats.forwarded_packets),
        ("sfu_forwarded_bytes_total", "counter", "Bytes of media forwarded (RTP, before SRTP)", stats.forwarded_bytes),
        ("sfu_simulcast_layers", "gauge", "Simulcast layers of the published tracks that have sent (learnt by RID)",
         layers),
        ("sfu_temporal_layers", "gauge", "Layers of the published tracks whose frames carry two or more VP8 TIDs",
         sum(1 for p in participants for pub in p.publications.values() for la in pub.layers
             if len(la.temporal) > 1)),
        ("sfu_layer_switches_total", "counter", "Simulcast layer switches", stats.layer_switches),
        ("sfu_temporal_switches_total", "counter", "VP8 temporal layer (TID) changes within a slot's layer",
         stats.temporal_switches),
        ("sfu_last_n_paused_slots", "gauge", "Video slots not forwarded: their publisher is outside the last-N",
         sum(1 for p in participants for s in p.slots if s.downtrack.paused)),
        ("sfu_last_n_admissions_total", "counter", "Video slots resumed as their publisher came into the last-N",
         stats.last_n_admissions),
        ("sfu_keyframe_requests_total", "counter", "Key frame requests sent upstream", stats.keyframe_requests),
        ("sfu_keyframe_requests_coalesced_total", "counter", "Subscribers' key frame requests served by another",
         stats.keyframe_requests_coalesced),
        ("sfu_routes", "gauge", "Source addresses bound to participants", len(core.router)),
        ("sfu_transcodes_started_total", "counter", "Transcoding jobs placed on a worker", stats.transcodes_started),
        ("sfu_transcodes_stopped_total", "counter", "Transcoding jobs stopped (unneeded, source gone, worker gone)",
         stats.transcodes_stopped),
        ("sfu_transcode_workers", "gauge", "Transcoding workers linked", len(core.worker_load())),
        ("sfu_rendition_layers", "gauge", "Rendition layers of the published tracks (made by workers)",
         sum(1 for p in participants for pub in p.publications.values() for la in pub.layers if la.owner)),
    ]
    fast = core.fastpath
    if fast is not None:  # the compiled forwarding path (netcore.sfu.fastpath)
        sent, refused = fast.send_stats()
        series += [
            ("sfu_fast_forwarded_packets_total", "counter", "Packets forwarded by the compiled path", fast.forwarded),
            ("sfu_fast_installs_total", "counter", "Slots handed to the compiled path", fast.installs),
            ("sfu_fast_ejects_total", "counter", "Slots the compiled path gave back to the core", fast.ejects),
            ("sfu_fast_installed_slots", "gauge", "Slots the compiled path forwards now",
             sum(1 for p in participants for s in p.slots if s.downtrack.fast is not None)),
            ("sfu_fast_send_errors_total", "counter", "Datagrams of the compiled path the socket refused", refused),
            ("sfu_fast_received_packets_total", "counter",
             "Publisher packets the compiled receive path took (unprotected and forwarded before the core's "
             "bookkeeping)", fast.taken),
            ("sfu_fast_armed_total", "counter", "Sources the core armed for the compiled receive path", fast.arms),
            ("sfu_fast_feedback_total", "counter",
             "RTCP compounds (reports, transport-wide feedback) the compiled receive path took for the core's "
             "replay", fast.feedback_taken),
            ("sfu_oversize_datagrams_total", "counter",
             "Datagrams longer than 2,048 bytes the compiled reader dropped (none of the media port's)",
             fast.reader.truncated),
        ]
    lines = []
    for name, kind, text, value in series:
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {value}"]
    lines += ["# HELP sfu_dropped_total Datagrams or packets dropped, by reason", "# TYPE sfu_dropped_total counter"]
    lines += [f'sfu_dropped_total{{reason="{_label(r)}"}} {c}' for r, c in sorted(drops.items())]
    lines += ["# HELP sfu_subscriber_layer_switches_total Simulcast layer switches decided for each subscriber",
              "# TYPE sfu_subscriber_layer_switches_total counter"]
    lines += [f'sfu_subscriber_layer_switches_total{{participant="{_label(p.id)}",room="{_label(p.room_id)}"}} '
              f'{p.layer_switches}' for p in participants]
    # NACKs (RFC 4585 section 6.2.1) each participant sent the server, the packets re-sent from the server's
    # own history for them, and the NACKs the server sent it as a publisher (for what the server lacked)
    per_participant = [
        ("sfu_subscriber_nacked_packets_total", "Packets each subscriber asked again for (its NACKs)",
         lambda p: p.transport.stats.nacks_received),
        ("sfu_subscriber_retransmissions_total", "Packets re-sent to each subscriber from the server's history",
         lambda p: p.transport.sender.retransmissions),
        ("sfu_publisher_nacked_packets_total", "Packets the server asked each publisher again for (lost upstream)",
         lambda p: p.transport.stats.nacks_sent),
    ]
    for name, text, value in per_participant:
        lines += [f"# HELP {name} {text}", f"# TYPE {name} counter"]
        lines += [f'{name}{{participant="{_label(p.id)}",room="{_label(p.room_id)}"}} {value(p)}'
                  for p in participants]
    lines += ["# HELP sfu_subscriber_estimate_bps Send-side estimate towards each participant",
              "# TYPE sfu_subscriber_estimate_bps gauge"]
    lines += [f'sfu_subscriber_estimate_bps{{participant="{_label(p.id)}",room="{_label(p.room_id)}"}} '
              f'{int(p.transport.target_bitrate)}' for p in participants]
    return "\n".join(lines) + "\n"


async def serve_http(host: str, port: int, metrics: Callable[[], str], health: Callable[[], dict]) -> asyncio.Server:
    """GET /metrics and /health; anything else 404, other methods 405."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            method, _, rest = request.decode("latin-1").partition(" ")
            path = rest.split(" ")[0].split("?")[0]
            if method not in ("GET", "HEAD"):
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"GET only\n"
            elif path == "/metrics":
                status, ctype, body = "200 OK", "text/plain; version=0.0.4", metrics().encode()
            elif path == "/health":
                status, ctype, body = "200 OK", "application/json", json.dumps(health()).encode()
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"not found\n"
            head = (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                    f"Server: netcore-sfu\r\nConnection: close\r\n\r\n").encode()
            writer.write(head + (body if method != "HEAD" else b""))
            await writer.drain()
        except (OSError, asyncio.TimeoutError, UnicodeError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)
