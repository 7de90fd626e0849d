"""Pure folds from events to aggregates: a call's events to its row, rows to rollups.

Everything here is a function of a *set* of events: the worker sorts them by
(time, id) and sums floats with :func:`math.fsum` (exactly rounded, so the
order of addition does not matter), then rounds.  Folding the same set twice,
in any arrival order, gives the same row; that is what makes the worker
idempotent.

The MOS is the E-model (ITU-T G.107) reduced as in Cole and Rosenbluth,
"Voice over IP performance monitoring" (2001), for a codec without loss
concealment penalty beyond a linear one::

    d  = rtt_ms / 2 + 2 * jitter_ms + 10           (one-way delay plus jitter buffer)
    Id = d / 40            if d < 160   else (d - 120) / 10
    Ie = 2.5 * loss_percent
    R  = 93.2 - Id - Ie                             (clamped to 0..100)
    MOS = 1 + 0.035 R + 7e-6 R (R - 60) (100 - R)   (clamped to 1..4.5)
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable

__all__ = ["mos", "fold_call", "fold_allocation", "rollup_hour", "rollup_user", "rollup_node",
           "CALL_COLUMNS", "ALLOCATION_COLUMNS", "HOUR_COLUMNS", "USER_COLUMNS", "NODE_COLUMNS", "hour_of"]

CALL_COLUMNS = ("call_id", "kind", "node", "caller", "callee", "participants", "started_at", "hour", "ended_at",
                "outcome", "answered", "answer_time", "connect_time", "setup_time", "duration",
                "path_up", "path_down", "relay_share", "samples", "path_switches", "loss", "rtt_ms",
                "jitter_ms", "freezes", "mos", "sfu_joins", "layer_switches", "keyframe_requests", "recordings")
ALLOCATION_COLUMNS = ("allocation_id", "node", "user_name", "granted_at", "hour", "deleted_at", "reason",
                      "duration", "renewals", "packets_to_peer", "bytes_to_peer", "packets_to_client",
                      "bytes_to_client")
HOUR_COLUMNS = ("hour", "calls", "answered", "not_answered", "relay_calls", "setup_time", "minutes", "mos",
                "allocations", "relayed_bytes")
USER_COLUMNS = ("user_name", "calls", "answered", "minutes", "relay_calls", "mos", "allocations",
                "relayed_bytes")
NODE_COLUMNS = ("node", "calls", "answered", "allocations", "relayed_bytes")


def hour_of(t: float) -> int:
    return int(t // 3600) * 3600


def mos(rtt_ms: float, jitter_ms: float, loss: float) -> float:
    """Estimated MOS (1..4.5) of the simplified E-model above; loss is 0..1."""
    d = rtt_ms / 2 + 2 * jitter_ms + 10
    delay_impairment = d / 40 if d < 160 else (d - 120) / 10
    r = min(100.0, max(0.0, 93.2 - delay_impairment - 2.5 * (loss * 100)))
    return round(min(4.5, max(1.0, 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r))), 3)


def _mean(values: list[float], digits: int) -> float | None:
    return round(math.fsum(values) / len(values), digits) if values else None


def _order(events: Iterable[dict]) -> list[dict]:
    return sorted(events, key=lambda e: (e["time"], e["id"]))


def fold_call(call_id: str, events: Iterable[dict]) -> dict:
    """The row of one call from all its events (any order, duplicates removed by id)."""
    events = _order({e["id"]: e for e in events}.values())
    first: dict[str, dict] = {}
    for e in events:
        first.setdefault(e["event"], e)
    started, ended = first.get("call.started"), first.get("call.ended")
    by_user: dict[str, list[dict]] = defaultdict(list)
    for e in events:
        if e["event"] == "call.quality":
            by_user[e["user"]].append(e)
    caller = started["caller"] if started else None
    callee = started.get("callee") if started else None
    if ended is not None:
        participants = sorted(ended["participants"])
    else:
        participants = sorted({p for p in (caller, callee) if p} | set(by_user))
    start_time = started["time"] if started else events[0]["time"]
    counts: dict[str, int] = defaultdict(int)
    for e in events:
        counts[e["event"]] += 1
    return {
        "call_id": call_id,
        "kind": (started or ended or {}).get("kind"),
        "node": (started or events[0])["node"],
        "caller": caller,
        "callee": callee,
        "participants": ",".join(participants),
        "started_at": start_time,
        "hour": hour_of(start_time),
        **_stages(first.get("call.answered"), ended, by_user),
        **_quality(by_user, caller, callee),
        "sfu_joins": counts["sfu.joined"],
        "layer_switches": counts["sfu.layer_switched"],
        "keyframe_requests": counts["sfu.keyframe_requested"],
        "recordings": counts["recording.started"],
    }


def _stages(answered: dict | None, ended: dict | None, by_user: dict[str, list[dict]]) -> dict:
    """Outcome and set-up: ring (invite to answer) + connect (answer to media, the slowest party)."""
    if ended is not None:
        was_answered = ended["answered"]
        outcome = "answered" if was_answered else ended["reason"]
    else:
        was_answered = answered is not None
        outcome = "answered" if was_answered else "open"
    connects = [samples[0]["connect_ms"] / 1000 for samples in by_user.values() if "connect_ms" in samples[0]]
    answer_time = round(answered["setup_time"], 3) if answered else None
    connect_time = round(max(connects), 3) if connects else None
    both = answer_time is not None and connect_time is not None
    return {
        "ended_at": ended["time"] if ended else None,
        "outcome": outcome,
        "answered": int(bool(was_answered)),
        "answer_time": answer_time,
        "connect_time": connect_time,
        "setup_time": round(answer_time + connect_time, 3) if both else None,
        "duration": round(ended["duration"], 3) if ended else None,
    }


def _quality(by_user: dict[str, list[dict]], caller: str | None, callee: str | None) -> dict:
    """Paths, switches and mean quality of the samples; each user's samples in time order."""
    samples = [s for user_samples in by_user.values() for s in user_samples]
    loss = _mean([s["loss"] for s in samples], 4)
    rtt = _mean([s["rtt_ms"] for s in samples], 3)
    jitter = _mean([s["jitter_ms"] for s in samples if "jitter_ms" in s], 3)
    return {
        "path_up": by_user[caller][-1]["path"] if caller in by_user else None,
        "path_down": by_user[callee][-1]["path"] if callee in by_user else None,
        "relay_share": _mean([1.0 if s["path"] == "relay" else 0.0 for s in samples], 3),
        "samples": len(samples),
        "path_switches": sum(sum(1 for a, b in zip(us, us[1:]) if a["path"] != b["path"]) for us in by_user.values()),
        "loss": loss,
        "rtt_ms": rtt,
        "jitter_ms": jitter,
        "freezes": sum(max(s.get("freezes", 0) for s in us) for us in by_user.values()),  # cumulative counts
        "mos": mos(rtt, jitter or 0.0, loss) if samples else None,
    }


