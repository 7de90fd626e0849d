"""A seeded generator of a day of analytics events whose aggregates are known in advance.

For each call it first decides the outcome and the numbers the aggregates
must show (set-up stages, duration, the path of each direction and how
often it switches, mean RTT, jitter and loss, freezes), then writes events
that produce exactly those: quality samples come in pairs placed
symmetrically around the chosen mean, so the mean of the samples is the
chosen value.  :class:`Truth` holds the chosen values; tests compare the
worker's aggregates with it, and the benchmark uses the events.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .aggregate import hour_of, mos
from .events import record

__all__ = ["synthesize", "Truth", "DAY_START"]

DAY_START = 1_764_547_200.0  # 2025-12-01 00:00 UTC, a whole hour
SAMPLE_EVERY = 15.0
OUTCOMES = (("answered", 72), ("timeout", 10), ("declined", 8), ("cancelled", 7), ("busy", 3))


@dataclass
class Truth:
    calls: dict[str, dict] = field(default_factory=dict)  # call_id -> expected column values
    allocations: dict[str, dict] = field(default_factory=dict)
    hours: dict[int, dict] = field(default_factory=dict)  # hour -> calls, answered, not_answered, relay_calls


class _Ids:
    def __init__(self, seed: int) -> None:
        self.prefix, self.n = f"syn{seed}-", 0

    def __call__(self) -> str:
        self.n += 1
        return f"{self.prefix}{self.n}"


def _pairs(rng: random.Random, mean_units: int, count: int, spread: int) -> list[int]:
    """``count`` (even) non-negative integers whose mean is exactly ``mean_units``."""
    values: list[int] = []
    for _ in range(count // 2):
        d = rng.randint(0, min(spread, mean_units))
        values += [mean_units - d, mean_units + d]
    rng.shuffle(values)
    return values


def synthesize(seed: int = 1, calls: int = 2000, start: float = DAY_START, nodes: tuple[str, ...] = ("A1", "B1"),
               users: int = 300, group_share: float = 0.05) -> tuple[list[dict], Truth]:
    """Events of ``calls`` calls spread over the 24 hours from ``start``, sorted by time, and their truth."""
    rng = random.Random(seed)
    new_id = _Ids(seed)
    names = [f"user{n:04d}" for n in range(users)]
    events: list[dict] = []
    truth = Truth()
    for number in range(calls):
        call_id = f"c{seed}-{number}"
        t0 = start + rng.randrange(0, 86_000_000) / 1000  # ms resolution, leaves room for the call
        node = rng.choice(nodes)
        if rng.random() < group_share:
            _group_call(rng, new_id, events, truth, call_id, t0, node, rng.sample(names, rng.randint(3, 5)))
        else:
            _p2p_call(rng, new_id, events, truth, call_id, t0, node, *rng.sample(names, 2))
    events.sort(key=lambda e: (e["time"], e["id"]))
    for row in truth.calls.values():
        hour = truth.hours.setdefault(row["hour"], {"calls": 0, "answered": 0, "not_answered": 0,
                                                   "relay_calls": 0})
        hour["calls"] += 1
        hour["answered"] += row["answered"]
        hour["not_answered"] += 1 - row["answered"]
        hour["relay_calls"] += 1 if row["relay_share"] else 0
    return events, truth


def _emit(events: list[dict], new_id: _Ids, name: str, t: float, node: str, **fields) -> None:
    events.append(record(new_id(), name, t, node, **fields))


def _base_row(call_id: str, kind: str, node: str, caller: str, callee: str | None, participants: list[str],
              t0: float) -> dict:
    return {"call_id": call_id, "kind": kind, "node": node, "caller": caller, "callee": callee,
            "participants": ",".join(sorted(participants)), "started_at": round(t0, 3), "hour": hour_of(t0),
            "answered": 0, "answer_time": None, "connect_time": None, "setup_time": None, "duration": 0.0,
            "path_up": None, "path_down": None, "relay_share": None, "samples": 0, "path_switches": 0,
            "loss": None, "rtt_ms": None, "jitter_ms": None, "freezes": 0, "mos": None, "sfu_joins": 0,
            "layer_switches": 0, "keyframe_requests": 0, "recordings": 0}


def _p2p_call(rng, new_id, events, truth, call_id, t0, node, caller, callee) -> None:
    outcome = rng.choices([o for o, _ in OUTCOMES], [w for _, w in OUTCOMES])[0]
    row = _base_row(call_id, "p2p", node, caller, callee, [caller, callee], t0)
    _emit(events, new_id, "call.started", t0, node, call_id=call_id, kind="p2p", caller=caller, callee=callee,
          media=["audio", "video"])
    if outcome != "answered":
        ring = {"timeout": 30.0, "busy": 0.05}.get(outcome, rng.randint(500, 20_000) / 1000)
        end = t0 + ring
        _emit(events, new_id, "call.ended", end, node, call_id=call_id, kind="p2p", participants=[caller, callee],
              topology="p2p", reason=outcome, duration=0.0, answered=False)
        row.update(outcome=outcome, ended_at=round(end, 3))
        truth.calls[call_id] = row
        return
    answer_ms = rng.randint(800, 15_000)
    answered_at = t0 + answer_ms / 1000
    _emit(events, new_id, "call.answered", answered_at, node, call_id=call_id, setup_time=answer_ms / 1000)
    duration_ms = rng.randint(20_000, 300_000)
    end = answered_at + duration_ms / 1000
    samples_each = 2 * max(1, int(duration_ms / 1000 / SAMPLE_EVERY) // 2)  # even: samples come in pairs
    paths = {caller: rng.choice(["direct", "direct", "direct", "relay"]),
             callee: rng.choice(["direct", "direct", "direct", "relay"])}
    switch_user = caller if rng.random() < 0.1 else None  # this user's path goes relay -> direct midway
    if switch_user is not None:
        paths[switch_user] = "direct"
    quality = _quality(rng)
    connects = {u: rng.randint(100, 4000) for u in (caller, callee)}
    streams = {u: _samples(rng, quality, samples_each) for u in (caller, callee)}
    relay_samples = 0
    freezes_total = 0
    for user in (caller, callee):
        freezes = 0
        for k in range(samples_each):
            t = answered_at + (connects[user] / 1000) + k * (duration_ms / 1000 - 5) / samples_each
            path = paths[user]
            if user == switch_user and k < samples_each // 2:
                path = "relay"
            relay_samples += path == "relay"
            freezes += rng.random() < 0.05
            rtt, jitter, loss = streams[user][k]
            fields = dict(call_id=call_id, user=user, path=path, rtt_ms=float(rtt), loss=loss / 1000,
                          jitter_ms=float(jitter), freezes=freezes, bitrate_kbps=float(rng.randint(300, 2500)),
                          width=640, height=480)
            if k == 0:
                fields["connect_ms"] = float(connects[user])
            _emit(events, new_id, "call.quality", t, rng.choice([node, "A1"]), **fields)
        freezes_total += freezes
    _emit(events, new_id, "call.ended", end, node, call_id=call_id, kind="p2p", participants=[caller, callee],
          topology="p2p", reason="hangup", duration=duration_ms / 1000, answered=True)
    total = 2 * samples_each
    row.update(outcome="answered", answered=1, answer_time=answer_ms / 1000,
               connect_time=max(connects.values()) / 1000,
               setup_time=round(answer_ms / 1000 + max(connects.values()) / 1000, 3),
               duration=duration_ms / 1000, ended_at=round(end, 3), path_up=paths[caller], path_down=paths[callee],
               relay_share=round(relay_samples / total, 3), samples=total, path_switches=int(switch_user is not None),
               rtt_ms=float(quality[0]), jitter_ms=float(quality[1]), loss=quality[2] / 1000, freezes=freezes_total,
               mos=mos(quality[0], quality[1], quality[2] / 1000))
    truth.calls[call_id] = row
    for user in (caller, callee):
        if paths[user] == "relay" or user == switch_user:
            _allocation(rng, new_id, events, truth, user, answered_at, end)


def _quality(rng) -> tuple[int, int, int]:
    """A call's mean RTT (ms), jitter (ms) and loss (per mille): mostly good, some bad."""
    if rng.random() < 0.1:
        return rng.randint(200, 600), rng.randint(20, 80), rng.randint(20, 120)
    return rng.randint(20, 120), rng.randint(1, 15), rng.randint(0, 15)


