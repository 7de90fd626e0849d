"""Spare relay sockets: a UDP relay socket outlives its allocation to serve the next one.

``SocketRelays`` keeps the socket of an allocation that ended (bounded, for
``SPARE_IDLE`` seconds) instead of closing it and binding a new one for the
next Allocate. What must hold: the next allocation never sees a datagram
sent to the one before it (the compiled data path keeps reading a spare
and drops what it reads; without it, the spare is not read, its buffer
shrinks and it is drained when taken back), a spare holds almost no memory, spares are
bounded and closed with the endpoint or when they are old, and they never
cost a client its relay: when the port range or the descriptors run out,
they are given up.
"""

from __future__ import annotations

import asyncio
import os
import resource
import socket

import pytest

from netcore.turn import aio_server
from netcore.turn.aio_client import open_turn_endpoint
from netcore.turn.aio_server import SocketRelays, open_udp_socket
from tests.turn.live import echo_peer, free_port_range
from tests.turn.test_datapath import PASSWORD, USER, data_path, echo, turn_server  # noqa: F401 (fixture)


def bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def receive_buffer(sock: socket.socket) -> int:
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


async def test_the_next_allocation_takes_the_spare_socket_without_what_was_sent_to_the_last(data_path):
    peer_transport, peer = await echo_peer()
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    async with turn_server(data_path, count=5) as (endpoint, server, _):
        first = await open_turn_endpoint(server, USER, PASSWORD)
        await first.bind_channel(peer)
        relayed = first.relayed_address
        await first.close()
        assert endpoint.relays.spare_count == 1 and not bindable(relayed[1])
        for i in range(20):  # to the old relayed address, from the peer's IP, while it is a spare
            stranger.sendto(b"stale %d" % i, relayed)
        second = await open_turn_endpoint(server, USER, PASSWORD)
        assert second.relayed_address == relayed and endpoint.relays.spare_count == 0
        if endpoint.native is not None:  # it kept reading the spare: dropped there (or when taken back)
            assert endpoint.native.stats()["spare_drops"] == 20
        await second.bind_channel(peer)
        assert await echo(second, b"fresh", peer) == b"fresh"
        (allocation,) = endpoint.core.allocations.values()
        assert allocation.dropped == 0 and endpoint.core.stats.dropped == 0  # none of the stale ones arrived
        await second.close()
    assert bindable(relayed[1])  # the endpoint closed its spares
    stranger.close()
    peer_transport.close()


def test_spares_are_bounded_reused_oldest_first_and_shrunk_while_kept():
    low, high = free_port_range(10)
    relays = SocketRelays({1: "127.0.0.1"}, low, high, spare_max=2)
    opened = [relays.open_relay(1) for _ in range(3)]
    full = receive_buffer(relays.sockets[opened[0]])
    for relayed in opened:
        relays.close_relay(relayed)
    assert relays.spare_count == 2
    assert [bindable(port) for _, port in opened] == [False, False, True]  # the third one was closed
    assert all(receive_buffer(sock) <= 16384 for spares in relays._spares.values() for _, sock, _, _ in spares)
    again = relays.open_relay(1)
    assert again == opened[0] and receive_buffer(relays.sockets[again]) == full
    relays.close_relay(again)
    relays.close_spares()
    assert relays.spare_count == 0 and all(bindable(port) for _, port in opened)


def test_dont_fragment_relays_are_not_kept_and_old_spares_are_closed(monkeypatch):
    low, high = free_port_range(10)
    relays = SocketRelays({1: "127.0.0.1"}, low, high)
    plain = relays.open_relay(1)
    df = relays.open_relay(1, dont_fragment=True)
    relays.close_relay(df)
    assert relays.spare_count == 0 and bindable(df[1])
    relays.close_relay(plain)
    assert relays.spare_count == 1
    relays.sweep_spares()
    assert relays.spare_count == 1  # not old yet
    monkeypatch.setattr(aio_server, "SPARE_IDLE", 0.0)
    relays.sweep_spares()
    assert relays.spare_count == 0 and bindable(plain[1])


def test_spares_give_their_ports_up_when_the_range_runs_out():
    low, _ = free_port_range(2)
    relays = SocketRelays({1: "127.0.0.1"}, low, low + 1)
    opened = [relays.open_relay(1), relays.open_relay(1)]
    for relayed in opened:
        relays.close_relay(relayed)
    even = relays.open_relay(1, even_port=True)  # not taken from the spares: a search, which finds none free
    assert even is not None and even[1] % 2 == 0 and relays.spare_count == 0
    relays.close_relay(even)
    relays.close_spares()


