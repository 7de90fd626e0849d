"""netcore-turn as an operator runs it: flags, TOML config, metrics, signals, workers."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import aioice.stun as aioice_stun
import aioice.turn as aioice_turn
import pytest

from netcore.stun import attributes as sa
from netcore.stun.message import Message, MessageClass
from netcore.turn import wire as w
from servers.turn.config import OPTIONS
from tests.conftest import free_port
from tests.peers import netcore_turn_process, self_signed_certificate, wait_for_stun
from tests.turn.live import Inbox, echo_peer, free_port_range
from tests.turn.sim import turn_request



def free_tcp_pair() -> int:
    """A TCP port whose successor is free too (worker i serves metrics on port + i)."""
    for _ in range(50):
        port = free_port(socket.SOCK_STREAM)
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no free pair of TCP ports")


def metrics(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[re.sub(r'worker="\d+",?', "", name).replace("{}", "")] = float(value)
    return values


async def log_says(tmp_path, text: str, times: int = 1) -> None:
    """Poll the daemon's log until ``text`` appears ``times`` times (the daemon has no other signal)."""
    deadline = time.monotonic() + 10
    while (tmp_path / "netcore-turn.log").read_text().count(text) < times:
        assert time.monotonic() < deadline, f"{text!r} not logged"
        await asyncio.sleep(0.02)


async def round_trip(transport, inbox: Inbox, peer, payload: bytes) -> None:
    transport.sendto(payload, peer)
    assert await asyncio.wait_for(inbox.queue.get(), 5) == payload


