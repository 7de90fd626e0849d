"""Prometheus text exposition (format 0.0.4) of the transcoding worker.

Decode and encode times are summaries (``_sum`` seconds, ``_count``
frames): their ratio is the mean time per frame, what tells whether a
worker keeps up (a 30 fps source leaves 33 ms a frame for all its work).
Counters include the jobs that already ended.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from netcore.transcode.core import TranscodeMetrics

if TYPE_CHECKING:
    from servers.transcode.service import TranscodeService

__all__ = ["Totals", "render_metrics"]


@dataclass
class Totals:
    """Sums of transcoders' counters (per rendition name for the rendition ones)."""

    received: int = 0
    decoded: int = 0
    decode_errors: int = 0
    source_dropped: int = 0
    decode_seconds: float = 0.0
    scale_seconds: float = 0.0
    encoded: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    keyframes: dict[str, int] = field(default_factory=dict)
    keyframes_requested: dict[str, int] = field(default_factory=dict)
    encode_seconds: dict[str, float] = field(default_factory=dict)
    latency_seconds: dict[str, float] = field(default_factory=dict)  # source frame arrival to rendition frame

    def add(self, metrics: TranscodeMetrics) -> None:
        self.received += metrics.frames_received
        self.decoded += metrics.frames_decoded
        self.decode_errors += metrics.decode_errors
        self.source_dropped += metrics.source_frames_dropped
        self.decode_seconds += metrics.decode_seconds
        self.scale_seconds += metrics.scale_seconds
        for name, r in metrics.renditions.items():
            for total, value in ((self.encoded, r.frames_encoded), (self.dropped, r.frames_dropped),
                                 (self.keyframes, r.keyframes), (self.keyframes_requested, r.keyframes_requested),
                                 (self.encode_seconds, r.encode_seconds),
                                 (self.latency_seconds, r.latency_seconds)):
                total[name] = total.get(name, 0) + value


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(service: TranscodeService) -> str:
    totals = copy.deepcopy(service.totals)  # the ended jobs', to which the running ones are added
    jobs = list(service.jobs.values())
    for job in jobs:
        totals.add(job.metrics)
    lines: list[str] = []

    def series(name: str, kind: str, text: str, values: list[tuple[str, float]]) -> None:
        lines.extend([f"# HELP {name} {text}", f"# TYPE {name} {kind}"])
        lines.extend(f"{name}{labels} {value}" for labels, value in values)

    series("transcode_jobs", "gauge", "Jobs running (one source track each)", [("", len(jobs))])
    series("transcode_capacity", "gauge", "Renditions this worker announced it makes at once",
           [("", service.settings.capacity)])
    series("transcode_renditions", "gauge", "Renditions being made", [("", sum(len(j.tracks) for j in jobs))])
    series("transcode_queue_depth", "gauge", "Source frames queued for decoding, all jobs",
           [("", sum(j.metrics.queue_depth for j in jobs))])
    series("transcode_source_frames_total", "counter", "Source frames received", [("", totals.received)])
    series("transcode_source_frames_dropped_total", "counter",
           "Source frames never decoded (queue discarded to stay real time, or waiting for a key frame)",
           [("", totals.source_dropped)])
    series("transcode_decode_errors_total", "counter", "Source frames the decoder could not decode",
           [("", totals.decode_errors)])
    series("transcode_decode_seconds", "summary", "Decoding time of source frames",
           [("_sum", round(totals.decode_seconds, 6)), ("_count", totals.decoded)])
    series("transcode_scale_seconds_total", "counter", "Scaling time", [("", round(totals.scale_seconds, 6))])
    names = sorted(totals.encoded.keys() | totals.dropped.keys())
    for metric, text, sums in (
            ("transcode_encode_seconds", "Encoding time of rendition frames, by rendition", totals.encode_seconds),
            ("transcode_latency_seconds", "From a source frame's arrival to its rendition frame, by rendition",
             totals.latency_seconds)):
        lines.extend([f"# HELP {metric} {text}", f"# TYPE {metric} summary"])
        for name in names:
            label = f'{{rendition="{_label(name)}"}}'
            lines.append(f"{metric}_sum{label} {round(sums.get(name, 0.0), 6)}")
            lines.append(f"{metric}_count{label} {totals.encoded.get(name, 0)}")
    for metric, text, values in (
            ("transcode_frames_dropped_total", "Rendition frames skipped to stay real time (or above its frame rate)",
             totals.dropped),
            ("transcode_keyframes_total", "Key frames of each rendition", totals.keyframes),
            ("transcode_keyframe_requests_total", "Key frame requests on each rendition", totals.keyframes_requested)):
        series(metric, "counter", text, [(f'{{rendition="{_label(n)}"}}', values.get(n, 0)) for n in names])
    return "\n".join(lines) + "\n"
