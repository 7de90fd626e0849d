"""The netcore-signal process: TOML config and flags, SIGTERM going away, logs, analytics."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys

import pytest
from websockets.exceptions import ConnectionClosed

from servers.signal.config import load_config

from .helpers import PASSWORD, login, make_friends, register


def test_toml_then_flags(tmp_path):
    path = tmp_path / "signal.toml"
    path.write_text('port = 9000\nring_timeout = 12.5\nfriends_only = false\nturn_urls = ["turn:a", "turn:b"]\n')
    config = load_config(["--config", str(path), "--port", "9001", "--group-threshold", "6"])
    assert config.port == 9001 and config.ring_timeout == 12.5 and config.friends_only is False
    assert config.turn_urls == ["turn:a", "turn:b"] and config.group_threshold == 6
    assert config.core_config().ring_timeout == 12.5
    path.write_text("no_such_setting = 1\n")
    with pytest.raises(SystemExit):
        load_config(["--config", str(path)])


async def start_daemon(tmp_path, *extra: str):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "servers.signal.main", "--port", "0", "--data-dir", str(tmp_path / "data"),
        *extra, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    assert line.startswith(b"listening"), line
    return proc, int(line.split()[2])


async def test_sigterm_closes_with_going_away_and_logs_hold_no_secrets(tmp_path, names):
    config = tmp_path / "signal.toml"
    config.write_text('ring_timeout = 5.0\nturn_secret = "crypt1c"\nturn_urls = ["turn:127.0.0.1:3478"]\n')
    proc, port = await start_daemon(tmp_path, "--config", str(config))
    try:
        a, b = names("a"), names("b")
        await register(port, a)
        await register(port, b)
        ca, cb = await login(port, a), await login(port, b)
        await make_friends(ca, cb)
        call_id = (await ca.ok("call.invite", {"to": b, "media": ["audio"]}))["call_id"]
        await cb.ok("call.accept", {"call_id": call_id})
        await ca.ok("call.quality", {"call_id": call_id, "path": "direct", "rtt_ms": 12.5, "loss": 0.0})
        await ca.ok("call.hangup", {"call_id": call_id})
        await cb.expect("call.ended")
        proc.send_signal(signal.SIGTERM)
        for c in (ca, cb):
            with pytest.raises(ConnectionClosed):
                await c.expect("never", timeout=10)
            assert c.ws.close_code == 1001
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    logs = (await proc.stderr.read()).decode()
    assert '"event":"session.open"' in logs
    assert PASSWORD not in logs and ca.token not in logs
    assert ca.welcome["payload"]["resume_token"] not in logs
    assert "crypt1c" not in logs
    records = [json.loads(line) for line in (tmp_path / "data" / "analytics.jsonl").read_text().splitlines()]
    kinds = [r["event"] for r in records]
    assert kinds == ["call.started", "call.answered", "call.quality", "call.ended"]
    assert records[2]["path"] == "direct" and records[2]["rtt_ms"] == 12.5
    assert records[3]["reason"] == "hangup" and records[3]["participants"] == [a, b]
    db = sqlite3.connect(tmp_path / "data" / "signal.db")
    (row,) = db.execute("SELECT call_id, reason, answered FROM calls").fetchall()
    assert row == (call_id, "hangup", 1)
    (hash_,) = db.execute("SELECT password_hash FROM users WHERE username = ?", (a,)).fetchone()
    assert hash_.startswith("scrypt$") and PASSWORD not in hash_
