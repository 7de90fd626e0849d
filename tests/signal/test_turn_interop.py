"""The TURN credentials in `welcome` are accepted by a real coturn (REST API secret)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading

import pytest

from tests.conftest import free_port, free_port_both, require_program

from .helpers import login, register

SECRET = "crypt1c"


@pytest.fixture
def coturn(tmp_path):
    turnserver = require_program("turnserver")
    peer_program = require_program("turnutils_peer")
    (tmp_path / "empty.conf").write_text("")
    port, peer_port = free_port_both(), free_port(socket.SOCK_DGRAM)
    relay_low = free_port(socket.SOCK_DGRAM)
    turn = subprocess.Popen(
        [turnserver, "-c", str(tmp_path / "empty.conf"), "-n", "--listening-ip=127.0.0.1",
         f"--listening-port={port}", "--relay-ip=127.0.0.1", f"--min-port={relay_low}",
         f"--max-port={relay_low + 50}", "--use-auth-secret", f"--static-auth-secret={SECRET}",
         "--realm=example", "--fingerprint", "--allow-loopback-peers", "--no-tls", "--no-dtls", "--no-cli",
         f"--userdb={tmp_path / 'turndb'}", f"--pidfile={tmp_path / 'turn.pid'}", "--log-file=stdout",
         "--simple-log"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peer = subprocess.Popen([peer_program, "-L", "127.0.0.1", "-p", str(peer_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for line in turn.stdout:  # coturn logs this once its listeners are set up
            if b"Total General servers" in line:
                break
        # keep reading its log so that a full pipe never stalls it
        threading.Thread(target=turn.stdout.read, daemon=True).start()
        yield port, peer_port
    finally:
        for proc in (turn, peer):
            proc.terminate()
            proc.wait(10)


def uclient(port: int, peer_port: int, username: str, password: str) -> str:
    program = require_program("turnutils_uclient")
    result = subprocess.run([program, "-u", username, "-w", password, "-e", "127.0.0.1", "-r", str(peer_port),
                             "-m", "1", "-n", "5", "-l", "100", "-c", "-p", str(port), "127.0.0.1"],
                            capture_output=True, timeout=30)
    return (result.stdout + result.stderr).decode(errors="replace")


async def test_welcome_turn_credentials_allocate_on_coturn(start_server, names, coturn):
    port, peer_port = coturn
    server = await start_server(turn_secret=SECRET, turn_urls=[f"turn:127.0.0.1:{port}?transport=udp"])
    user = names()
    await register(server.port, user)
    client = await login(server.port, user)
    [turn] = [s for s in client.welcome["payload"]["ice_servers"] if "credential" in s]
    out = await asyncio.to_thread(uclient, port, peer_port, turn["username"], turn["credential"])
    assert "tot_recv_msgs=5" in out, out
    wrong = await asyncio.to_thread(uclient, port, peer_port, turn["username"], "AAAA" + turn["credential"][4:])
    assert "Cannot complete Allocation" in wrong
