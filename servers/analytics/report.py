"""The report: numbers from the aggregates, a text table and a self-contained HTML page.

:func:`build_report` reads the calls, hours and allocations of a time span
and computes every number shown; :func:`render_table` and
:func:`render_html` only format them.  Charts are inline SVG written here
(no script, no stylesheet or font from elsewhere), so the file can be
mailed or archived as is.

Percentiles are nearest-rank: the smallest value with at least p% of the
values at or below it.  Quality percentiles are taken towards the bad end:
p90 of RTT, jitter and loss is exceeded by 10% of calls, p90 of MOS is
*undercut* by 10% of calls (the 10th percentile of the MOS values).
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field

from .store import Store

__all__ = ["Report", "build_report", "render_table", "render_html", "report_json", "percentile", "SETUP_BINS",
           "path_type"]

SETUP_BINS = (1, 2, 3, 5, 8, 13, 21)  # seconds; a last bin holds the rest
PERCENTILES = (50, 90, 99)
QUALITY = (("rtt_ms", "RTT (ms)"), ("jitter_ms", "Jitter (ms)"), ("loss", "Loss"), ("mos", "MOS"))
HIGHER_IS_BETTER = frozenset({"mos"})


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def path_type(call: dict) -> str:
    """``switched`` (a party's path changed during the call), else ``relay`` (some direction
    through TURN), ``direct`` (none), or ``unknown`` (no quality samples)."""
    if call["relay_share"] is None:
        return "unknown"
    if call["path_switches"]:
        return "switched"
    return "relay" if call["relay_share"] > 0 else "direct"


@dataclass
class Report:
    since: float
    until: float
    totals: dict = field(default_factory=dict)
    outcomes: dict = field(default_factory=dict)
    per_hour: list = field(default_factory=list)  # (hour, answered, not answered)
    setup_histogram: list = field(default_factory=list)  # (label, count)
    setup: dict = field(default_factory=dict)  # percentile -> seconds
    paths: dict = field(default_factory=dict)
    quality: dict = field(default_factory=dict)  # column -> {percentile: value}
    worst: list = field(default_factory=list)  # (call row, its events)


def build_report(store: Store, since: float, until: float, worst: int = 10) -> Report:
    calls = store.rows("SELECT * FROM calls WHERE started_at >= ? AND started_at < ? ORDER BY started_at",
                       (since, until))
    allocations = store.rows("SELECT * FROM allocations WHERE granted_at >= ? AND granted_at < ?", (since, until))
    hours = store.rows("SELECT * FROM hours WHERE hour >= ? AND hour < ? ORDER BY hour",
                       (int(since // 3600) * 3600, until))
    report = Report(since, until)
    answered = [c for c in calls if c["answered"]]
    counts = store.counts()
    report.totals = {
        "calls": len(calls), "answered": len(answered), "not answered": len(calls) - len(answered),
        "answer rate": round(len(answered) / len(calls), 3) if calls else None,
        "minutes": round(math.fsum(c["duration"] or 0 for c in answered) / 60, 1),
        "relayed calls": sum(1 for c in calls if c["relay_share"]),
        "allocations": len(allocations),
        "relayed MB": round(sum(a["bytes_to_peer"] + a["bytes_to_client"] for a in allocations) / 1e6, 3),
        "malformed events": counts["malformed"], "unknown events": counts["unknown"],
    }
    for c in calls:
        report.outcomes[c["outcome"]] = report.outcomes.get(c["outcome"], 0) + 1
    report.per_hour = [(h["hour"], h["answered"], h["calls"] - h["answered"]) for h in hours]
    setups = [c["setup_time"] for c in calls if c["setup_time"] is not None]
    report.setup = {p: percentile(setups, p) for p in PERCENTILES}
    edges = (0,) + SETUP_BINS
    report.setup_histogram = [(f"{lo}-{hi}s", sum(1 for s in setups if lo <= s < hi)) for lo, hi in zip(edges, edges[1:])]
    report.setup_histogram.append((f"{SETUP_BINS[-1]}s+", sum(1 for s in setups if s >= SETUP_BINS[-1])))
    for c in calls:
        kind = path_type(c)
        report.paths[kind] = report.paths.get(kind, 0) + 1
    for column, _ in QUALITY:
        values = [c[column] for c in calls if c[column] is not None]
        report.quality[column] = {p: percentile(values, 100 - p if column in HIGHER_IS_BETTER else p)
                                  for p in PERCENTILES}
    scored = sorted((c for c in calls if c["mos"] is not None), key=lambda c: (c["mos"], c["call_id"]))[:worst]
    for c in scored:
        events = [json.loads(r["body"]) for r in
                  store.rows("SELECT body FROM events WHERE call_id = ? ORDER BY time, id", (c["call_id"],))]
        report.worst.append((c, events))
    return report


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))
    return str(value)


def render_table(report: Report) -> str:
    """The summary as aligned text lines (``name  value``)."""
    lines = [f"netcore analytics, {_utc(report.since)} to {_utc(report.until)}", ""]
    rows = list(report.totals.items())
    rows += [(f"outcome {k}", v) for k, v in sorted(report.outcomes.items())]
    rows += [(f"path {k}", v) for k, v in sorted(report.paths.items())]
    rows += [(f"setup p{p} (s)", v) for p, v in report.setup.items()]
    for column, label in QUALITY:
        rows += [(f"{label} p{p}", v) for p, v in report.quality[column].items()]
    width = max(len(k) for k, _ in rows)
    lines += [f"{k.ljust(width)}  {_fmt(v)}" for k, v in rows]
    if report.worst:
        lines += ["", "worst calls (lowest MOS):"]
        lines += [f"  {c['call_id']}  mos={_fmt(c['mos'])} rtt={_fmt(c['rtt_ms'])}ms loss={_fmt(c['loss'])} "
                  f"path={path_type(c)} {c['participants']}" for c, _ in report.worst]
    return "\n".join(lines) + "\n"


def _utc(t: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))


# --- SVG -------------------------------------------------------------------

def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def bar_chart(title: str, bars: list[tuple[str, list[int]]], series: list[str], width: int = 720,
              height: int = 220) -> str:
    """Stacked vertical bars: ``bars`` is (label, one value per series)."""
    colors = ("#2b7bb9", "#d9534f", "#5cb85c", "#f0ad4e")
    top = max((sum(v) for _, v in bars), default=0) or 1
    left, bottom, plot_h = 40, 40, height - 70
    step = (width - left - 10) / max(1, len(bars))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{_esc(title)}"><text x="{left}" y="16" font-size="13">{_esc(title)}</text>',
             f'<text x="4" y="{height - bottom - plot_h + 4}" font-size="10">{top}</text>']
    for i, (label, values) in enumerate(bars):
        x, base = left + i * step, height - bottom
        for k, value in enumerate(values):
            h = plot_h * value / top
            base -= h
            parts.append(f'<rect x="{x + 1:.1f}" y="{base:.1f}" width="{max(1.0, step - 2):.1f}" height="{h:.1f}" '
                         f'fill="{colors[k % 4]}"><title>{_esc(label)} {_esc(series[k])}: {value}</title></rect>')
        if len(bars) <= 12 or i % max(1, len(bars) // 12) == 0:
            parts.append(f'<text x="{x + step / 2:.1f}" y="{height - bottom + 14}" font-size="10" '
                         f'text-anchor="middle">{_esc(label)}</text>')
    for k, name in enumerate(series):
        parts.append(f'<rect x="{left + k * 120}" y="{height - 14}" width="10" height="10" fill="{colors[k % 4]}"/>'
                     f'<text x="{left + k * 120 + 14}" y="{height - 5}" font-size="11">{_esc(name)}</text>')
    return "".join(parts) + "</svg>"


def timeline(call: dict, events: list[dict], width: int = 720) -> str:
    """One call's events on a time axis, a tick and a label per event."""
    if not events:
        return ""
    t0, t1 = events[0]["time"], events[-1]["time"]
    span = max(t1 - t0, 1e-3)
    rows = {}
    height = 30 + 14 * min(len(events), 40)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="timeline of {_esc(call["call_id"])}">',
             f'<line x1="10" y1="20" x2="{width - 10}" y2="20" stroke="#888"/>']
    for n, e in enumerate(events[:40]):
        x = 10 + (width - 330) * (e["time"] - t0) / span  # room for the longest label
        y = 34 + 14 * n
        rows[n] = e
        detail = e.get("user", "") or e.get("reason", "")
        if e["event"] == "call.quality":
            detail += f" {e['path']} rtt={_fmt(e['rtt_ms'])} loss={_fmt(e['loss'])}"
        parts.append(f'<line x1="{x:.1f}" y1="16" x2="{x:.1f}" y2="24" stroke="#333"/>'
                     f'<text x="{x:.1f}" y="{y}" font-size="10">+{e["time"] - t0:.1f}s {_esc(e["event"])} '
                     f'{_esc(detail)}</text>')
    return "".join(parts) + "</svg>"


