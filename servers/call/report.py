"""What ``netcore-call`` tells the user: the live status line and the summary, from ``get_stats()``.

:class:`Meter` keeps the previous W3C stats snapshot and turns two into
rates: bitrate each way (``bytesSent``/``bytesReceived`` of the RTP
streams), received frames per second (``framesDecoded``), loss (the
peer's ``fractionLost`` about what we send, and ``packetsLost`` of what we
receive), the round-trip time of the selected pair, and the path each
direction takes ("direct" or "relay").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Meter", "Status", "Totals", "summary_table"]


@dataclass(frozen=True, slots=True)
class Status:
    """One status line's values."""

    elapsed: float
    send_path: str | None
    receive_path: str | None
    rtt_ms: float | None
    out_kbps: float
    in_kbps: float
    fps: float
    loss_in: float  # share of the peer's packets lost on the way to us, this interval
    loss_out: float  # share of ours the peer reported lost (its latest report)

    def line(self) -> str:
        rtt = "-" if self.rtt_ms is None else f"{self.rtt_ms:.0f} ms"
        return (f"{self.elapsed:5.0f}s  path send {self.send_path or '-'} recv {self.receive_path or '-'}  "
                f"rtt {rtt}  out {self.out_kbps:.0f} kbit/s  in {self.in_kbps:.0f} kbit/s  "
                f"{self.fps:.1f} fps  loss in {100 * self.loss_in:.1f}% out {100 * self.loss_out:.1f}%")


@dataclass(slots=True)
class Totals:
    """Counters over the whole call, from the last snapshot."""

    bytes_sent: int = 0
    bytes_received: int = 0
    video_frames_sent: int = 0
    audio_frames_sent: int = 0
    video_frames_decoded: int = 0
    audio_samples_received: int = 0
    packets_received: int = 0
    packets_lost: int = 0
    rtt_ms: float | None = None
    paths: dict[str, str | None] = field(default_factory=dict)


def totals(stats: dict[str, dict[str, Any]]) -> Totals:
    out = Totals()
    for s in stats.values():
        kind = s.get("type")
        if kind == "outbound-rtp":
            out.bytes_sent += s.get("bytesSent", 0)
            if s.get("kind") == "video":
                out.video_frames_sent += s.get("framesEncoded", 0)
            else:
                out.audio_frames_sent += s.get("framesEncoded", 0)
        elif kind == "inbound-rtp":
            out.bytes_received += s.get("bytesReceived", 0)
            out.packets_received += s.get("packetsReceived", 0)
            out.packets_lost += s.get("packetsLost", 0)
            out.video_frames_decoded += s.get("framesDecoded", 0)
            out.audio_samples_received += s.get("totalSamplesReceived", 0)
        elif kind == "candidate-pair" and s.get("currentRoundTripTime") is not None:
            out.rtt_ms = 1000.0 * s["currentRoundTripTime"]
    return out


class Meter:
    """Rates between successive ``get_stats()`` snapshots."""

    def __init__(self, start: float) -> None:
        self.start = start
        self._previous: Totals | None = None
        self._previous_at = start
        self.last: Totals = Totals()

    def sample(self, stats: dict[str, dict[str, Any]], now: float, paths: dict[str, str | None]) -> Status:
        current = totals(stats)
        current.paths = dict(paths)
        previous = self._previous or Totals()
        span = max(1e-3, now - self._previous_at)
        received = current.packets_received - previous.packets_received
        lost = max(0, current.packets_lost - previous.packets_lost)
        loss_out = max((s.get("fractionLost", 0.0) for s in stats.values()
                        if s.get("type") == "remote-inbound-rtp"), default=0.0)
        status = Status(
            elapsed=now - self.start, send_path=paths.get("send"), receive_path=paths.get("receive"),
            rtt_ms=current.rtt_ms,
            out_kbps=8 * (current.bytes_sent - previous.bytes_sent) / span / 1000,
            in_kbps=8 * (current.bytes_received - previous.bytes_received) / span / 1000,
            fps=(current.video_frames_decoded - previous.video_frames_decoded) / span,
            loss_in=lost / (received + lost) if received + lost else 0.0, loss_out=loss_out)
        self._previous, self._previous_at, self.last = current, now, current
        return status


def summary_table(title: str, seconds: float, t: Totals) -> str:
    """The table printed when the call ends."""
    def rate(octets: int) -> str:
        return f"{8 * octets / max(seconds, 1e-3) / 1000:.0f} kbit/s"
    rows = [
        ("", "sent", "received"),
        ("video frames", str(t.video_frames_sent), str(t.video_frames_decoded)),
        ("audio frames", str(t.audio_frames_sent), str(t.audio_samples_received // 960)),
        ("average bitrate", rate(t.bytes_sent), rate(t.bytes_received)),
        ("path", t.paths.get("send") or "-", t.paths.get("receive") or "-"),
        ("packets lost", "", f"{t.packets_lost} of {t.packets_received + t.packets_lost}"),
        ("round-trip time", "-" if t.rtt_ms is None else f"{t.rtt_ms:.1f} ms", ""),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [title]
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return "\n".join(lines)
