"""Our TURN client against coturn's turnserver, started by the test on 127.0.0.1."""

import asyncio

import pytest

from netcore.turn.aio_client import TurnError, open_turn_endpoint
from tests.peers import coturn, self_signed_certificate, tls_port
from tests.turn.live import echo_peer


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_relay_through_coturn_with_indications_then_a_channel(tmp_path, transport):
    echo, peer = await echo_peer()
    with coturn(tmp_path, "--allow-loopback-peers") as port:
        endpoint = await open_turn_endpoint(("127.0.0.1", port), "test", "test", transport=transport)
        try:
            assert endpoint.relayed_address[0] == "127.0.0.1"
            assert endpoint.mapped_address[0] == "127.0.0.1"
            for i in range(5):  # Send and Data indications
                endpoint.sendto(b"indication %d" % i, peer)
                assert await asyncio.wait_for(endpoint.recvfrom(), 5) == (b"indication %d" % i, peer)
            number = await endpoint.bind_channel(peer)
            assert 0x4000 <= number <= 0x4FFF
            for i in range(5):  # ChannelData both ways
                endpoint.sendto(b"channel %d" % i, peer)
                assert await asyncio.wait_for(endpoint.recvfrom(), 5) == (b"channel %d" % i, peer)
        finally:
            await endpoint.close()
            echo.close()


async def test_wrong_password_is_refused_by_coturn(tmp_path):
    with coturn(tmp_path) as port:
        with pytest.raises(TurnError, match="401"):
            await open_turn_endpoint(("127.0.0.1", port), "test", "wrong")


async def test_coturn_refuses_loopback_peers_by_default(tmp_path):
    with coturn(tmp_path) as port:
        endpoint = await open_turn_endpoint(("127.0.0.1", port), "test", "test")
        try:
            with pytest.raises(TurnError, match="403"):
                await endpoint.create_permission("127.0.0.1")
        finally:
            await endpoint.close()


async def test_relay_through_coturn_over_tls(tmp_path):
    import socket
    import ssl
    import time

    cert, key = self_signed_certificate(tmp_path)
    echo, peer = await echo_peer()
    with coturn(tmp_path, "--allow-loopback-peers", tls=(cert, key)):
        port = tls_port(tmp_path)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the TLS listener comes up with the UDP one, or just after
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        context = ssl.create_default_context(cafile=str(cert))
        endpoint = await open_turn_endpoint(("127.0.0.1", port), "test", "test", transport="tls",
                                            ssl=context, server_hostname="localhost")
        try:
            await endpoint.bind_channel(peer)
            endpoint.sendto(b"over tls", peer)
            assert await asyncio.wait_for(endpoint.recvfrom(), 5) == (b"over tls", peer)
        finally:
            await endpoint.close()
            echo.close()
