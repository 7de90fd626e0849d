"""netcore-analytics serve: the operator view follows the aggregates as workers add to them."""

from __future__ import annotations

import json
import re
import signal
import urllib.error
import urllib.request

import pytest

from servers.analytics.synth import synthesize

from .conftest import analytics, write_jsonl


def _get(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.headers["Content-Type"], answer.read().decode()


def test_the_live_view_shows_the_same_numbers_and_follows_new_events(tmp_path):
    db = str(tmp_path / "a.db")
    first, _ = synthesize(seed=21, calls=300)
    write_jsonl(tmp_path / "one.jsonl", first)
    analytics("--database", db, "worker", "--jsonl", str(tmp_path / "one.jsonl"), "--until-drained")
    server = analytics("--database", db, "serve", "--port", "0", "--since", "1000d", "--refresh", "5",
                       wait=False)
    try:
        url = re.search(r"http://\S+/", server.stdout.readline()).group(0)
        kind, numbers = _get(url + "report.json")
        assert kind == "application/json" and json.loads(numbers)["totals"]["calls"] == 300
        kind, page = _get(url)
        assert kind.startswith("text/html")
        assert '<meta http-equiv="refresh" content="5">' in page and page.count("<svg") >= 3
        assert "<script" not in page
        with pytest.raises(urllib.error.HTTPError) as missing:
            _get(url + "etc/passwd")
        assert missing.value.code == 404
        # A worker adds another day's calls: the next request shows them.
        more, _ = synthesize(seed=22, calls=100)
        write_jsonl(tmp_path / "two.jsonl", more)
        analytics("--database", db, "worker", "--jsonl", str(tmp_path / "two.jsonl"), "--until-drained")
        live = json.loads(_get(url + "report.json")[1])
        assert live["totals"]["calls"] == 400
        assert sum(a + n for _, a, n in live["per_hour"]) == 400
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(10) == 0