def test_help_explains_every_option():
    done = subprocess.run([sys.executable, "-m", "servers.turn.main", "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    for name, *_ in OPTIONS:
        assert f"--{name}" in done.stdout
    assert "--config" in done.stdout


def test_bad_settings_are_refused_at_start(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('no-such-setting = 1\n')
    for args in (["--config", str(bad)], ["--listen", "localhost"], ["--user", "nopassword"],
                 ["--min-port", "5000", "--max-port", "4000"]):
        done = subprocess.run([sys.executable, "-m", "servers.turn.main", *args], capture_output=True, timeout=20)
        assert done.returncode == 2, args


async def test_toml_config_with_flags_winning_metrics_and_sigterm(tmp_path):
    port, metrics_port = free_port(), free_port()
    low, high = free_port_range(100)
    config = tmp_path / "turn.toml"
    config.write_text(
        f'listen = ["127.0.0.1:{port}"]\n'
        'realm = "from-file"\n'
        'user = ["alice:from-file"]\n'
        'allow-loopback-peers = true\n'
        f'metrics = "127.0.0.1:{metrics_port}"\n'
        f'min-port = {low}\nmax-port = {high}\n'
    )
    with netcore_turn_process(tmp_path, "--config", str(config), "--user", "alice:from-flag",
                              port=port, listen=False) as (proc, port):
        peer_transport, peer = await echo_peer()
        inbox = Inbox()
        with pytest.raises(aioice_stun.TransactionFailed):  # 401 for the old password
            await asyncio.wait_for(aioice_turn.create_turn_endpoint(
                lambda: inbox, ("127.0.0.1", port), "alice", "from-file"), 5)
        transport, _ = await aioice_turn.create_turn_endpoint(lambda: inbox, ("127.0.0.1", port), "alice", "from-flag")
        for i in range(10):
            await round_trip(transport, inbox, peer, b"%d" % i)
        values = metrics(metrics_port)
        assert values["turn_allocations_active"] == 1
        assert values['turn_relayed_packets_total{direction="to_peer"}'] == 10
        assert values['turn_relayed_packets_total{direction="to_client"}'] == 10
        assert values["turn_channels_active"] == 1
        assert values["turn_auth_failures_total"] >= 2
        assert values["turn_native_handoffs_total"] >= 4  # the STUN exchanges went to Python
        assert values["turn_native_handoff_drops_total"] == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        transport.close()
        peer_transport.close()
    log = (tmp_path / "netcore-turn.log").read_text()
    assert "realm" not in log or "from-flag" not in log  # never a password
    assert "from-flag" not in log
    assert re.search(r"allocation created client=127\.0\.0\.1:\d+ .*user=alice relayed=127\.0\.0\.1:(\d+)", log)
    assert re.search(r"allocation shutdown .*packets_to_peer=10 bytes_to_peer=\d+ packets_to_client=10", log)


async def test_sighup_reloads_users_and_keeps_allocations(tmp_path):
    port = free_port()
    low, high = free_port_range(100)
    config = tmp_path / "turn.toml"
    config.write_text(f'user = ["alice:one"]\nallow-loopback-peers = true\nmin-port = {low}\nmax-port = {high}\n')
    with netcore_turn_process(tmp_path, "--config", str(config), port=port) as (proc, port):
        peer_transport, peer = await echo_peer()
        inbox = Inbox()
        transport, _ = await aioice_turn.create_turn_endpoint(lambda: inbox, ("127.0.0.1", port), "alice", "one")
        await round_trip(transport, inbox, peer, b"before")
        config.write_text(f'user = ["bob:two"]\nallow-loopback-peers = true\nmin-port = {low}\nmax-port = {high}\n')
        proc.send_signal(signal.SIGHUP)
        await log_says(tmp_path, "reloaded")
        await round_trip(transport, inbox, peer, b"after")  # the allocation survived
        bob_inbox = Inbox()
        bob, _ = await aioice_turn.create_turn_endpoint(lambda: bob_inbox, ("127.0.0.1", port), "bob", "two")
        await round_trip(bob, bob_inbox, peer, b"bob")
        with pytest.raises(aioice_stun.TransactionFailed):  # 401 for the old password
            await asyncio.wait_for(aioice_turn.create_turn_endpoint(
                Inbox, ("127.0.0.1", port), "alice", "one"), 5)
        for t in (transport, bob, peer_transport):
            t.close()


async def test_two_workers_share_the_port_and_both_relay(tmp_path):
    metrics_port = free_tcp_pair()
    low, high = free_port_range(200)
    with netcore_turn_process(tmp_path, "--workers", "2", "--user", "u:p", "--allow-loopback-peers",
                              "--metrics", f"127.0.0.1:{metrics_port}", "--min-port", str(low),
                              "--max-port", str(high)) as (proc, port):
        peer_transport, peer = await echo_peer()
        clients = []
        for _ in range(16):
            inbox = Inbox()
            transport, _ = await aioice_turn.create_turn_endpoint(lambda inbox=inbox: inbox, ("127.0.0.1", port),
                                                                  "u", "p")
            clients.append((transport, inbox))
        for i, (transport, inbox) in enumerate(clients):
            await round_trip(transport, inbox, peer, b"client %d" % i)
        deadline = time.monotonic() + 10
        while True:
            try:
                per_worker = [metrics(metrics_port + i)["turn_allocations_active"] for i in range(2)]
                break
            except OSError:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
        assert sum(per_worker) == 16 and min(per_worker) >= 1, per_worker
        proc.send_signal(signal.SIGHUP)
        await log_says(tmp_path, "reloaded", times=2)  # both workers
        for i, (transport, inbox) in enumerate(clients):
            await round_trip(transport, inbox, peer, b"again %d" % i)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        for transport, _ in clients:
            transport.close()
        peer_transport.close()


def test_no_arguments_serves_the_built_in_lab_config(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", 3478))
        except OSError:
            pytest.skip("127.0.0.1:3478 is taken on this machine")
    with netcore_turn_process(tmp_path, port=3478, listen=False) as (proc, port):
        wait_for_stun(3478)

        async def allocate():
            inbox = Inbox()
            transport, _ = await aioice_turn.create_turn_endpoint(lambda: inbox, ("127.0.0.1", 3478),
                                                                  "netcore", "netcore")
            transport.close()

        asyncio.run(allocate())


class RawTurnClient:
    """A blocking TURN client made of Message calls, for what aioice cannot ask (IPv6, dual stack)."""

    def __init__(self, server: tuple[str, int], username: str, password: str) -> None:
        from netcore.stun.credentials import long_term_key

        family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.connect(server)
        self.sock.settimeout(5)
        self.username = username
        first = self.request(w.ALLOCATE, (w.REQUESTED_TRANSPORT, 17), signed=False)
        self.realm, self.nonce = first.get(sa.REALM), first.get(sa.NONCE)
        self.key = long_term_key(username, self.realm, password)

    def request(self, method: int, *attributes, signed: bool = True) -> Message:
        message = turn_request(method, *attributes,
                               credentials=(self.username, self.realm, self.nonce) if signed else None)
        self.sock.send(message.encode(self.key if signed else None))
        while True:
            answer = Message.parse(self.sock.recv(2048))
            if answer.transaction_id == message.transaction_id:
                return answer

    def send(self, peer, data: bytes) -> None:
        self.sock.send(Message(w.SEND, MessageClass.INDICATION).add(w.XOR_PEER_ADDRESS, peer)
                       .add(w.DATA_ATTR, data).encode())

    def receive(self) -> tuple[tuple, bytes]:
        indication = Message.parse(self.sock.recv(2048))
        return indication.get(w.XOR_PEER_ADDRESS), indication.get(w.DATA_ATTR)


def test_ipv6_listener_and_dual_stack_allocation(tmp_path):
    v4, v6 = free_port(), free_port(host="127.0.0.1")
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("::1", v6))
        except OSError:
            pytest.skip("no IPv6 loopback")
    low, high = free_port_range(100)
    with netcore_turn_process(tmp_path, "--listen", f"127.0.0.1:{v4}", "--listen", f"[::1]:{v6}",
                              "--relay-ip", "127.0.0.1", "--relay-ip", "::1", "--user", "u:p",
                              "--allow-loopback-peers", "--min-port", str(low), "--max-port", str(high),
                              port=v4, listen=False):
        client = RawTurnClient(("::1", v6), "u", "p")
        answer = client.request(w.ALLOCATE, (w.REQUESTED_TRANSPORT, 17), (w.ADDITIONAL_ADDRESS_FAMILY, 2))
        assert answer.message_class == MessageClass.SUCCESS, answer
        relayed = answer.get_all(w.XOR_RELAYED_ADDRESS)
        assert [r[0] for r in relayed] == ["127.0.0.1", "::1"]
        assert answer.get(sa.XOR_MAPPED_ADDRESS)[0] == "::1"
        peers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)]
        peers[0].bind(("127.0.0.1", 0))
        peers[1].bind(("::1", 0))
        addresses = [p.getsockname()[:2] for p in peers]
        assert client.request(w.CREATE_PERMISSION, *[(w.XOR_PEER_ADDRESS, a) for a in addresses]).message_class \
            == MessageClass.SUCCESS
        for peer, address, via in zip(peers, addresses, relayed, strict=True):
            peer.settimeout(5)
            client.send(address, b"to " + address[0].encode())
            data, seen = peer.recvfrom(100)
            assert data == b"to " + address[0].encode() and seen[:2] == tuple(via)
            peer.sendto(b"back", seen)
            assert client.receive() == (address, b"back")
            # and over a channel, through the fast path of an IPv6 listener
            number = 0x4000 + len(address[0])
            assert client.request(w.CHANNEL_BIND, (w.CHANNEL_NUMBER, number),
                                  (w.XOR_PEER_ADDRESS, address)).message_class == MessageClass.SUCCESS
            client.sock.send(w.encode_channel_data(number, b"over a channel"))
            data, seen = peer.recvfrom(100)
            assert data == b"over a channel" and seen[:2] == tuple(via)
            peer.sendto(b"channel back", seen)
            assert w.parse_channel_data(client.sock.recv(100)) == (number, b"channel back")
            peer.close()
        assert client.request(w.REFRESH, (w.LIFETIME, 0)).message_class == MessageClass.SUCCESS


def test_external_ip_is_what_clients_are_told(tmp_path):
    low, high = free_port_range(100)
    with netcore_turn_process(tmp_path, "--user", "u:p", "--relay-ip", "127.0.0.1", "--external-ip", "192.0.2.77",
                              "--min-port", str(low), "--max-port", str(high)) as (_, port):
        client = RawTurnClient(("127.0.0.1", port), "u", "p")
        answer = client.request(w.ALLOCATE, (w.REQUESTED_TRANSPORT, 17))
        host, relayed_port = answer.get(w.XOR_RELAYED_ADDRESS)
        assert host == "192.0.2.77" and low <= relayed_port <= high
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # bound locally on the relay IP
            with pytest.raises(OSError):
                probe.bind(("127.0.0.1", relayed_port))


def der_certificate(path) -> bytes:
    import ssl

    return ssl.PEM_cert_to_DER_cert(path.read_text())


def _served_certificate(port: int) -> bytes:
    import ssl

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw) as tls:
            return tls.getpeercert(binary_form=True)