def _table(rows: list[tuple[str, object]]) -> str:
    return "<table>" + "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(_fmt(v))}</td></tr>" for k, v in rows) + "</table>"


def report_json(report: Report) -> dict:
    """The numbers of the report (no timelines), for the live view and scripts."""
    return {"since": report.since, "until": report.until, "totals": report.totals, "outcomes": report.outcomes,
            "per_hour": report.per_hour, "setup_histogram": report.setup_histogram,
            "setup": {f"p{p}": v for p, v in report.setup.items()}, "paths": report.paths,
            "quality": {c: {f"p{p}": v for p, v in q.items()} for c, q in report.quality.items()},
            "worst": [c["call_id"] for c, _ in report.worst]}


def render_html(report: Report, refresh: int | None = None) -> str:
    """The page; with ``refresh`` it reloads itself every that many seconds (the live view)."""
    hours = [(f"{int(h // 3600 % 24):02d}h", [a, n]) for h, a, n in report.per_hour]
    quality_rows = "".join(
        f"<tr><th>{_esc(label)}</th>" + "".join(f"<td>{_esc(_fmt(report.quality[c][p]))}</td>" for p in PERCENTILES)
        + "</tr>" for c, label in QUALITY)
    sections = [
        f"<h1>netcore analytics</h1><p>{_esc(_utc(report.since))} to {_esc(_utc(report.until))}</p>",
        "<h2>Summary</h2>" + _table(list(report.totals.items()) + [(f"outcome {k}", v) for k, v in
                                                                   sorted(report.outcomes.items())]),
        "<h2>Calls per hour</h2>" + bar_chart("Calls per hour", hours, ["answered", "not answered"]),
        "<h2>Set-up time</h2>" + bar_chart("Set-up time (invite to media)", [(k, [v]) for k, v in
                                                                            report.setup_histogram], ["calls"])
        + _table([(f"p{p} (s)", v) for p, v in report.setup.items()]),
        "<h2>Path types</h2>" + bar_chart("Calls by ICE path", [(k, [v]) for k, v in sorted(report.paths.items())],
                                          ["calls"]),
        "<h2>Quality percentiles</h2><table><tr><th></th>" + "".join(f"<th>p{p}</th>" for p in PERCENTILES)
        + "</tr>" + quality_rows + "</table>",
        "<h2>Worst calls</h2>",
    ]
    for call, events in report.worst:
        sections.append(f"<h3>{_esc(call['call_id'])}: MOS {_esc(_fmt(call['mos']))}, "
                        f"{_esc(path_type(call))}, {_esc(call['participants'])}</h3>" + timeline(call, events))
    style = ("body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse;margin:.5em 0}"
             "th,td{border:1px solid #ccc;padding:2px 8px;text-align:left}")
    reload = f'<meta http-equiv="refresh" content="{int(refresh)}">' if refresh else ""
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>netcore analytics</title>" + reload +
            f"<style>{style}</style></head><body>" + "\n".join(sections) + "</body></html>\n")
