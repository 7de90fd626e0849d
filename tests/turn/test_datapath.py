"""The relay's two data paths, compiled and Python, through a real endpoint on 127.0.0.1.

Each test runs the asyncio endpoint in this process with our TURN client and
an echo peer, once with the compiled data path (``native``) and once with
the Python one, and checks what the issue asks of the relay: ChannelData
both ways, counters that reach the allocation's log event, routes that go
when a permission expires, the bandwidth cap, and that a relay socket closed
and reopened (same port, often the same fd) never receives another
allocation's traffic.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from netcore.turn.aio_client import open_turn_endpoint
from netcore.turn.aio_server import SocketRelays, TurnServerEndpoint, open_udp_socket
from netcore.turn.server import AllocationDeleted, ServerConfig, TurnServer
from tests.turn.live import Inbox, drain, echo_peer, free_port_range

USER, PASSWORD = "alice", "wonderland"


def test_the_extension_is_built():
    """The C data path is optional at install time, so say it when the build lost it."""
    from netcore.turn import _datapath

    assert _datapath.HANDOFF_HEADER == 28


@pytest.fixture(params=["native", "python"])
def data_path(request):
    return request.param


@contextlib.asynccontextmanager
async def turn_server(data_path: str, count: int = 100, **config):
    low, high = free_port_range(count)
    relays = SocketRelays({1: "127.0.0.1"}, low, high)
    core = TurnServer(ServerConfig(users={USER: PASSWORD}, allow_loopback_peers=True, **config), relays)
    events: list = []
    endpoint = TurnServerEndpoint(core, relays, events.append, native=data_path == "native")
    assert (endpoint.native is not None) == (data_path == "native")
    port = endpoint.add_listener(open_udp_socket("127.0.0.1", 0))[1]
    try:
        yield endpoint, ("127.0.0.1", port), events
    finally:
        endpoint.close()


async def echo(client, payload: bytes, peer) -> bytes:
    client.sendto(payload, peer)
    data, source = await asyncio.wait_for(client.recvfrom(), 5)
    assert source == peer
    return data


async def test_channel_data_both_ways_is_counted_into_the_log_event(data_path):
    peer_transport, peer = await echo_peer()
    async with turn_server(data_path) as (endpoint, server, events):
        client = await open_turn_endpoint(server, USER, PASSWORD)
        await client.bind_channel(peer)
        handoffs = endpoint.native.stats()["handoffs"] if endpoint.native else 0
        sizes = [1 + (i * 37) % 1400 for i in range(50)]
        for i, size in enumerate(sizes):
            payload = bytes([i]) * size
            assert await echo(client, payload, peer) == payload
        if endpoint.native is not None:
            stats = endpoint.native.stats()
            assert stats["routes"] == 1
            assert stats["handoffs"] == handoffs  # none of the ChannelData went through Python
        endpoint.update_counters()
        (allocation,) = endpoint.core.allocations.values()
        assert (allocation.packets_to_peer, allocation.packets_to_client) == (50, 50)
        assert allocation.bytes_to_peer == allocation.bytes_to_client == sum(sizes)
        for _ in range(10):  # the last echoes may still be counted when the allocation ends
            assert await echo(client, b"tail", peer) == b"tail"
        await client.close()
    peer_transport.close()
    (deleted,) = [e for e in events if isinstance(e, AllocationDeleted)]
    assert (deleted.packets_to_peer, deleted.packets_to_client) == (60, 60)
    assert deleted.bytes_to_peer == deleted.bytes_to_client == sum(sizes) + 40


async def test_channel_data_length_field_is_obeyed(data_path):
    """Section 12.4: bytes past the length are not relayed; a length past the datagram drops it."""
    loop = asyncio.get_running_loop()
    peer_transport, inbox = await loop.create_datagram_endpoint(Inbox, local_addr=("127.0.0.1", 0))
    peer = peer_transport.get_extra_info("sockname")
    async with turn_server(data_path) as (endpoint, server, _):
        client = await open_turn_endpoint(server, USER, PASSWORD)
        number = await client.bind_channel(peer)
        raw = client.transport  # below the client: ChannelData written by hand
        header = number.to_bytes(2, "big")
        raw.sendto(header + (5).to_bytes(2, "big") + b"hello, and more")
        assert await asyncio.wait_for(inbox.queue.get(), 5) == b"hello"
        dropped = endpoint.core.stats.dropped + endpoint.core.stats.parse_errors
        for length in (16, 0xFFFF):
            raw.sendto(header + length.to_bytes(2, "big") + b"too short")
        raw.sendto(header + (2).to_bytes(2, "big") + b"ok")
        assert await asyncio.wait_for(inbox.queue.get(), 5) == b"ok"  # and nothing in between
        assert endpoint.core.stats.dropped + endpoint.core.stats.parse_errors == dropped + 2
        await client.close()
    peer_transport.close()


async def test_channel_data_stops_when_the_permission_expires(data_path):
    peer_transport, peer = await echo_peer()
    async with turn_server(data_path, permission_lifetime=1, sweep_interval=0.1) as (endpoint, server, _):
        client = await open_turn_endpoint(server, USER, PASSWORD)
        await client.bind_channel(peer)  # the client refreshes after minutes; the server forgets after 1 s
        assert await echo(client, b"before", peer) == b"before"
        await asyncio.sleep(1.5)
        dropped = endpoint.core.stats.dropped
        client.sendto(b"after", peer)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.recvfrom(), 0.5)
        assert endpoint.core.stats.dropped == dropped + 1  # the core saw it and refused it
        if endpoint.native is not None:
            assert endpoint.native.stats()["routes"] == 0
        await client.close()
    peer_transport.close()


async def test_bandwidth_cap_drops_the_excess(data_path):
    loop = asyncio.get_running_loop()
    peer_transport, inbox = await loop.create_datagram_endpoint(Inbox, local_addr=("127.0.0.1", 0))
    peer = peer_transport.get_extra_info("sockname")
    async with turn_server(data_path, max_bps=10_000) as (endpoint, server, _):
        client = await open_turn_endpoint(server, USER, PASSWORD)
        await client.bind_channel(peer)
        for _ in range(100):  # 100 kB at once against 10 kB/s with one second of burst
            client.sendto(bytes(1000), peer)
        received = len(await drain(inbox.queue.get, 0.5))
        assert 9 <= received <= 12
        endpoint.update_counters()
        assert endpoint.core.stats.bandwidth_dropped == 100 - received
        await client.close()
    peer_transport.close()


async def test_channel_data_and_send_indications_draw_on_one_bucket(data_path):
    """A client mixing both kinds of data gets the cap once, not once per kind."""
    loop = asyncio.get_running_loop()
    inboxes = []
    for _ in range(2):
        transport, inbox = await loop.create_datagram_endpoint(Inbox, local_addr=("127.0.0.1", 0))
        inboxes.append((transport, inbox, transport.get_extra_info("sockname")))
    (_, channel_inbox, channel_peer), (_, send_inbox, send_peer) = inboxes
    async with turn_server(data_path, max_bps=10_000) as (endpoint, server, _):
        client = await open_turn_endpoint(server, USER, PASSWORD)
        await client.bind_channel(channel_peer)  # also the permission for send_peer's IP
        for _ in range(100):  # 2 x 100 kB at once against 10 kB/s with one second of burst
            client.sendto(bytes(1000), channel_peer)  # ChannelData
            client.sendto(bytes(1000), send_peer)  # a Send indication
        received = sum([len(await drain(inbox.queue.get, 0.5)) for inbox in (channel_inbox, send_inbox)])
        assert 9 <= received <= 12
        endpoint.update_counters()
        assert endpoint.core.stats.bandwidth_dropped == 200 - received
        await client.close()
    for transport, _, _ in inboxes:
        transport.close()


async def test_a_cap_set_by_a_reload_makes_the_compiled_paths_bucket_the_allocations():
    """Without a cap nothing draws on a bucket, so the compiled path leaves the allocation's own; a reload
    that sets one (SIGHUP) must make the thread's bucket the one that Send indications draw on too."""
    import dataclasses

    from netcore.turn.aio_native import EngineBucket

    peer_transport, peer = await echo_peer()
    async with turn_server("native") as (endpoint, server, _):
        client = await open_turn_endpoint(server, USER, PASSWORD)
        await client.bind_channel(peer)
        (allocation,) = endpoint.core.allocations.values()
        assert not isinstance(allocation.bucket, EngineBucket)
        endpoint.reconfigure(dataclasses.replace(endpoint.core.config, max_bps=10_000))
        assert isinstance(allocation.bucket, EngineBucket)
        await client.close()
    peer_transport.close()


