"""TCP and TLS clients through a real endpoint: byte-exact both ways, and a slow reader stays bounded.

RFC 8656 section 3.1: a client may reach the server over TCP or TLS while
its allocation relays UDP. Datagrams keep their boundaries and bytes in both
directions (ChannelData padded to 4 bytes over the stream). A client that
stops reading must not make the server buffer without bound: beyond
``StreamLimits.write_limit`` queued bytes, relayed datagrams are dropped
whole (and counted), and what the client reads once it resumes is still
whole datagrams, byte for byte, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct

import pytest

from netcore.turn.aio_client import open_turn_endpoint
from netcore.turn.aio_server import SocketRelays, TurnServerEndpoint, open_stream_socket
from netcore.turn.server import ServerConfig, TurnServer
from tests.peers import self_signed_certificate
from tests.turn.live import drain, free_port_range
from tests.turn.sim import turn_request

USER, PASSWORD = "alice", "wonderland"
FLOOD = 20_000  # datagrams of 1000 B towards a client that does not read: 20 MB, past every kernel buffer


def payload(index: int, size: int) -> bytes:
    return struct.pack("!I", index) + bytes((index + i) & 0xFF for i in range(size - 4))


async def receive(sock: socket.socket, timeout: float) -> bytes:
    return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 65536), timeout)


@pytest.mark.parametrize("data_path", ["native", "python"])
@pytest.mark.parametrize("transport", ["tcp", "tls"])
async def test_stream_clients_relay_byte_exact_both_ways_under_a_slow_reader(tmp_path, transport, data_path):
    low, high = free_port_range(20)
    relays = SocketRelays({1: "127.0.0.1"}, low, high)
    core = TurnServer(ServerConfig(users={USER: PASSWORD}, allow_loopback_peers=True), relays)
    endpoint = TurnServerEndpoint(core, relays, native=data_path == "native")
    server_context = client_context = None
    if transport == "tls":
        cert, key = self_signed_certificate(tmp_path)
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_context.load_cert_chain(cert, key)
        client_context = ssl.create_default_context(cafile=str(cert))
    listener = await endpoint.add_stream_listener(open_stream_socket("127.0.0.1", 0), server_context)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    peer.bind(("127.0.0.1", 0))
    peer.setblocking(False)
    peer_address = peer.getsockname()
    client = await open_turn_endpoint(listener[:2], USER, PASSWORD, transport=transport, ssl=client_context,
                                      server_hostname="localhost" if client_context else None)
    try:
        await client.bind_channel(peer_address)
        relayed = client.relayed_address
        # client -> peer: odd sizes (ChannelData padded over the stream), every byte and boundary kept
        sent = [payload(i, 4 + (i * 37) % 1400) for i in range(500)]
        for data in sent:
            client.sendto(data, peer_address)
        assert [await receive(peer, 5) for _ in sent] == sent
        # peer -> client
        back = [payload(i, 4 + (i * 53) % 1400) for i in range(500)]
        for data in back:
            peer.sendto(data, relayed)
        assert [(await asyncio.wait_for(client.recvfrom(), 5))[0] for _ in back] == back
        # the slow reader: the client stops reading while the peer floods it
        (stream,) = endpoint.streams.values()
        client.transport.pause_reading()
        queued = 0
        for start in range(0, FLOOD, 200):
            for index in range(start, start + 200):
                with contextlib.suppress(BlockingIOError):
                    peer.sendto(payload(index, 1000), relayed)
            await asyncio.sleep(0.002)  # let the server relay the batch
            queued = max(queued, stream.transport.get_write_buffer_size())
        await asyncio.sleep(0.2)
        assert queued <= endpoint.limits.write_limit + 1100  # bounded: one frame past the limit at most
        assert stream.dropped > 0  # the rest was dropped whole, and counted
        client.transport.resume_reading()
        received = await drain(client.recvfrom, 1.0)
        assert {source for _, source in received} <= {peer_address}
        got = [data for data, _ in received]
        indices = [struct.unpack_from("!I", data)[0] for data in got]
        assert indices == sorted(set(indices))  # in order, none twice
        assert all(data == payload(index, 1000) for index, data in zip(indices, got))  # whole and exact
        assert 0 < len(got) < FLOOD
        # and the connection still relays both ways
        client.sendto(b"after the flood", peer_address)
        assert await receive(peer, 5) == b"after the flood"
        peer.sendto(b"and back", relayed)
        assert await asyncio.wait_for(client.recvfrom(), 5) == (b"and back", peer_address)
    finally:
        await client.close()
        peer.close()
        endpoint.close()


async def _stun(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, message, key=None):
    from netcore.stun.message import Message

    writer.write(message.encode(key) if key else message.encode())
    head = await asyncio.wait_for(reader.readexactly(20), 5)
    body = await asyncio.wait_for(reader.readexactly(int.from_bytes(head[2:4], "big")), 5)
    return Message.parse(head + body)


async def test_rfc_6062_data_connections_draw_on_the_allocations_bandwidth_bucket(tmp_path):
    """Bytes piped between a data connection and its peer connection keep to --max-bps: reading pauses."""
    from netcore.stun import attributes as sa
    from netcore.stun.credentials import long_term_key
    from netcore.stun.message import Message, MessageClass
    from netcore.turn import wire as w

    rate = 40_000
    low, high = free_port_range(20)
    relays = SocketRelays({1: "127.0.0.1"}, low, high)
    core = TurnServer(ServerConfig(users={USER: PASSWORD}, allow_loopback_peers=True, max_bps=rate), relays)
    endpoint = TurnServerEndpoint(core, relays)
    listener = await endpoint.add_stream_listener(open_stream_socket("127.0.0.1", 0))
    arrivals: list[tuple[float, int]] = []
    loop = asyncio.get_running_loop()

    async def peer_side(reader, writer):
        while data := await reader.read(65536):
            arrivals.append((loop.time(), len(data)))

    peer = await asyncio.start_server(peer_side, "127.0.0.1", 0)
    peer_address = peer.sockets[0].getsockname()[:2]
    reader, writer = await asyncio.open_connection(*listener[:2])
    try:
        first = await _stun(reader, writer, Message(w.ALLOCATE, MessageClass.REQUEST)
                            .add(w.REQUESTED_TRANSPORT, w.TRANSPORT_TCP))
        realm, nonce = first.get(sa.REALM), first.get(sa.NONCE)
        key = long_term_key(USER, realm, PASSWORD)

        def signed(method: int, *attributes) -> Message:
            return turn_request(method, *attributes, credentials=(USER, realm, nonce))

        answer = await _stun(reader, writer, signed(w.ALLOCATE, (w.REQUESTED_TRANSPORT, w.TRANSPORT_TCP)), key)
        assert answer.message_class == MessageClass.SUCCESS, answer
        answer = await _stun(reader, writer, signed(w.CONNECT, (w.XOR_PEER_ADDRESS, peer_address)), key)
        assert answer.message_class == MessageClass.SUCCESS, answer
        connection_id = answer.get(w.CONNECTION_ID)
        data_reader, data_writer = await asyncio.open_connection(*listener[:2])
        bound = await _stun(data_reader, data_writer, signed(w.CONNECTION_BIND, (w.CONNECTION_ID, connection_id)), key)
        if bound.get(sa.ERROR_CODE) and bound.get(sa.ERROR_CODE)[0] == 438:  # nonces are per client address
            nonce = bound.get(sa.NONCE)
            bound = await _stun(data_reader, data_writer, signed(w.CONNECTION_BIND, (w.CONNECTION_ID, connection_id)),
                                key)
        assert bound.message_class == MessageClass.SUCCESS, bound
        total = 3 * rate  # one second of burst, then two seconds' worth at the cap
        started = loop.time()
        for _ in range(total // 1000):
            data_writer.write(bytes(1000))
        await data_writer.drain()
        deadline = loop.time() + 20
        while sum(size for _, size in arrivals) < total:
            assert loop.time() < deadline, "the piped bytes did not arrive"
            await asyncio.sleep(0.05)
        elapsed = arrivals[-1][0] - started
        assert elapsed >= (total - rate) / rate * 0.8  # at most the cap, after the burst (20% for timer slack)
        (allocation,) = core.allocations.values()
        assert allocation.bytes_to_peer == total
        data_writer.close()
        await asyncio.sleep(0.1)  # the peer's handler reads the end of the stream
    finally:
        writer.close()
        peer.close()
        endpoint.close()
