"""Our daemon against real TURN clients: coturn's turnutils_uclient and aioice."""

from __future__ import annotations

import asyncio
import re
import socket
import time
import urllib.request

import pytest

from netcore.turn.credentials import rest_api_password, rest_api_username
from tests.conftest import free_port
from tests.peers import netcore_turn, turnutils_peer, turnutils_uclient

LAB = ("--allow-loopback-peers", "--legacy-channel-numbers", "--min-port", "41000", "--max-port", "41999")


def assert_no_loss(output: str, clients: int) -> None:
    lost = re.findall(r"Total lost packets (\d+)", output)
    assert lost, output[-2000:]
    assert lost[-1] == "0", output[-2000:]
    assert "error" not in output.lower(), output[-2000:]


@pytest.mark.parametrize("mode", ["channels", "send-indications", "channels-no-rtcp"])
def test_uclient_static_user(tmp_path, mode):
    extra = {"channels": [], "send-indications": ["-s"], "channels-no-rtcp": ["-c"]}[mode]
    with netcore_turn(tmp_path, *LAB, "--user", "test:test") as port, turnutils_peer(tmp_path) as peer:
        output = turnutils_uclient(port, peer, "-u", "test", "-w", "test", "-m", "4", "-n", "100", "-l", "160",
                                   "-z", "2", *extra)
    assert_no_loss(output, 4)


def test_uclient_rest_secret(tmp_path):
    with netcore_turn(tmp_path, *LAB, "--auth-secret", "sekrit") as port, turnutils_peer(tmp_path) as peer:
        output = turnutils_uclient(port, peer, "-W", "sekrit", "-u", "alice", "-m", "2", "-n", "100", "-l", "1200",
                                   "-z", "2")
    assert_no_loss(output, 2)


def test_uclient_wrong_password_is_refused(tmp_path):
    with netcore_turn(tmp_path, *LAB, "--user", "test:test") as port, turnutils_peer(tmp_path) as peer:
        output = turnutils_uclient(port, peer, "-u", "test", "-w", "nope", "-m", "1", "-n", "5", timeout=30)
    assert "401" in output or "Unauthorized" in output or "error" in output.lower()


async def test_aioice_turn_client_relays_to_a_peer(tmp_path):
    aioice_turn = pytest.importorskip("aioice.turn")
    with netcore_turn(tmp_path, "--allow-loopback-peers", "--user", "alice:wonderland",
                      "--min-port", "42000", "--max-port", "42099") as port:
        loop = asyncio.get_running_loop()
        peer_received: asyncio.Queue = asyncio.Queue()
        client_received: asyncio.Queue = asyncio.Queue()

        class Peer(asyncio.DatagramProtocol):
            def connection_made(self, transport):
                self.transport = transport

            def datagram_received(self, data, addr):
                peer_received.put_nowait((data, addr))
                self.transport.sendto(b"echo:" + data, addr)

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                client_received.put_nowait((data, addr))

        peer_transport, _ = await loop.create_datagram_endpoint(Peer, local_addr=("127.0.0.1", 0))
        peer_addr = peer_transport.get_extra_info("sockname")
        transport, _ = await aioice_turn.create_turn_endpoint(
            Client, ("127.0.0.1", port), "alice", "wonderland")
        try:
            relayed = transport.get_extra_info("related_address") or transport.get_extra_info("sockname")
            for i in range(20):
                transport.sendto(b"ping %d" % i, peer_addr)
            got = [await asyncio.wait_for(client_received.get(), 5) for _ in range(20)]
            assert sorted(d for d, _ in got) == sorted(b"echo:ping %d" % i for i in range(20))
            assert all(addr == peer_addr for _, addr in got)
            data, seen_from = await peer_received.get()
            assert seen_from[0] == "127.0.0.1" and seen_from[1] != port  # came from the relayed port
            assert relayed is not None
        finally:
            transport.close()
            peer_transport.close()


async def test_aioice_relay_to_loopback_is_refused_by_default(tmp_path):
    aioice_turn = pytest.importorskip("aioice.turn")
    metrics_port = free_port()
    with netcore_turn(tmp_path, "--user", "alice:wonderland", "--min-port", "42100", "--max-port", "42199",
                      "--metrics", f"127.0.0.1:{metrics_port}") as port:
        transport, _ = await aioice_turn.create_turn_endpoint(
            asyncio.DatagramProtocol, ("127.0.0.1", port), "alice", "wonderland")
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            peer.bind(("127.0.0.1", 0))
            peer.setblocking(False)
            transport.sendto(b"x", peer.getsockname())  # aioice asks ChannelBind first: 403
            deadline = time.monotonic() + 10
            while "turn_denied_peers_total{worker=\"0\"} 1" not in scrape(metrics_port):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            assert 'turn_errors_total{worker="0",code="403"} 1' in scrape(metrics_port)
            with pytest.raises(BlockingIOError):
                peer.recv(100)
        finally:
            peer.close()
            transport.close()


def scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
