"""Our daemon against real TURN clients: coturn's turnutils_uclient and aioice."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import time
import urllib.request

import aioice.turn as aioice_turn
import pytest

from tests.conftest import free_port, free_port_both, require_program
from tests.turn.live import Inbox, echo_peer, free_port_range
from tests.peers import netcore_turn, self_signed_certificate, turnutils_peer, turnutils_uclient

def lab() -> tuple[str, ...]:
    """Flags of a lab relay: loopback peers, coturn's channel numbers, relay ports free right now."""
    low, high = free_port_range(1000)
    return ("--allow-loopback-peers", "--legacy-channel-numbers", "--min-port", str(low), "--max-port", str(high))


def assert_no_loss(output: str, clients: int, *, tls: bool = False) -> None:
    lost = re.findall(r"Total lost packets (\d+)", output)
    assert lost, output[-2000:]
    assert lost[-1] == "0", output[-2000:]
    sent = re.findall(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\n", output)
    assert sent and sent[-1][0] == sent[-1][1] != "0", output[-2000:]
    errors = [line for line in output.lower().splitlines() if "error" in line]
    if tls:
        # turnutils_uclient tries TLS 1.0 and 1.1 contexts too, which we refuse
        # (TLS 1.2 is our minimum); it retries until a handshake succeeds.
        errors = [e for e in errors if "unexpected eof" not in e and "errno=0" not in e]
    assert not errors, output[-2000:]


@pytest.mark.parametrize("data_path", ["native", "python"])
@pytest.mark.parametrize("mode", ["channels", "send-indications", "channels-no-rtcp"])
def test_uclient_static_user(tmp_path, mode, data_path):
    extra = {"channels": [], "send-indications": ["-s"], "channels-no-rtcp": ["-c"]}[mode]
    with netcore_turn(tmp_path, *lab(), "--user", "test:test", "--data-path", data_path) as port, \
            turnutils_peer(tmp_path) as peer:
        output = turnutils_uclient(port, peer, "-u", "test", "-w", "test", "-m", "4", "-n", "100", "-l", "160",
                                   "-z", "2", *extra)
    assert_no_loss(output, 4)


def test_uclient_rest_secret(tmp_path):
    with netcore_turn(tmp_path, *lab(), "--auth-secret", "sekrit") as port, turnutils_peer(tmp_path) as peer:
        output = turnutils_uclient(port, peer, "-W", "sekrit", "-u", "alice", "-m", "2", "-n", "100", "-l", "1200",
                                   "-z", "2")
    assert_no_loss(output, 2)


def test_uclient_wrong_password_is_refused(tmp_path):
    with netcore_turn(tmp_path, *lab(), "--user", "test:test") as port, turnutils_peer(tmp_path) as peer:
        output = turnutils_uclient(port, peer, "-u", "test", "-w", "nope", "-m", "1", "-n", "5", timeout=30)
    assert "401" in output or "Unauthorized" in output or "error" in output.lower()


async def test_aioice_turn_client_relays_to_a_peer(tmp_path):
    low, high = free_port_range(100)
    with netcore_turn(tmp_path, "--allow-loopback-peers", "--user", "alice:wonderland",
                      "--min-port", str(low), "--max-port", str(high)) as port:
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
    low, high = free_port_range(100)
    metrics_port = free_port()
    with netcore_turn(tmp_path, "--user", "alice:wonderland", "--min-port", str(low), "--max-port", str(high),
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


@pytest.fixture
def certificate(tmp_path):
    return self_signed_certificate(tmp_path)


@pytest.mark.parametrize("mode", ["channels", "send-indications"])
def test_uclient_over_tcp(tmp_path, mode):
    tcp = free_port_both()
    extra = ["-s"] if mode == "send-indications" else []
    with netcore_turn(tmp_path, *lab(), "--user", "test:test", "--tcp-listen", f"127.0.0.1:{tcp}"), \
            turnutils_peer(tmp_path) as peer:
        output = turnutils_uclient(tcp, peer, "-t", "-u", "test", "-w", "test", "-m", "2", "-n", "50", "-l", "161",
                                   "-z", "5", *extra)
    assert_no_loss(output, 2)


def test_uclient_over_tls(tmp_path, certificate):
    tls = free_port_both()
    cert, key = certificate
    with netcore_turn(tmp_path, *lab(), "--user", "test:test", "--tls-listen", f"127.0.0.1:{tls}",
                      "--cert", str(cert), "--key", str(key)), turnutils_peer(tmp_path) as peer:
        output = turnutils_uclient(tls, peer, "-t", "-S", "-u", "test", "-w", "test", "-m", "2", "-n", "50",
                                   "-l", "161", "-z", "5")
    assert_no_loss(output, 2, tls=True)


async def test_aioice_over_tcp_and_the_allocation_ends_with_the_connection(tmp_path):
    low, high = free_port_range(100)
    tcp, metrics_port = free_port_both(), free_port()
    with netcore_turn(tmp_path, "--allow-loopback-peers", "--user", "alice:wonderland", "--tcp-listen",
                      f"127.0.0.1:{tcp}", "--metrics", f"127.0.0.1:{metrics_port}",
                      "--min-port", str(low), "--max-port", str(high)):
        peer_transport, peer = await echo_peer()
        inbox = Inbox()
        transport, _ = await aioice_turn.create_turn_endpoint(lambda: inbox, ("127.0.0.1", tcp), "alice",
                                                              "wonderland", transport="tcp")
        try:
            for size in (1, 2, 3, 5, 160, 1201):  # odd sizes exercise the 4-byte padding
                transport.sendto(bytes(size), peer)
                assert await asyncio.wait_for(inbox.queue.get(), 5) == bytes(size)
            assert 'turn_allocations_active{worker="0"} 1' in scrape(metrics_port)
        finally:
            transport.close()
            peer_transport.close()
        deadline = time.monotonic() + 10
        while 'turn_allocations_active{worker="0"} 0' not in scrape(metrics_port):
            assert time.monotonic() < deadline, "closing the connection did not delete the allocation"
            await asyncio.sleep(0.05)


def test_uclient_tcp_relay_rfc_6062(tmp_path):
    """-T: TCP allocations, client to client: Connect on one side, ConnectionAttempt on the other."""
    low, high = free_port_range(100)
    tcp, metrics = free_port_both(), free_port()
    with netcore_turn(tmp_path, "--allow-loopback-peers", "--user", "test:test", "--tcp-listen",
                      f"127.0.0.1:{tcp}", "--min-port", str(low), "--max-port", str(high),
                      "--metrics", f"127.0.0.1:{metrics}"):
        program = require_program("turnutils_uclient")
        done = subprocess.run([program, "-T", "-u", "test", "-w", "test", "-m", "2", "-n", "50", "-l", "160",
                               "-z", "5", "-p", str(tcp), "127.0.0.1"], capture_output=True, timeout=60)
        text = scrape(metrics)
    assert_no_loss((done.stdout + done.stderr).decode("utf-8", "replace"), 2)
    # Both clients' data crossed the relay both ways over the peer connections: 2 x 50 x 160 bytes each way.
    for direction in ("to_peer", "to_client"):
        counted = re.search(rf'turn_relayed_bytes_total{{worker="0",direction="{direction}"}} (\d+)', text)
        assert counted and int(counted.group(1)) >= 2 * 50 * 160, text


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
async def test_our_turn_client_through_our_daemon(tmp_path, transport):
    """The two halves of issue 3 together: netcore.turn.aio_client against netcore-turn."""
    low, high = free_port_range(100)
    import ssl

    from netcore.turn.aio_client import open_turn_endpoint

    stream = free_port_both()
    cert, key = self_signed_certificate(tmp_path)
    args = {"udp": [], "tcp": ["--tcp-listen", f"127.0.0.1:{stream}"],
            "tls": ["--tls-listen", f"127.0.0.1:{stream}", "--cert", str(cert), "--key", str(key)]}[transport]
    peer_transport, peer = await echo_peer()
    with netcore_turn(tmp_path, "--allow-loopback-peers", "--user", "test:test", "--min-port", str(low),
                      "--max-port", str(high), *args) as port:
        options = {}
        if transport == "tls":
            options = {"ssl": ssl.create_default_context(cafile=str(cert)), "server_hostname": "localhost"}
        server = ("127.0.0.1", port if transport == "udp" else stream)
        endpoint = await open_turn_endpoint(server, "test", "test", transport=transport, **options)
        try:
            assert endpoint.relayed_address[0] == "127.0.0.1"
            for i in range(5):  # Send and Data indications
                endpoint.sendto(b"indication %d" % i, peer)
                assert await asyncio.wait_for(endpoint.recvfrom(), 5) == (b"indication %d" % i, peer)
            await endpoint.bind_channel(peer)
            for size in (1, 3, 160, 1200):  # ChannelData both ways, odd sizes padded over streams
                endpoint.sendto(bytes(size), peer)
                assert await asyncio.wait_for(endpoint.recvfrom(), 5) == (bytes(size), peer)
        finally:
            await endpoint.close()
            peer_transport.close()
