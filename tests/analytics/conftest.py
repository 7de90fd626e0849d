"""Fixtures: the real redis-server and PostgreSQL of the multi-node signaling tests,
and helpers that run `netcore-analytics` as processes and compare aggregates with a truth."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from servers.analytics.store import Store
from servers.analytics.synth import Truth
from tests.signal.test_multinode import postgres_url, redis_url  # noqa: F401  (fixtures, reused)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def analytics(*args: str, wait: bool = True, timeout: float = 300) -> subprocess.Popen | dict:
    """Run ``python -m servers.analytics.main ARGS`` (what `netcore-analytics` runs).

    With ``wait`` the worker's final JSON counters line is returned; else the process."""
    proc = subprocess.Popen([sys.executable, "-m", "servers.analytics.main", "--log-level", "warning", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    if not wait:
        return proc
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def write_jsonl(path, records) -> None:
    with open(path, "w") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")


def assert_truth(store: Store, truth: Truth) -> None:
    """Every call, allocation and hourly count the generator decided, exactly."""
    calls = {r["call_id"]: r for r in store.table("calls")}
    assert set(calls) == set(truth.calls)
    for call_id, want in truth.calls.items():
        got = {k: calls[call_id][k] for k in want}
        assert got == want, call_id
    allocations = {r["allocation_id"]: r for r in store.table("allocations")}
    assert set(allocations) == set(truth.allocations)
    for allocation_id, want in truth.allocations.items():
        assert {k: allocations[allocation_id][k] for k in want} == want
    hours = {r["hour"]: r for r in store.table("hours")}
    for hour, want in truth.hours.items():
        assert {k: hours[hour][k] for k in want} == want, hour
    users: dict[str, dict] = {}
    for row in truth.calls.values():
        for user in row["participants"].split(","):
            u = users.setdefault(user, {"calls": 0, "answered": 0})
            u["calls"] += 1
            u["answered"] += row["answered"]
    for row in truth.allocations.values():
        users.setdefault(row["user_name"], {"calls": 0, "answered": 0})
    got_users = {r["user_name"]: {"calls": r["calls"], "answered": r["answered"]} for r in store.table("users")}
    assert got_users == users
    nodes = {r["node"]: r["calls"] for r in store.table("nodes")}
    for node in {row["node"] for row in truth.calls.values()}:
        assert nodes[node] == sum(1 for row in truth.calls.values() if row["node"] == node)


def aggregates(store: Store) -> dict[str, list[dict]]:
    """Every aggregate table, for comparing two runs."""
    return {name: store.table(name) for name in ("calls", "allocations", "hours", "users", "nodes")}
