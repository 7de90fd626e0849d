"""STUN interop with programs we did not write, each started by the test on 127.0.0.1."""

import asyncio
import re
import subprocess

from aioice import stun as aioice_stun

from netcore.stun import attributes as a
from netcore.stun.aio import get_mapped_address, open_stun_client, serve_binding
from netcore.stun.message import BINDING, Message, MessageClass
from tests.conftest import require_program
from tests.peers import coturn, netcore_turn


def test_coturn_stunclient_against_our_daemon(tmp_path):
    stunclient = require_program("turnutils_stunclient")
    with netcore_turn(tmp_path) as port:
        out = subprocess.run(
            [stunclient, "-p", str(port), "-L", "127.0.0.1", "127.0.0.1"],
            capture_output=True, text=True, timeout=20,
        )
    assert out.returncode == 0, out.stderr
    match = re.search(r"UDP reflexive addr: 127\.0\.0\.1:(\d+)", out.stdout)
    assert match, out.stdout
    assert 0 < int(match.group(1)) < 65536


class _AioiceClient(asyncio.DatagramProtocol):
    """aioice's own transaction machinery (aioice.stun.Transaction) over a socket."""

    def __init__(self):
        self.transport = None
        self.transactions = {}

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        message = aioice_stun.parse_message(data)
        transaction = self.transactions.get(message.transaction_id)
        if transaction is not None:
            transaction.response_received(message, addr)

    def send_stun(self, message, addr):
        self.transport.sendto(bytes(message), addr)


async def test_aioice_stun_client_against_our_binding_server():
    server = await serve_binding(("127.0.0.1", 0))
    port = server.transport.get_extra_info("sockname")[1]
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(_AioiceClient, local_addr=("127.0.0.1", 0))
    try:
        request = aioice_stun.Message(aioice_stun.Method.BINDING, aioice_stun.Class.REQUEST)
        request.attributes["SOFTWARE"] = "aioice"
        request.add_fingerprint()
        transaction = aioice_stun.Transaction(request, ("127.0.0.1", port), client)
        client.transactions[request.transaction_id] = transaction
        response, _ = await asyncio.wait_for(transaction.run(), 5)
        assert response.attributes["XOR-MAPPED-ADDRESS"] == transport.get_extra_info("sockname")
        # The request carried FINGERPRINT, so the answer does; aioice's parser verified it.
        assert "FINGERPRINT" in response.attributes
    finally:
        transport.close()
        server.close()
    assert server.core.stats.responses == 1


async def test_our_client_against_coturn(tmp_path):
    with coturn(tmp_path) as port:
        mapped = await get_mapped_address(("127.0.0.1", port), ("127.0.0.1", 0))
        client = await open_stun_client(("127.0.0.1", 0))
        try:
            response = await client.request(Message(BINDING, MessageClass.REQUEST), ("127.0.0.1", port),
                                             fingerprint=True)
            own = client.transport.get_extra_info("sockname")
            assert response.get(a.XOR_MAPPED_ADDRESS) == own
            assert response.check_fingerprint()
        finally:
            client.close()
    assert mapped[0] == "127.0.0.1"
