"""Fixtures: an in-process signaling node on a free loopback port."""

from __future__ import annotations

import itertools

import pytest

from servers.signal.config import SignalConfig
from servers.signal.server import SignalServer

_names = itertools.count(1)


@pytest.fixture
def names():
    """Fresh user names (valid usernames) per call."""
    return lambda prefix="u": f"{prefix}_{next(_names)}"


@pytest.fixture
async def start_server(tmp_path):
    started: list[SignalServer] = []

    async def start(**overrides) -> SignalServer:
        fields = dict(host="127.0.0.1", port=0, data_dir=str(tmp_path / f"node{len(started)}"),
                      ring_timeout=1.0, resume_window=1.0, token_secret="test-secret",
                      turn_secret="crypt1c", turn_urls=["turn:127.0.0.1:3478?transport=udp"],
                      stun_urls=["stun:127.0.0.1:3478"], log_level="WARNING")
        fields.update(overrides)
        server = SignalServer(SignalConfig(**fields))
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


@pytest.fixture
async def server(start_server):
    return await start_server()