def fold_allocation(allocation_id: str, events: Iterable[dict]) -> dict:
    """The row of one TURN allocation from its granted/renewed/deleted events."""
    events = _order({e["id"]: e for e in events}.values())
    granted = next((e for e in events if e["event"] == "turn.allocation.granted"), None)
    deleted = next((e for e in events if e["event"] == "turn.allocation.deleted"), None)
    start = (granted or events[0])["time"]
    return {
        "allocation_id": allocation_id,
        "node": (granted or events[0])["node"],
        "user_name": events[0]["user"],
        "granted_at": start,
        "hour": hour_of(start),
        "deleted_at": deleted["time"] if deleted else None,
        "reason": deleted["reason"] if deleted else None,
        "duration": round(deleted["duration"], 3) if deleted else None,
        "renewals": sum(1 for e in events if e["event"] == "turn.allocation.renewed"),
        **{key: deleted[key] if deleted else 0 for key in
           ("packets_to_peer", "bytes_to_peer", "packets_to_client", "bytes_to_client")},
    }


def _relayed(allocations: list[dict]) -> int:
    return sum(a["bytes_to_peer"] + a["bytes_to_client"] for a in allocations)


def _call_totals(calls: list[dict]) -> dict:
    answered = [c for c in calls if c["answered"]]
    scored = [c["mos"] for c in calls if c["mos"] is not None]
    return {
        "calls": len(calls),
        "answered": len(answered),
        "relay_calls": sum(1 for c in calls if c["relay_share"]),
        "minutes": round(math.fsum(c["duration"] or 0.0 for c in answered) / 60, 3),
        "mos": _mean(scored, 3),
    }


def rollup_hour(hour: int, calls: list[dict], allocations: list[dict]) -> dict:
    totals = _call_totals(calls)
    setups = [c["setup_time"] for c in calls if c["setup_time"] is not None]
    ended = [c for c in calls if c["outcome"] not in ("answered", "open")]
    return {"hour": hour, "calls": totals["calls"], "answered": totals["answered"], "not_answered": len(ended),
            "relay_calls": totals["relay_calls"], "setup_time": _mean(setups, 3), "minutes": totals["minutes"],
            "mos": totals["mos"], "allocations": len(allocations), "relayed_bytes": _relayed(allocations)}


def rollup_user(user: str, calls: list[dict], allocations: list[dict]) -> dict:
    totals = _call_totals(calls)
    return {"user_name": user, "calls": totals["calls"], "answered": totals["answered"],
            "minutes": totals["minutes"], "relay_calls": totals["relay_calls"], "mos": totals["mos"],
            "allocations": len(allocations), "relayed_bytes": _relayed(allocations)}


def rollup_node(node: str, calls: list[dict], allocations: list[dict]) -> dict:
    totals = _call_totals(calls)
    return {"node": node, "calls": totals["calls"], "answered": totals["answered"],
            "allocations": len(allocations), "relayed_bytes": _relayed(allocations)}
