"""What an attacker and a careful operator found in the relay, each kept from coming back.

The endpoint tests run the asyncio endpoint in this process on 127.0.0.1,
once with each data path (compiled and Python).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct

import pytest
from hypothesis import given, strategies as st

from netcore.stun import attributes as sa
from netcore.stun.message import BINDING, Message, MessageClass
from netcore.turn import wire as w
from netcore.turn.aio_server import SocketRelays, TurnServerEndpoint, open_stream_socket, open_udp_socket
from netcore.turn.credentials import rest_api_expiry
from netcore.turn.server import ServerConfig, TurnServer
from tests.turn.live import echo_peer, free_port_range
from tests.turn.sim import Client, error_code, make_server


@pytest.fixture(params=["native", "python"])
def data_path(request):
    return request.param


@contextlib.asynccontextmanager
async def endpoint_on_loopback(data_path: str, core_class=TurnServer, **config):
    low, high = free_port_range(20)
    relays = SocketRelays({1: "127.0.0.1"}, low, high)
    config.setdefault("users", {"alice": "wonderland"})
    core = core_class(ServerConfig(allow_loopback_peers=True, **config), relays)
    endpoint = TurnServerEndpoint(core, relays, None, native=data_path == "native")
    assert (endpoint.native is not None) == (data_path == "native")
    port = endpoint.add_listener(open_udp_socket("127.0.0.1", 0))[1]
    try:
        yield endpoint, ("127.0.0.1", port)
    finally:
        endpoint.close()


def signed_allocate(username: str) -> bytes:
    """An Allocate with a MESSAGE-INTEGRITY under ``username``: the server has to look the user up.

    Built by hand, since our encoder refuses a USERNAME over 512 bytes and an
    attacker's does not; the MAC is garbage (it is checked after the lookup).
    """
    attributes = ((w.REQUESTED_TRANSPORT, bytes([17, 0, 0, 0])), (sa.USERNAME, username.encode()),
                  (sa.REALM, b"netcore"), (sa.NONCE, b"x" * 24), (sa.MESSAGE_INTEGRITY, bytes(20)))
    body = b"".join(struct.pack("!HH", kind, len(value)) + value + bytes(-len(value) & 3)
                    for kind, value in attributes)
    return struct.pack("!HHI", w.ALLOCATE, len(body), 0x2112A442) + os.urandom(12) + body


def udp_client() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


async def answers(sock: socket.socket, count: int, timeout: float = 5.0) -> list[Message]:
    loop = asyncio.get_running_loop()
    got = []
    async with asyncio.timeout(timeout):
        while len(got) < count:
            got.append(Message.parse(await loop.sock_recv(sock, 2048)))
    return got


# -- 1. REST usernames, and a batch that survives one bad input ---------------------------------

MALFORMED_EXPIRIES = ["²", "١٢٣", "9" * 5000, "9" * 21, "12a", "", "+5", " 5", "1_000"]


@pytest.mark.parametrize("head", MALFORMED_EXPIRIES, ids=lambda h: f"{h[:5]!r}x{len(h)}")
def test_rest_username_with_a_malformed_expiry_is_401(head):
    server, _ = make_server(users={}, auth_secrets=("s",))
    client = Client(server)
    answer = Message.parse(client.send_raw(signed_allocate(f"{head}:x"))[0][0])
    assert error_code(answer) == 401
    assert rest_api_expiry(f"{head}:x") is None


@given(st.text(max_size=60))
def test_rest_api_expiry_never_raises(username):
    expiry = rest_api_expiry(username)
    assert expiry is None or username.partition(":")[0].isascii()


async def test_a_burst_of_malformed_rest_usernames_gets_401s_and_binding_still_answers(data_path, caplog):
    async with endpoint_on_loopback(data_path, users={}, auth_secrets=("s",)) as (endpoint, server):
        attacker, bystander = udp_client(), udp_client()
        binding = Message(BINDING, MessageClass.REQUEST).encode()
        loop = asyncio.get_running_loop()
        answered = loop.create_task(answers(bystander, 1))
        for i in range(300):
            attacker.sendto(signed_allocate(("²" if i % 2 else "9" * 5000) + ":x"), server)
            if i % 10 == 9:  # paced, so that the kernel and hand-off queues do not overflow
                if i % 50 == 49 and not answered.done():
                    bystander.sendto(binding, server)  # a STUN client retransmits
                await asyncio.sleep(0.002)
        (answer,) = await answered
        assert answer.transaction_id == binding[8:20]
        assert answer.message_class == MessageClass.SUCCESS
        first = (await answers(attacker, 1))[0]
        assert error_code(first) == 401
        assert endpoint.faults.count == 0
        attacker.close()
        bystander.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


class _FaultyCore(TurnServer):
    """A core with a bug on one input (a datagram starting with b"\\x00\\x01boom"), by either way in: the
    compiled data path hands a listener's datagrams to ``handle_client_stun``."""

    def handle_datagram(self, datagram, now):
        if datagram.data.startswith(b"\x00\x01boom"):
            raise ValueError("a bug of ours")
        super().handle_datagram(datagram, now)

    def handle_client_stun(self, data, source, listener, now):
        if data.startswith(b"\x00\x01boom"):
            raise ValueError("a bug of ours")
        super().handle_client_stun(data, source, listener, now)