async def test_sighup_reloads_the_tls_certificate(tmp_path):
    tls = free_port(socket.SOCK_STREAM)
    first = der_certificate(self_signed_certificate(tmp_path, "first")[0])
    with netcore_turn_process(tmp_path, "--user", "u:p", "--tls-listen", f"127.0.0.1:{tls}", "--cert",
                              str(tmp_path / "cert.pem"), "--key", str(tmp_path / "key.pem")) as (proc, _):
        assert _served_certificate(tls) == first
        second = der_certificate(self_signed_certificate(tmp_path, "second")[0])
        proc.send_signal(signal.SIGHUP)
        await log_says(tmp_path, "reloaded")
        assert _served_certificate(tls) == second


def test_garbage_on_every_listener_leaves_the_daemon_serving(tmp_path):
    import random

    tcp, metrics_port = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM)
    with netcore_turn_process(tmp_path, "--user", "u:p", "--tcp-listen", f"127.0.0.1:{tcp}",
                              "--metrics", f"127.0.0.1:{metrics_port}") as (proc, port):
        rng = random.Random(7)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(2000):
                prefix = bytes([rng.choice([0x00, 0x01, 0x40, 0x4F, 0x7F, 0x80, 0xFF])])
                s.sendto(prefix + rng.randbytes(rng.randrange(0, 300)), ("127.0.0.1", port))
        for first in (b"\x00\x01\xff\xff", b"\x41\x00\xff\xff", b"\x20garbage", b"\x40\x00\x00\x05abc"):
            with socket.create_connection(("127.0.0.1", tcp), timeout=5) as c:
                c.sendall(first + bytes(64))
                c.shutdown(socket.SHUT_WR)
                with contextlib.suppress(OSError):
                    while c.recv(4096):
                        pass  # the daemon closes (bad framing) or waits for more; either way it lives on
        wait_for_stun(port)
        assert proc.poll() is None
        assert metrics(metrics_port)["turn_parse_errors_total"] > 0
        client = RawTurnClient(("127.0.0.1", port), "u", "p")
        assert client.request(w.ALLOCATE, (w.REQUESTED_TRANSPORT, 17)).message_class == MessageClass.SUCCESS