def test_spares_give_their_descriptors_up_when_none_are_left():
    low, high = free_port_range(10)
    relays = SocketRelays({1: "127.0.0.1"}, low, high)
    opened = [relays.open_relay(1) for _ in range(3)]
    for relayed in opened:
        relays.close_relay(relayed)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest = os.open(os.devnull, os.O_RDONLY)  # the lowest free descriptor
    os.close(lowest)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest, hard))  # no new descriptor unless one is closed
    try:
        with pytest.raises(OSError):
            open_udp_socket("127.0.0.1", 0)
        relayed = relays.open_relay(1, even_port=True)  # EVEN-PORT: a new socket, not a spare
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert relayed is not None and relays.spare_count == 0
    relays.close_relay(relayed)


async def test_a_closed_spares_descriptor_serves_a_new_socket():
    """A spare closed (old, or given up) leaves the compiled data path too, which kept it in its epoll set:
    a new socket on the same descriptor number is read afresh."""
    import asyncio

    peer_transport, peer = await echo_peer()
    async with turn_server("native", count=5) as (endpoint, server, _):
        first = await open_turn_endpoint(server, USER, PASSWORD)
        await first.bind_channel(peer)
        fd = endpoint.relays.sockets[first.relayed_address].fileno()
        await first.close()
        endpoint.relays.close_spares()
        fresh = open_udp_socket("127.0.0.1", 0)
        if fresh.fileno() != fd:  # onto the spare's number
            os.dup2(fresh.fileno(), fd)
            fresh.close()
            fresh = socket.socket(fileno=fd)
        endpoint.native.add_relay(fresh, fresh.getsockname())
        handoffs = endpoint.native.stats()["handoffs"]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"to the new socket", fresh.getsockname())
            for _ in range(200):
                if endpoint.native.stats()["handoffs"] > handoffs:
                    break
                await asyncio.sleep(0.01)
        assert endpoint.native.stats()["handoffs"] == handoffs + 1
        endpoint.native.remove(fresh)
        fresh.close()
    peer_transport.close()


def test_a_reservation_takes_the_port_after_an_even_one_from_the_spares():
    """EVEN-PORT with R: the even port is searched for (spares are not), the next one may be a spare's."""
    low, _ = free_port_range(5)
    low += low % 2
    relays = SocketRelays({1: "127.0.0.1"}, low, low + 3)
    df, plain, *rest = [relays.open_relay(1, dont_fragment=True)] + [relays.open_relay(1) for _ in range(3)]
    assert [df[1], plain[1]] == [low, low + 1]
    relays.close_relay(df)  # closed: DONT-FRAGMENT
    relays.close_relay(plain)  # a spare
    even = relays.open_relay(1, even_port=True)
    following = relays.open_relay(1, port=even[1] + 1)
    assert (even[1], following) == (low, plain) and relays.spare_count == 0
    for relayed in (even, following, *rest):
        relays.close_relay(relayed)
    relays.close_spares()


async def test_a_spare_taken_or_closed_before_the_flush_that_tells_the_thread():
    """The compiled path tells its thread of spares at the next flush, with the deleted allocations; within
    one batch of inputs the core may hand the spare to the next Allocate, or the endpoint close it, first.
    Taken back: it must be served as a relay socket again. Closed: its fd, reused by the next socket, must not
    be made a spare when the flush comes."""
    from netcore.turn import _datapath

    loop = asyncio.get_running_loop()
    peer_transport, peer = await echo_peer()
    async with turn_server("native", count=5) as (endpoint, server, events):
        native = endpoint.native
        for close_first in (False, True):
            client = await open_turn_endpoint(server, USER, PASSWORD)
            await client.bind_channel(peer)
            relayed = client.relayed_address
            endpoint.core.handle_timeout(loop.time() + 10_000)  # it expires: its socket becomes a spare
            assert not endpoint.core.allocations and endpoint.relays.spare_count == 1
            placeholders = []
            if close_first:
                spared = endpoint.relays._spares[1][0][1].fileno()
                while not placeholders or placeholders[-1].fileno() < spared:  # every lower fd taken: the next
                    placeholders.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))  # socket gets its fd
                endpoint.relays.close_spares()
            again = endpoint.relays.open_relay(1)  # as an Allocate in the same batch would
            assert (again == relayed) is not close_first
            endpoint.flush()
            fd = endpoint.relays.sockets[again].fileno()
            assert not close_first or fd == spared
            assert native.sockets[fd][0] == _datapath.RELAY
            with pytest.raises(ValueError):
                native.engine.add_socket(fd, _datapath.RELAY)  # the thread serves it as a relay socket
            endpoint.relays.close_relay(again)
            endpoint.flush()
            client.transport.close()
            for sock in placeholders:
                sock.close()
        assert [type(event).__name__ for event in events].count("AllocationDeleted") == 2
    peer_transport.close()
