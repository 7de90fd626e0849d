"""A synthetic day through the worker processes: the aggregates equal the generator's truth."""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import time
import uuid

import redis

from servers.analytics.store import open_store
from servers.analytics.synth import DAY_START, synthesize

from .conftest import ROOT, aggregates, analytics, assert_truth, write_jsonl

# Records no producer of this schema writes: four malformed, two unknown.
GARBAGE = [
    "not json at all",
    "[1, 2, 3]",
    json.dumps({"id": "g1", "event": "call.started"}),  # no version, time or node
    json.dumps({"id": "g2", "event": "call.quality", "v": 1, "time": 1.0, "node": "A1", "call_id": "c",
                "user": "u", "path": "direct", "rtt_ms": "fast", "loss": 0}),
    json.dumps({"id": "g3", "event": "call.teleported", "v": 1, "time": 1.0, "node": "A1"}),
    json.dumps({"id": "g4", "event": "call.started", "v": 2, "time": 1.0, "node": "A1", "call_id": "c"}),
]


def _fill_stream(url: str, stream: str, records: list[dict], garbage: list[str]) -> None:
    r = redis.Redis.from_url(url)
    pipe = r.pipeline(transaction=False)
    spots = {len(records) * n // len(garbage): text for n, text in enumerate(garbage)}  # spread over the day
    for i, rec in enumerate(records):
        pipe.xadd(stream, {"record": json.dumps(rec)})
        if i in spots:
            pipe.xadd(stream, {"record": spots[i]})
        if i % 1000 == 999:
            pipe.execute()
    pipe.xadd(stream, {"no_record_field": "x"})  # malformed too: nothing to parse
    pipe.execute()
    r.close()


def _pending_of(r: redis.Redis, stream: str, consumer: str) -> int:
    return len(r.xpending_range(stream, "analytics", "-", "+", 10_000, consumername=consumer))


def test_a_day_through_redis_with_two_workers_one_killed_midway(tmp_path, redis_url):
    events, truth = synthesize(seed=7, calls=2000)
    stream = f"t:{uuid.uuid4().hex}"
    _fill_stream(redis_url, stream, events, GARBAGE)
    db = str(tmp_path / "analytics.db")
    common = ["--database", db, "worker", "--redis", redis_url, "--stream", stream, "--batch", "200",
              "--claim-idle", "1", "--until-drained"]
    victim = analytics(*common, "--consumer", "w1", wait=False)
    survivor = analytics(*common, "--consumer", "w2", wait=False)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    # Stop w1 while it holds entries it read and has not acknowledged, then kill it.
    deadline = time.monotonic() + 60
    while True:
        assert time.monotonic() < deadline, "w1 never held a pending batch"
        victim.send_signal(signal.SIGSTOP)
        groups = r.xinfo_groups(stream)
        held = _pending_of(r, stream, "w1") if groups else 0
        if held and groups[0]["lag"] > 5000:  # midway: much still unread
            break
        victim.send_signal(signal.SIGCONT)
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    out, err = survivor.communicate(timeout=300)
    assert survivor.returncode == 0, err
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["claimed"] >= held  # the dead worker's batch was taken over
    assert r.xinfo_groups(stream)[0]["pending"] == 0
    r.close()
    store = open_store(db)
    assert_truth(store, truth)
    counts = store.counts()
    assert (counts["events"], counts["malformed"], counts["unknown"]) == (len(events), 5, 2)
    store.close()


def test_json_lines_in_any_order_and_twice_give_the_same_aggregates(tmp_path):
    events, truth = synthesize(seed=8, calls=1500)
    rng = random.Random(8)
    halves = [tmp_path / "a1.jsonl", tmp_path / "b1.jsonl"]
    write_jsonl(halves[0], events[::2])
    write_jsonl(halves[1], events[1::2])
    again = tmp_path / "again.jsonl"  # a tenth of the events once more, shuffled, and the garbage
    lines = [json.dumps(e) for e in rng.sample(events, len(events) // 10)] + GARBAGE
    rng.shuffle(lines)
    again.write_text("\n".join(lines) + "\n")
    db = str(tmp_path / "one.db")
    # Two workers at once on the same database, each with its own files.
    first = analytics("--database", db, "worker", "--jsonl", str(halves[0]), "--until-drained", wait=False)
    second = analytics("--database", db, "worker", "--jsonl", str(halves[1]), "--jsonl", str(again),
                       "--until-drained")
    assert first.wait(300) == 0
    assert (second["malformed"], second["unknown"]) == (4, 2)
    store = open_store(db)
    assert_truth(store, truth)
    before = aggregates(store)
    counts = store.counts()
    assert (counts["events"], counts["malformed"], counts["unknown"]) == (len(events), 4, 2)
    store.close()
    # The whole day again, from copies the worker has never seen: nothing changes.
    copy = tmp_path / "copy.jsonl"
    write_jsonl(copy, list(reversed(events)))
    analytics("--database", db, "worker", "--jsonl", str(copy), "--until-drained")
    store = open_store(db)
    assert aggregates(store) == before
    store.close()
    # And a fresh database fed in reverse order folds to the same rows.
    other = str(tmp_path / "other.db")
    analytics("--database", other, "worker", "--jsonl", str(copy), "--until-drained")
    store = open_store(other)
    assert aggregates(store) == before
    store.close()


def test_redis_into_postgresql_with_two_workers(tmp_path, redis_url, postgres_url):
    events, truth = synthesize(seed=9, calls=600)
    stream = f"t:{uuid.uuid4().hex}"
    _fill_stream(redis_url, stream, events, GARBAGE)
    common = ["--database", postgres_url, "worker", "--redis", redis_url, "--stream", stream, "--batch", "100",
              "--until-drained"]
    first = analytics(*common, "--consumer", "p1", wait=False)
    second = analytics(*common, "--consumer", "p2")
    assert first.wait(300) == 0
    assert second["records"] > 0
    store = open_store(postgres_url)
    assert_truth(store, truth)
    counts = store.counts()
    assert (counts["events"], counts["malformed"], counts["unknown"]) == (len(events), 5, 2)
    store.close()
    # and the report reads PostgreSQL as it reads SQLite
    done = subprocess.run([sys.executable, "-m", "servers.analytics.main", "--database", postgres_url, "report",
                           "--since", "24h", "--until", str(DAY_START + 86400), "--html", str(tmp_path / "r.html")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=True)
    assert re.search(r"^calls\s+600$", done.stdout, re.M)
    assert re.search(rf"^answered\s+{sum(c['answered'] for c in truth.calls.values())}$", done.stdout, re.M)
