"""Real links for peer tests: network namespaces made (and removed) by the test, peers as processes.

:class:`Netns` is one namespace with a unique name; :class:`PeerProcess` is
``python -m netcore.testing.callpeer`` run inside one, its JSON lines read
by a thread; :func:`connect` passes the offer and the answer between two of
them. The kernel here has no netem: rates come from ``tbf``, random loss and
cuts from nftables rules in an input hook (docs/peer.md, /work/shared notes).
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_program

ROOT = Path(__file__).resolve().parent.parent.parent
_COUNTER = itertools.count()


def sh(*cmd: str) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")
    return done.stdout


def require_namespaces() -> None:
    """Fail (never skip) where namespaces cannot be made: a skipped link test proves nothing."""
    if os.geteuid() != 0:
        pytest.fail("needs root for ip netns")
    require_program("ip")
    require_program("nft")
    require_program("tc")


class Netns:
    """A network namespace with loopback up; ``down()`` deletes it and everything in it."""

    def __init__(self, role: str) -> None:
        self.name = f"ncp{os.getpid() % 100000}{role}{next(_COUNTER)}"
        sh("ip", "netns", "add", self.name)
        self.ex("ip", "link", "set", "lo", "up")

    def ex(self, *cmd: str) -> str:
        return sh("ip", "netns", "exec", self.name, *cmd)

    def nft(self, rules: str) -> None:
        """Load an nftables script (``-f -``) in this namespace."""
        done = subprocess.run(["ip", "netns", "exec", self.name, "nft", "-f", "-"], input=rules,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"nft: {done.stderr.strip()}\n{rules}")

    def popen(self, *cmd: str, **options: Any) -> subprocess.Popen:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        return subprocess.Popen(["ip", "netns", "exec", self.name, *cmd], env=env, cwd=ROOT, **options)

    def down(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False, capture_output=True)


def veth(left: Netns, left_ip: str, right: Netns, right_ip: str, prefix: int = 24) -> tuple[str, str]:
    """A veth pair between two namespaces, addressed and up; the two interface names."""
    tag = f"{os.getpid() % 100000}{next(_COUNTER)}"
    a, b = f"va{tag}", f"vb{tag}"
    sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
    for ns, name, ip in ((left, a, left_ip), (right, b, right_ip)):
        sh("ip", "link", "set", name, "netns", ns.name)
        ns.ex("ip", "addr", "add", f"{ip}/{prefix}", "dev", name)
        ns.ex("ip", "link", "set", name, "up")
    return a, b


class PeerProcess:
    """``netcore.testing.callpeer`` in a namespace; every JSON line it prints, kept in order."""

    def __init__(self, ns: Netns, host: str, *args: str, offer: bool = False) -> None:
        cmd = [sys.executable, "-m", "netcore.testing.callpeer", "--host", host, *args]
        if offer:
            cmd.append("--offer")
        self.stderr = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"callpeer-{ns.name}-{host}.log", "w+")
        self.process = ns.popen(*cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.messages: list[dict] = []
        self._queue: queue.Queue[dict | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            self.messages.append(message)
            self._queue.put(message)
        self._queue.put(None)

    def wait_for(self, kind: str, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no {kind!r} message from the peer: {self.log()}") from None
            if message is None:
                raise RuntimeError(f"the peer ended before {kind!r}: {self.log()}")
            if message["type"] == kind:
                return message

    def send(self, message: dict | str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((message if isinstance(message, str) else json.dumps(message)) + "\n")
        self.process.stdin.flush()

    def of(self, kind: str) -> list[dict]:
        return [m for m in list(self.messages) if m["type"] == kind]

    def decoded(self) -> list[tuple[int, float]]:
        return [tuple(d) for m in self.of("report") + self.of("end") for d in m["decoded"]]

    def sent(self) -> list[tuple[int, float]]:
        return [tuple(d) for m in self.of("report") + self.of("end") for d in m["sent"]]

    def log(self) -> str:
        self.stderr.flush()
        self.stderr.seek(0)
        return self.stderr.read()[-3000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.send("stop")
                self.process.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self._reader.join(5)
        self.stderr.close()


def connect(offerer: PeerProcess, answerer: PeerProcess) -> None:
    answerer.send(offerer.wait_for("offer"))
    offerer.send(answerer.wait_for("answer"))


def wait_until(condition, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()