async def test_an_exception_on_one_input_is_logged_once_and_the_batch_goes_on(data_path, caplog):
    caplog.set_level(logging.ERROR)
    async with endpoint_on_loopback(data_path, core_class=_FaultyCore) as (endpoint, server):
        client = udp_client()
        bindings = []
        for _ in range(20):  # sent before the loop runs: one batch, a poison after each Binding
            binding = Message(BINDING, MessageClass.REQUEST)
            bindings.append(binding.transaction_id)
            client.sendto(binding.encode(), server)
            client.sendto(b"\x00\x01boom" + bytes(20), server)
        got = await answers(client, 20)
        assert sorted(m.transaction_id for m in got) == sorted(bindings)
        client.sendto(Message(BINDING, MessageClass.REQUEST).encode(), server)
        await answers(client, 1)  # after the last poison
        assert endpoint.faults.count == 20
        client.close()
    lines = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].name == "netcore.turn" and "ValueError" in lines[0].getMessage()
    assert lines[0].exc_info is None


# -- 2. TCP/TLS connections: deadline, per-source cap, buffered bytes, file descriptors --------

@contextlib.asynccontextmanager
async def stream_endpoint(**limits):
    async with endpoint_on_loopback("python") as (endpoint, _):
        for name, value in limits.items():
            setattr(endpoint.limits, name, value)
        local = await endpoint.add_stream_listener(open_stream_socket("127.0.0.1", 0))
        yield endpoint, local[:2]