def _samples(rng, quality, count) -> list[tuple[int, int, int]]:
    rtts = _pairs(rng, quality[0], count, 30)
    jitters = _pairs(rng, quality[1], count, 5)
    losses = _pairs(rng, quality[2], count, 5)
    return list(zip(rtts, jitters, losses))


def _allocation(rng, new_id, events, truth, user, granted_at, deleted_at) -> None:
    allocation_id = f"a-{new_id()}"
    node = "T1"
    _emit(events, new_id, "turn.allocation.granted", granted_at - 0.5, node, allocation_id=allocation_id,
          user=user, client="192.0.2.1:5000", relayed=["198.51.100.1:50000"], lifetime=600)
    counts = {"packets_to_peer": rng.randint(100, 50_000), "packets_to_client": rng.randint(100, 50_000)}
    counts["bytes_to_peer"] = counts["packets_to_peer"] * rng.randint(100, 1200)
    counts["bytes_to_client"] = counts["packets_to_client"] * rng.randint(100, 1200)
    duration = round(deleted_at + 1.0 - (granted_at - 0.5), 3)
    _emit(events, new_id, "turn.allocation.deleted", deleted_at + 1.0, node, allocation_id=allocation_id,
          user=user, reason="deleted", duration=duration, **counts)
    truth.allocations[allocation_id] = {"node": node, "user_name": user, "duration": duration, **counts}


