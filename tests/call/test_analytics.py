"""``netcore-call`` peers feed the analytics like the page: a direct call and a relay-only call
through ``netcore-turn`` show in ``netcore-analytics``' aggregates and report with their path
types and set-up times (ring + connect, the connect time from the first quality sample)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from servers.analytics.store import open_store
from tests.call.test_two_peers import call_both_ways

ROOT = Path(__file__).resolve().parents[2]


def _netcore_analytics(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "servers.analytics.main", "--log-level", "warning", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=True)
    return done.stdout


def _ended(signal, call_id: str) -> None:
    deadline = time.monotonic() + 10
    while not any(r.get("call_id") == call_id for r in signal.analytics("call.ended")):
        assert time.monotonic() < deadline, "signaling never wrote call.ended"
        time.sleep(0.1)


def test_netcore_call_calls_show_in_the_report_with_path_and_setup_time(tmp_path, signal, relay_signal, names):
    t0 = time.time()
    # 14 s: two periodic samples from each peer (every 5 s from the 3rd second), so the count does
    # not hang on whether the second one beats the hang-up at 9 s on a loaded machine
    direct, _, _, _ = call_both_ways(tmp_path, signal.url, names, duration=14)
    relayed, _, _, _ = call_both_ways(tmp_path, relay_signal.url, names, "--relay-only", duration=14)
    elapsed = time.time() - t0
    for daemon, summary in ((signal, direct), (relay_signal, relayed)):
        _ended(daemon, summary["call_id"])
    db = str(tmp_path / "calls.db")
    _netcore_analytics("--database", db, "worker", "--jsonl", str(signal.data / "analytics.jsonl"),
                       "--jsonl", str(relay_signal.data / "analytics.jsonl"), "--until-drained")
    store = open_store(db)
    calls = {r["call_id"]: r for r in store.table("calls")}
    store.close()
    for summary, path in ((direct, "direct"), (relayed, "relay")):
        row = calls[summary["call_id"]]
        assert row["outcome"] == "answered", row
        assert (row["path_up"], row["path_down"]) == (path, path), row
        assert row["samples"] >= 3, row  # both peers, and at least one of them twice (every 5 s)
        assert 0 < row["answer_time"] < elapsed and 0 < row["connect_time"] < elapsed, row
        assert row["setup_time"] == round(row["answer_time"] + row["connect_time"], 3), row
    out = _netcore_analytics("--database", db, "report", "--since", "1h", "--html", str(tmp_path / "report.html"))
    shown = dict(re.findall(r"^(\S.*?)\s{2,}(\S+)$", out, re.M))
    assert int(shown["path direct"]) == 1 and int(shown["path relay"]) == 1, out
    assert "<svg" in (tmp_path / "report.html").read_text()
