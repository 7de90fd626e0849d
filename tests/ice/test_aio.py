"""The asyncio adapter with two of our agents on loopback (IPv4 and IPv6 sockets)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from netcore.ice.agent import Agent
from netcore.ice.aio import IceConnection, host_addresses
from netcore.testing.local import connect_locally

pytestmark = pytest.mark.timeout(30)


def test_host_addresses_leave_loopback_out_unless_asked():
    assert "127.0.0.1" not in host_addresses()
    assert "127.0.0.1" in host_addresses(loopback=True)
    assert all(not a.startswith("fe80") for a in host_addresses(loopback=True))


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


async def test_two_agents_over_real_sockets_prefer_ipv6_and_carry_data():
    hosts = ["127.0.0.1"] + (["::1"] if ipv6_loopback() else [])
    inbox: asyncio.Queue = asyncio.Queue()
    a = IceConnection(Agent(True))
    b = IceConnection(Agent(False), on_data=lambda data, pair: inbox.put_nowait((data, pair)))
    try:
        for conn in (a, b):
            await conn.bind(hosts)
        pair = await connect_locally(a, b, 5)
        assert pair.local.address[0] == hosts[-1]  # IPv6 first when there is one (RFC 8445 section 5.1.2.1)
        for i in range(100):
            assert a.send(bytes([0x80, 0]) + i.to_bytes(2, "big"))
        got = [await asyncio.wait_for(inbox.get(), 2) for _ in range(100)]
        assert [int.from_bytes(d[2:4], "big") for d, _ in got] == list(range(100))
        assert all(p is b.agent.sending_pair() for _, p in got)
    finally:
        a.close()
        b.close()


async def test_the_connection_composes_a_driver_rather_than_being_a_socket_protocol():
    # It owns several sockets; inheriting one socket's protocol gave it a
    # datagram_received of the wrong arity and a second copy of the timer.
    conn = IceConnection(Agent(True))
    try:
        assert not isinstance(conn, asyncio.BaseProtocol) and not hasattr(conn, "datagram_received")
        assert conn.driver.core is conn.agent
    finally:
        conn.close()