def _group_call(rng, new_id, events, truth, room_id, t0, node, members) -> None:
    owner = members[0]
    row = _base_row(room_id, "group", node, owner, None, members, t0)
    _emit(events, new_id, "call.started", t0, node, call_id=room_id, kind="group", caller=owner, media=["audio", "video"])
    duration_ms = rng.randint(60_000, 900_000)
    joins = layer = keyframes = 0
    for member in members:
        _emit(events, new_id, "sfu.joined", t0 + 1, "S1", call_id=room_id, user=member)
        joins += 1
        for _ in range(rng.randint(0, 3)):
            _emit(events, new_id, "sfu.layer_switched", t0 + rng.randint(2, duration_ms // 1000), "S1",
                  call_id=room_id, user=member, from_layer="h", to_layer="m")
            layer += 1
        for _ in range(rng.randint(0, 2)):
            _emit(events, new_id, "sfu.keyframe_requested", t0 + rng.randint(2, duration_ms // 1000), "S1",
                  call_id=room_id, user=member, reason="layer")
            keyframes += 1
    recordings = int(rng.random() < 0.3)
    if recordings:
        _emit(events, new_id, "recording.started", t0 + 5, "R1", call_id=room_id, by=owner)
        _emit(events, new_id, "recording.stopped", t0 + duration_ms / 1000, "R1", call_id=room_id,
              duration=duration_ms / 1000 - 5, bytes=rng.randint(10**6, 10**8))
    end = t0 + duration_ms / 1000
    _emit(events, new_id, "call.ended", end, node, call_id=room_id, kind="group", participants=sorted(members),
          topology="sfu", reason="empty", duration=duration_ms / 1000, answered=True)
    row.update(outcome="answered", answered=1, duration=duration_ms / 1000, ended_at=round(end, 3), sfu_joins=joins,
               layer_switches=layer, keyframe_requests=keyframes, recordings=recordings)
    truth.calls[room_id] = row