async def test_a_burst_of_requests_is_answered_whole(data_path):
    """300 Binding requests of 1 kB at once (many clients arriving together): none is shed on the way to the core."""
    import socket

    from netcore.stun.message import BINDING, Message, MessageClass

    async with turn_server(data_path) as (endpoint, server, _):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.setblocking(False)
        sent = {bytes([i // 256, i % 256]) * 6 for i in range(300)}
        for transaction_id in sent:
            request = Message(BINDING, MessageClass.REQUEST, transaction_id)
            request.add_raw(0x8030, bytes(1000))  # an unknown comprehension-optional attribute, ignored
            sock.sendto(request.encode(), server)
        answered = set()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(asyncio.TimeoutError):
            while len(answered) < len(sent):
                data = await asyncio.wait_for(loop.sock_recv(sock, 2048), 2)
                answered.add(Message.parse(data).transaction_id)
        sock.close()
        assert answered == sent
        if endpoint.native is not None:
            assert endpoint.native.stats()["handoff_drops"] == 0


async def test_reused_relay_ports_never_get_another_allocations_traffic(data_path):
    """Allocations come and go on three relay ports; each round's echo is its own."""
    peer_transport, peer = await echo_peer()
    async with turn_server(data_path, count=3) as (endpoint, server, _):
        for round_ in range(20):
            client = await open_turn_endpoint(server, USER, PASSWORD)
            await client.bind_channel(peer)
            for i in range(3):
                payload = b"round %d packet %d" % (round_, i)
                assert await echo(client, payload, peer) == payload
            await client.close()
        assert not endpoint.core.allocations
        if endpoint.native is not None:
            assert endpoint.native.stats()["routes"] == 0
            assert not endpoint.native.routed
    peer_transport.close()


async def test_random_datagrams_on_both_sides_leave_the_relay_working(data_path):
    """Garbage from the bound client (often behind its own channel number) and from the peer's port."""
    import random
    import socket

    rng = random.Random(5)
    peer_transport, peer = await echo_peer()
    async with turn_server(data_path) as (endpoint, server, _):
        client = await open_turn_endpoint(server, USER, PASSWORD)
        number = await client.bind_channel(peer)
        raw = client.transport
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(2000):
            body = rng.randbytes(rng.randrange(0, 1500))
            if i % 2:
                raw.sendto(number.to_bytes(2, "big") + body)
            else:
                raw.sendto(body)
            stranger.sendto(body, client.relayed_address)  # the peer's IP: Data indications, no channel
            if i % 100 == 0:
                await asyncio.sleep(0)
        stranger.close()
        await drain(client.recvfrom, 0.5)  # what came back: echoes of valid ChannelData, the stranger's datagrams
        assert await echo(client, b"still here", peer) == b"still here"
        await client.close()
    peer_transport.close()


def test_send_many_sends_every_datagram_byte_exact_and_reports_what_it_could_not():
    """The answers' batch send: runs from two sockets, one sendmmsg each, failures said per item."""
    import os
    import socket

    from netcore.turn import _datapath

    wakeup = os.eventfd(0, os.EFD_NONBLOCK)
    engine = _datapath.DataPath(wakeup, 0x7FFF)
    sources = [open_udp_socket("127.0.0.1", 0) for _ in range(2)]
    sinks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    try:
        for sink in sinks:
            sink.bind(("127.0.0.1", 0))
            sink.settimeout(5)
        items = []
        for index in range(150):  # more than one sendmmsg holds (64), on alternating runs of sources
            source = sources[(index // 40) % 2]
            host, port = sinks[index % 2].getsockname()
            items.append((source.fileno(), bytes([index]) * (1 + index), host, port, source))
        items.append((sources[0].fileno(), b"scoped", "fe80::1%lo", 9, sources[0]))  # the caller's to send
        items.append((sources[0].fileno(), b"refused", "::1", 9, sources[0]))  # an IPv6 host from an IPv4 socket
        failed = engine.send_many(items)
        assert [index for index, _ in failed] == [150, 151]
        assert failed[0][1] == 0 and failed[1][1] != 0
        got: dict[int, list[tuple[bytes, tuple]]] = {0: [], 1: []}
        for index in range(150):
            data, source = sinks[index % 2].recvfrom(2048)
            got[index % 2].append((data, source))
        for parity in (0, 1):
            expected = [(items[i][1], items[i][4].getsockname()) for i in range(parity, 150, 2)]
            assert got[parity] == expected  # in order, whole, from the socket named
        with pytest.raises(TypeError):
            engine.send_many([(1, "not bytes", "127.0.0.1", 9)])
    finally:
        for sock in sources + sinks:
            sock.close()
        os.close(wakeup)


def test_a_cap_set_by_a_reload_starts_with_a_full_bucket():
    """A reload that caps an allocation which had no cap (rate 0 -> > 0) gives it a full second of burst, as a
    new allocation gets: the thread's bucket must not be refilled from the allocation's creation at the new
    rate, which left an allocation younger than a second with a part-empty bucket (drops right after a SIGHUP)."""
    import os

    from netcore.turn import _datapath

    wakeup = os.eventfd(0, os.EFD_NONBLOCK)
    engine = _datapath.DataPath(wakeup, 0x7FFF)
    try:
        engine.set_allocation(1, 0.0, [])  # installed uncapped, as the endpoint does without max_bps
        engine.set_allocation(1, 10_000.0, [])  # the reload's cap, well within a second of the first
        assert engine.take_tokens(1, 10_000) is True  # the whole burst is there
        assert engine.take_tokens(1, 5_000) is False  # and no more than it
    finally:
        os.close(wakeup)


def test_hand_offs_name_their_senders_as_the_core_keys_them():
    """A hand-off's sender is the host text the core keys clients by (inet_ntop's dotted quad, every octet
    width) and the port; a route tuple the endpoint did not build (a bool, a bad host) is parsed or refused
    as before."""
    import os
    import socket
    import time

    from netcore.turn import _datapath

    wakeup = os.eventfd(0, os.EFD_NONBLOCK)
    engine = _datapath.DataPath(wakeup, 0x7FFF)
    listener = open_udp_socket("127.0.0.1", 0)
    senders = []
    try:
        engine.add_socket(listener.fileno(), _datapath.LISTENER)
        engine.start()
        for host in ("127.0.0.1", "127.10.200.99", "127.255.9.10"):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((host, 0))
            sock.sendto(host.encode(), listener.getsockname())
            senders.append(sock)
        rows: list = []
        deadline = time.monotonic() + 10
        while len(rows) < 3 and time.monotonic() < deadline:
            rows += engine.take_handoffs(64)
            time.sleep(0.01)
        assert sorted((data.decode(), sender) for _, _, _, sender, data in rows) == sorted(
            (sock.getsockname()[0], sock.getsockname()) for sock in senders)
        assert all(fd == listener.fileno() and kind == _datapath.LISTENER for fd, _, kind, _, _ in rows)
        route = (listener.fileno(), "127.0.0.1", 5000, 0x4000, listener.fileno(), "127.0.0.1", 9)
        engine.set_allocation(1, 0.0, [route, (True,) + route[1:]])  # a bool is an int to the format parse
        assert engine.stats()["routes"] == 2
        with pytest.raises(ValueError):
            engine.set_allocation(2, 0.0, [route[:5] + ("not an address",) + route[6:]])
        with pytest.raises(TypeError):
            engine.set_allocation(2, 0.0, [route[:6]])
        with pytest.raises(ValueError):
            engine.set_allocation(2, 0.0, [route[:1] + ("127.0.0.1\0",) + route[2:]])
    finally:
        engine.stop()
        for sock in senders + [listener]:
            sock.close()
        os.close(wakeup)


async def test_drops_of_an_allocation_that_relayed_nothing_reach_the_stats():
    """The compiled path's last counters of a deleted allocation carry its bandwidth drops even when it relayed
    nothing: every datagram over the cap. A second allocation's datagram, sent after them and read by the same
    thread from the same listener, says when the drops were counted; no timer harvests before the deletion."""
    loop = asyncio.get_running_loop()
    peer_transport, inbox = await loop.create_datagram_endpoint(Inbox, local_addr=("127.0.0.1", 0))
    peer = peer_transport.get_extra_info("sockname")
    async with turn_server("native", max_bps=500, sweep_interval=3600) as (endpoint, server, _):
        capped = await open_turn_endpoint(server, USER, PASSWORD)
        witness = await open_turn_endpoint(server, USER, PASSWORD)
        await capped.bind_channel(peer)
        await witness.bind_channel(peer)
        for _ in range(20):
            capped.sendto(bytes(1000), peer)  # above the 500-byte burst: every one dropped
        witness.sendto(b"after", peer)
        assert await asyncio.wait_for(inbox.queue.get(), 5) == b"after"
        assert endpoint.core.stats.bandwidth_dropped == 0  # not harvested yet
        endpoint.core.handle_timeout(loop.time() + 10_000)  # both allocations expire, straight to the data path
        endpoint.flush()
        assert not endpoint.core.allocations
        assert endpoint.core.stats.bandwidth_dropped == 20
        for client in (capped, witness):
            client.transport.close()
    peer_transport.close()


def test_retire_spares_relay_sockets_and_forgets_allocations_in_one_call():
    """The teardown of a batch of deletes: relay sockets become spares (routes through them stop relaying, a
    listener or an unknown fd is left alone) and allocations are forgotten, their routes with them; the rows
    are the counters not yet harvested of those that have some (a second retire finds nothing)."""
    import os
    import socket
    import time

    from netcore.turn import _datapath

    wakeup = os.eventfd(0, os.EFD_NONBLOCK)
    engine = _datapath.DataPath(wakeup, 0x7FFF)
    listener, relay = open_udp_socket("127.0.0.1", 0), open_udp_socket("127.0.0.1", 0)
    client, peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), open_udp_socket("127.0.0.1", 0)
    try:
        client.bind(("127.0.0.1", 0))
        peer.settimeout(5)
        engine.add_socket(listener.fileno(), _datapath.LISTENER)
        engine.add_socket(relay.fileno(), _datapath.RELAY)
        engine.start()
        route = (listener.fileno(), *client.getsockname(), 0x4000, relay.fileno(), *peer.getsockname())
        engine.set_allocation(1, 0.0, [route])
        engine.set_allocation(2, 0.0, [])
        client.sendto(b"\x40\x00\x00\x05hello", listener.getsockname())
        assert peer.recvfrom(2048) == (b"hello", relay.getsockname())
        rows = engine.retire([relay.fileno(), listener.fileno(), 1_000_000, -1], [1, 2, 3])
        assert rows == [(1, 1, 5, 0, 0, 0)]  # 2 counted nothing, 3 was never installed
        assert engine.stats()["routes"] == 0
        assert engine.retire([], [1]) == []
        client.sendto(b"\x40\x00\x00\x05again", listener.getsockname())  # no route now: handed to Python
        handed: list = []
        deadline = time.monotonic() + 10
        while not handed and time.monotonic() < deadline:
            handed = engine.take_handoffs(64)
            time.sleep(0.01)
        assert [(fd, data) for fd, _, _, _, data in handed] == [(listener.fileno(), b"\x40\x00\x00\x05again")]
        with pytest.raises(ValueError):
            engine.add_socket(listener.fileno(), _datapath.LISTENER)  # still served as a listener
        engine.add_socket(relay.fileno(), _datapath.RELAY)  # a spare taken back
        with pytest.raises(TypeError):
            engine.retire([relay.fileno()], ["not an id"])
    finally:
        engine.stop()
        for sock in (listener, relay, client, peer):
            sock.close()
        os.close(wakeup)
