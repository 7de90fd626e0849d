"""Calls between Chromium pages, one direct and one relay-only, through `netcore up`:
the pages' quality samples and signaling's events give the analytics report the right
path types and set-up times."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

from servers.analytics.store import open_store
from tests.web.helpers import assert_media_grows, call, open_stats

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _netcore_analytics(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "servers.analytics.main", "--log-level", "warning", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=True)
    return done.stdout


def _talk(caller, callee, callee_name: str, relay_only: bool) -> str:
    for page in (caller, callee):
        page.set_checked("#relay-only", relay_only)
    started = time.time()
    call(caller, callee, callee_name)
    for page in (caller, callee):
        open_stats(page)
        page.wait_for_selector(f'#stats[data-path="{"relay" if relay_only else "host"}"]')
    assert_media_grows([caller, callee], seconds=6.0, steps=2)  # long enough for a second sample
    call_id = caller.evaluate("() => window.netcore.call.id")
    caller.click("#hangup")
    callee.wait_for_selector("#call", state="hidden")
    return call_id, started


def test_direct_and_relayed_page_calls_show_in_the_report(friends, up, tmp_path):
    alice, a_name, bob, b_name = friends
    direct, t0 = _talk(alice, bob, b_name, relay_only=False)
    relayed, _ = _talk(bob, alice, a_name, relay_only=True)
    db = str(tmp_path / "a.db")
    _netcore_analytics("--database", db, "worker", "--jsonl", os.path.join(up.data_dir, "analytics.jsonl"),
                       "--jsonl", os.path.join(up.data_dir, "turn-analytics.jsonl"), "--until-drained")
    store = open_store(db)
    calls = {r["call_id"]: r for r in store.table("calls")}
    users = {r["user_name"]: r for r in store.table("users")}
    store.close()
    # netcore-turn's allocations for the relay-only call, under the users signaling named in
    # the TURN credentials it issued
    for name in (a_name, b_name):
        assert users[name]["allocations"] >= 1, users[name]
    assert users[a_name]["relayed_bytes"] + users[b_name]["relayed_bytes"] > 100_000  # the media, once deleted
    elapsed = time.time() - t0
    for call_id, path, caller, callee in ((direct, "direct", a_name, b_name), (relayed, "relay", b_name, a_name)):
        row = calls[call_id]
        assert (row["caller"], row["callee"], row["outcome"]) == (caller, callee, "answered")
        assert (row["path_up"], row["path_down"]) == (path, path)
        assert row["relay_share"] == (1.0 if path == "relay" else 0.0)
        assert row["samples"] >= 3  # both pages, and at least one of them twice
        # set-up = ring (invite to accept) + connect (accept to media, as the pages saw it)
        assert 0 < row["answer_time"] < elapsed and 0 < row["connect_time"] < elapsed
        assert row["setup_time"] == round(row["answer_time"] + row["connect_time"], 3)
        assert row["rtt_ms"] is not None and row["loss"] is not None and row["mos"] > 1
    html = tmp_path / "report.html"
    out = _netcore_analytics("--database", db, "report", "--since", "1h", "--html", str(html))
    shown = dict(re.findall(r"^(\S.*?)\s{2,}(\S+)$", out, re.M))
    assert int(shown["path direct"]) >= 1 and int(shown["path relay"]) >= 1
    assert "<svg" in html.read_text()