async def closed_by_server(reader: asyncio.StreamReader, timeout: float = 5.0) -> bool:
    """True if the server closes (or resets) the connection within ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
            return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


async def binding_over(reader, writer) -> bool:
    request = Message(BINDING, MessageClass.REQUEST)
    writer.write(request.encode())
    async with asyncio.timeout(5):
        header = await reader.readexactly(20)
        body = await reader.readexactly(int.from_bytes(header[2:4], "big"))
    return Message.parse(header + body).transaction_id == request.transaction_id


async def test_a_connection_that_never_allocates_is_closed_after_the_deadline():
    async with stream_endpoint(auth_timeout=0.3) as (endpoint, server):
        reader, writer = await asyncio.open_connection(*server)
        assert await binding_over(reader, writer)  # served meanwhile, but a Binding is no allocation
        assert await closed_by_server(reader)
        writer.close()
        await asyncio.sleep(0)
        assert not endpoint.streams and not endpoint.stream_sources


async def test_connections_per_source_are_capped():
    async with stream_endpoint(per_source=3) as (endpoint, server):
        connections = [await asyncio.open_connection(*server) for _ in range(5)]
        for reader, writer in connections[:3]:
            assert await binding_over(reader, writer)
        for reader, _ in connections[3:]:
            assert await closed_by_server(reader)
        assert not await closed_by_server(connections[0][0], 0.2)
        assert endpoint.stream_sources == {"127.0.0.1": 3}
        connections[0][1].close()
        await closed_by_server(connections[0][0])
        await asyncio.sleep(0.05)
        reader, writer = await asyncio.open_connection(*server)  # a slot came free
        assert await binding_over(reader, writer)
        for _, w_ in connections + [(reader, writer)]:
            w_.close()


async def test_partial_frames_are_bounded_in_bytes_over_all_connections():
    async with stream_endpoint(buffered_bytes=100_000) as (endpoint, server):
        connections = [await asyncio.open_connection(*server) for _ in range(4)]
        for _, writer in connections:  # a STUN header announcing 60,000 bytes, then 40,000 of them
            writer.write(struct.pack("!HHI", BINDING, 60_000, 0x2112A442) + bytes(12) + bytes(40_000))
        closed = [await closed_by_server(reader, 1.0) if i >= 2 else None for i, (reader, _) in
                  enumerate(connections)]
        assert any(closed)
        assert endpoint.stream_buffered <= 100_000
        for _, writer in connections:
            writer.close()
        await asyncio.sleep(0.05)
        assert endpoint.stream_buffered == 0


async def test_connections_stay_below_half_the_file_descriptor_limit():
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = len(os.listdir("/proc/self/fd")) + 100  # room for what this process holds already
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        async with endpoint_on_loopback("python") as (endpoint, _):
            assert endpoint.limits.max_connections == lowered // 2
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    async with stream_endpoint(max_connections=4) as (endpoint, server):
        connections = [await asyncio.open_connection(*server) for _ in range(6)]
        assert sum([await closed_by_server(reader, 0.5) for reader, _ in connections]) == 2
        for _, writer in connections:
            writer.close()


async def test_relay_sockets_that_cannot_be_opened_are_logged(caplog):
    from netcore.turn.aio_client import open_turn_endpoint
    from netcore.turn.aio_client import TurnError

    caplog.set_level(logging.WARNING)
    async with endpoint_on_loopback("python") as (endpoint, server):
        endpoint.relays.relay_ips[1] = "192.0.2.1"  # not an address of this host
        with pytest.raises(TurnError):
            await open_turn_endpoint(server, "alice", "wonderland")
        assert endpoint.core.stats.by_error.get(508) == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "netcore.turn" and r.levelno >= logging.WARNING]
    assert any("relay socket 192.0.2.1:" in line for line in lines), lines
    assert len(lines) == 1, lines


# -- 3. TOML booleans are booleans -------------------------------------------------------------

@pytest.mark.parametrize("line", ['allow-loopback-peers = "false"', 'legacy-channel-numbers = "false"',
                                  "allow-loopback-peers = 0", 'min-port = "50000"', "max-port = true"])
def test_a_setting_of_the_wrong_type_is_refused_at_start_naming_the_key(tmp_path, line):
    import subprocess
    import sys

    config = tmp_path / "turn.toml"
    config.write_text(line + "\n")
    done = subprocess.run([sys.executable, "-m", "servers.turn.main", "--config", str(config)],
                          capture_output=True, text=True, timeout=20)
    assert done.returncode == 2
    assert line.split(" =")[0] + ":" in done.stderr


def test_booleans_from_the_file_are_taken_as_written(tmp_path):
    from servers.turn.config import build_parser, load_settings

    config = tmp_path / "turn.toml"
    config.write_text("allow-loopback-peers = false\nlegacy-channel-numbers = true\n")
    settings = load_settings(build_parser().parse_args(["--config", str(config)]))
    assert settings["allow-loopback-peers"] is False
    assert settings.server_config().channel_max == 0x7FFF


async def test_a_reload_with_a_string_boolean_keeps_the_old_settings(tmp_path):
    import signal

    from netcore.turn.aio_client import open_turn_endpoint
    from tests.conftest import free_port
    from tests.peers import netcore_turn_process
    from tests.turn.test_daemon import log_says

    low, high = free_port_range(20)
    config = tmp_path / "turn.toml"
    config.write_text(f'user = ["alice:one"]\nallow-loopback-peers = true\nmin-port = {low}\nmax-port = {high}\n')
    peer_transport, peer = await echo_peer()
    with netcore_turn_process(tmp_path, "--config", str(config), port=free_port()) as (proc, port):
        config.write_text(f'user = ["alice:one"]\nallow-loopback-peers = "false"\nmin-port = {low}\n'
                          f'max-port = {high}\n')
        proc.send_signal(signal.SIGHUP)
        await log_says(tmp_path, "reload failed")
        client = await open_turn_endpoint(("127.0.0.1", port), "alice", "one")
        await client.bind_channel(peer)  # loopback peers still allowed: the old settings stand
        client.sendto(b"ping", peer)
        data, _ = await asyncio.wait_for(client.recvfrom(), 5)
        assert data == b"ping"
        await client.close()
    peer_transport.close()
    log = (tmp_path / "netcore-turn.log").read_text()
    assert log.count("reload failed") == 1
    assert "allow-loopback-peers" in log.split("reload failed")[1].splitlines()[0]


# -- 4. EVEN-PORT and the user quota, the port search, the relay address ------------------------

def test_even_port_reservations_count_against_the_user_quota():
    server, _ = make_server(user_quota=3)
    held = []
    for index in range(3):
        client = Client(server, addr=("198.51.100.7", 1000 + index))
        held.append(client.allocate((w.EVEN_PORT, True)))
    assert error_code(held[0]) is None and held[0].get(w.RESERVATION_TOKEN) is not None
    assert error_code(held[1]) == 486  # one allocation and one reservation held, two more asked
    assert server.per_user["alice"] == 2
    token = held[0].get(w.RESERVATION_TOKEN)
    user = Client(server, addr=("198.51.100.7", 2000))
    assert error_code(user.allocate((w.RESERVATION_TOKEN, token))) is None  # one's own reservation
    assert server.per_user["alice"] == 2
    assert error_code(Client(server, addr=("198.51.100.7", 2001)).allocate()) is None
    assert error_code(Client(server, addr=("198.51.100.7", 2002)).allocate()) == 486


def test_an_unused_reservation_gives_its_quota_back():
    server, _ = make_server(user_quota=2)
    client = Client(server)
    assert error_code(client.allocate((w.EVEN_PORT, True))) is None
    assert server.per_user["alice"] == 2
    server.handle_timeout(31.0)
    assert server.per_user["alice"] == 1


def test_a_free_port_is_found_beyond_256_busy_ones_from_the_cursor():
    low, high = free_port_range(300)
    busy = []
    for port in range(low, low + 280):  # another program holds these
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", port))
        busy.append(sock)
    try:
        relays = SocketRelays({1: "127.0.0.1"}, low, high)
        relayed = relays.open_relay(1)
        assert relayed is not None and relayed[1] >= low + 280
        relays.close_relay(relayed)
    finally:
        for sock in busy:
            sock.close()


def test_a_relay_ip_that_is_not_local_is_refused_at_start(tmp_path):
    import subprocess
    import sys

    from tests.conftest import free_port

    done = subprocess.run([sys.executable, "-m", "servers.turn.main", "--listen", f"127.0.0.1:{free_port()}",
                           "--relay-ip", "192.0.2.1"], capture_output=True, text=True, timeout=20)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--relay-ip 192.0.2.1 is not an address of this host" in lines[0], lines
