"""netcore-turn answers STUN Binding on every --listen address."""

import asyncio

from netcore.stun.aio import get_mapped_address
from tests.conftest import free_port
from tests.peers import netcore_turn


async def test_two_listen_addresses_both_answer(tmp_path):
    second = free_port()
    with netcore_turn(tmp_path, "--listen", f"127.0.0.1:{second}") as first:
        for port in (first, second):
            host, mapped_port = await asyncio.wait_for(
                get_mapped_address(("127.0.0.1", port), ("127.0.0.1", 0)), 5)
            assert host == "127.0.0.1" and mapped_port > 0
