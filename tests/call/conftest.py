"""Fixtures: a real ``netcore-signal`` (and ``netcore-turn``) started per test, users made friends
through our signaling client, and ``netcore-call`` run as a real subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from servers.signal.client import SignalingClient
from tests.conftest import stop_process
from tests.peers import netcore_turn_process
from tests.turn.live import free_port_range

ROOT = Path(__file__).resolve().parent.parent.parent
TURN_SECRET = "call-test-secret"
_names = itertools.count(1)


def environment() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT))


@dataclass
class Signal:
    """A running netcore-signal: its ws:// address and data directory."""

    url: str
    proc: subprocess.Popen
    data: Path

    def analytics(self, event: str) -> list[dict]:
        """The daemon's analytics records of one kind so far (``analytics.jsonl``)."""
        path = self.data / "analytics.jsonl"
        if not path.exists():
            return []
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [r for r in records if r.get("event") == event]


@contextlib.contextmanager
def signal_daemon(tmp_path: Path, *extra: str, name: str = "signal") -> Iterator[Signal]:
    """``netcore-signal`` on a port the OS picks; its 'listening HOST PORT' line gives the port.
    ``name`` keeps two daemons of one test in their own data directories and logs."""
    data = tmp_path / name
    log = open(tmp_path / f"netcore-{name}.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "servers.signal.main", "--port", "0", "--data-dir", str(data),
         "--token-secret", "call-tests", "--log-level", "warning", "--ring-timeout", "20", *extra],
        stdout=subprocess.PIPE, stderr=log, env=environment(), cwd=ROOT, text=True)
    try:
        line = proc.stdout.readline()
        if not line.startswith("listening "):
            raise RuntimeError(f"netcore-signal did not start: {line!r}")
        _, host, port = line.split()
        yield Signal(f"ws://{host}:{port}", proc, data)
    finally:
        stop_process(proc)
        log.close()


@pytest.fixture
def signal(tmp_path) -> Iterator[Signal]:
    with signal_daemon(tmp_path) as running:
        yield running


@pytest.fixture
def relay_signal(tmp_path) -> Iterator[Signal]:
    """netcore-turn with a REST secret, and netcore-signal handing out its credentials in welcomes."""
    low, high = free_port_range(40)
    with netcore_turn_process(tmp_path, "--auth-secret", TURN_SECRET, "--allow-loopback-peers",
                              "--min-port", str(low), "--max-port", str(high)) as (_, turn_port):
        with signal_daemon(tmp_path, "--turn-secret", TURN_SECRET,
                           "--turn-urls", f"turn:127.0.0.1:{turn_port}?transport=udp", name="relay-signal") as running:
            yield running


def password(user: str) -> str:
    return "password-" + user


async def make_users(url: str, *names: str, friends: bool = True, passwords: dict[str, str] | None = None) -> None:
    """Register ``names`` (passwords from ``passwords``, else ``password(name)``); the first befriends
    every other."""
    passwords = passwords or {}
    clients = []
    try:
        for name in names:
            client = await SignalingClient.connect(url)
            clients.append(client)
            await client.register(name, passwords.get(name, password(name)))
            await client.login(name, passwords.get(name, password(name)))
        if friends:
            first = clients[0]
            for client, name in zip(clients[1:], names[1:]):
                await first.friend_request(name)
                await client.friend_accept(names[0])
    finally:
        for client in clients:
            await client.close()


@pytest.fixture
def names():
    return lambda prefix: f"{prefix}{os.getpid() % 1000}x{next(_names)}"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    summary: dict


class Cli:
    """``netcore-call`` as a subprocess; ``start`` it, then ``finish`` it for its result."""

    def __init__(self, tmp_path: Path, url: str, user: str, *args: str, summary: bool = True) -> None:
        self.summary_path = tmp_path / f"{user}-{next(_names)}.json"
        cmd = [sys.executable, "-m", "servers.call.main", "--server", url, "--user", user,
               "--password", password(user), *args]
        if summary:
            cmd += ["--summary-json", str(self.summary_path)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=environment(), cwd=ROOT)

        self._seen: list[str] = []

    def expect(self, text: str) -> str:
        """Read stderr until a line containing ``text`` (a progress line: "waiting for a call")."""
        for line in self.proc.stderr:
            self._seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"netcore-call ended before saying {text!r}:\n{''.join(self._seen)}")

    def finish(self, timeout: float = 90.0) -> Result:
        try:
            stdout, stderr = self.proc.communicate(timeout=timeout)
            stderr = "".join(self._seen) + stderr
        except subprocess.TimeoutExpired:
            self.proc.kill()
            stdout, stderr = self.proc.communicate()
            stderr = "".join(self._seen) + stderr
            raise AssertionError(f"netcore-call did not end:\n{stderr}")
        summary = json.loads(self.summary_path.read_text()) if self.summary_path.exists() else {}
        return Result(self.proc.returncode, stdout, stderr, summary)


def run_cli(tmp_path: Path, url: str, user: str, *args: str, timeout: float = 60.0) -> Result:
    return Cli(tmp_path, url, user, *args).finish(timeout)


def users(url: str, *names: str, friends: bool = True, passwords: dict[str, str] | None = None) -> None:
    asyncio.run(make_users(url, *names, friends=friends, passwords=passwords))


def the_error(result: Result) -> str:
    """The one error sentence on stderr: exactly one 'netcore-call:' line, no traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("netcore-call:")]
    assert len(lines) == 1, result.stderr
    return lines[0]
