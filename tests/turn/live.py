"""Helpers for the tests that run the daemon: an echo peer and an inbox."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, TypeVar

T = TypeVar("T")


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


class Inbox(asyncio.DatagramProtocol):
    def __init__(self):
        self.queue: asyncio.Queue = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.queue.put_nowait(data)


async def echo_peer():
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    return transport, transport.get_extra_info("sockname")


async def drain(receive: Callable[[], Awaitable[T]], quiet: float) -> list[T]:
    """Everything ``receive()`` gives until nothing more comes for ``quiet`` seconds."""
    got: list[T] = []
    while True:
        try:
            got.append(await asyncio.wait_for(receive(), quiet))
        except asyncio.TimeoutError:
            return got


def free_port_range(count: int, host: str = "127.0.0.1") -> tuple[int, int]:
    """``(low, high)``: ``count`` consecutive ports free for UDP and TCP on ``host`` right now.

    Chosen at run time among the ephemeral ports, so that tests running in
    parallel (or another program) do not collide on a fixed range.
    """
    import random
    import socket

    rng = random.Random()
    for _ in range(200):
        low = rng.randrange(20000, 32000 - count)
        held = []
        try:
            for port in range(low, low + count):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    sock = socket.socket(socket.AF_INET, kind)
                    held.append(sock)
                    sock.bind((host, port))
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
        return low, low + count - 1
    raise RuntimeError(f"no {count} consecutive free ports")
