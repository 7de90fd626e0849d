"""Shared test fixtures: hypothesis profiles, real-peer discovery, free ports, stopping a real peer."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "default")


def require_program(name: str) -> str:
    """Path of a real peer program; fail under CI when it is missing, else skip.

    CI installs every peer (.ci/deps), so a missing one there is a broken
    install step, not a reason to skip.
    """
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (bash .ci/deps installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Ask ``process`` to end (SIGTERM); kill it if it has not within ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port(kind: int = socket.SOCK_DGRAM, host: str = "127.0.0.1") -> int:
    """A port on loopback that is free for ``kind`` right now."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_port_both(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on ``host``."""
    for _ in range(50):
        port = free_port(socket.SOCK_DGRAM, host)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                t.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no port free for both UDP and TCP")


@pytest.fixture(scope="module", params=["compiled", "python"])
def stun_codec(request):
    """Run a module's tests once with the STUN codec's byte work compiled and once in Python.

    Both must give the same bytes and verdicts (:mod:`netcore.stun.compiled`);
    the compiled run fails under CI when the extension was not built, and is
    skipped elsewhere.
    """
    from netcore.stun import compiled

    if request.param == "compiled" and not compiled.available():
        message = "netcore.stun._codec was not built (python3 setup.py build_ext --inplace)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    before = compiled.codec is not None
    compiled.use(request.param == "compiled")
    yield request.param
    compiled.use(before)
