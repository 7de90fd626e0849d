"""netcore-analytics report: its numbers are those of the aggregates."""

from __future__ import annotations

import math
import re
import subprocess
import sys

from servers.analytics.report import SETUP_BINS, percentile
from servers.analytics.store import open_store
from servers.analytics.synth import DAY_START, synthesize

from .conftest import ROOT, analytics, write_jsonl


def _table(text: str) -> dict[str, str]:
    rows = {}
    for line in text.splitlines():
        if m := re.fullmatch(r"(\S.*?)\s{2,}(\S+)", line):
            rows[m.group(1)] = m.group(2)
    return rows


def _num(text: str) -> float | None:
    return None if text == "-" else float(text)


def test_the_report_shows_the_aggregates_numbers(tmp_path):
    events, truth = synthesize(seed=11, calls=800)
    source = tmp_path / "day.jsonl"
    write_jsonl(source, events)
    db = str(tmp_path / "a.db")
    analytics("--database", db, "worker", "--jsonl", str(source), "--until-drained")
    page = tmp_path / "report.html"
    done = subprocess.run([sys.executable, "-m", "servers.analytics.main", "--database", db, "report",
                           "--since", "24h", "--until", str(DAY_START + 86400), "--html", str(page), "--worst", "5"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=True)
    shown = _table(done.stdout)
    calls = list(truth.calls.values())
    answered = [c for c in calls if c["answered"]]
    assert int(shown["calls"]) == len(calls) == 800
    assert int(shown["answered"]) == len(answered)
    assert int(shown["not answered"]) == len(calls) - len(answered)
    assert float(shown["minutes"]) == round(math.fsum(c["duration"] for c in answered) / 60, 1)
    assert int(shown["relayed calls"]) == sum(1 for c in calls if c["relay_share"])
    assert int(shown["allocations"]) == len(truth.allocations)
    for outcome in {c["outcome"] for c in calls}:
        assert int(shown[f"outcome {outcome}"]) == sum(1 for c in calls if c["outcome"] == outcome)
    sampled = [c for c in calls if c["samples"]]
    assert int(shown["path unknown"]) == len(calls) - len(sampled)
    assert int(shown["path switched"]) == sum(1 for c in sampled if c["path_switches"])
    assert int(shown["path relay"]) == sum(1 for c in sampled if not c["path_switches"] and "relay" in
                                           (c["path_up"], c["path_down"]))
    assert int(shown["path direct"]) == sum(1 for c in sampled if (c["path_up"], c["path_down"]) ==
                                            ("direct", "direct") and not c["path_switches"])
    setups = [c["setup_time"] for c in calls if c["setup_time"] is not None]
    for p in (50, 90, 99):
        assert _num(shown[f"setup p{p} (s)"]) == percentile(setups, p)
        # MOS towards its bad end: p90 is the score 10% of calls fall below
        assert _num(shown[f"MOS p{p}"]) == percentile([c["mos"] for c in calls if c["mos"] is not None], 100 - p)
        assert _num(shown[f"RTT (ms) p{p}"]) == percentile([c["rtt_ms"] for c in calls if c["rtt_ms"] is not None], p)
    worst = sorted((c for c in calls if c["mos"] is not None), key=lambda c: (c["mos"], c["call_id"]))[:5]
    assert re.findall(r"^  (\S+)  mos=", done.stdout, re.M) == [c["call_id"] for c in worst]
    text = page.read_text()
    assert "<script" not in text and "<link" not in text and "src=" not in text  # self-contained
    assert text.count("<svg") == 3 + 5  # hours, set-up, paths, and a timeline per worst call
    hourly = re.search(r'aria-label="Calls per hour">(.*?)</svg>', text).group(1)
    bars = [int(v) for v in re.findall(r"<title>\S+ answered: (\d+)</title>", hourly)]
    assert sum(bars) == len(answered) and len(bars) == 24
    setup_chart = re.search(r'aria-label="Set-up time \(invite to media\)">(.*?)</svg>', text).group(1)
    binned = [int(v) for v in re.findall(r"calls: (\d+)</title>", setup_chart)]
    assert sum(binned) == len(setups) and len(binned) == len(SETUP_BINS) + 1
    for c in worst:
        assert f"timeline of {c['call_id']}" in text
    store = open_store(db)
    assert int(shown["malformed events"]) == store.counts()["malformed"] == 0
    store.close()
