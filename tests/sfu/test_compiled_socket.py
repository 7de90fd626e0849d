"""The compiled media socket's send queue (servers/sfu/server.py ``CompiledSocket``): what a full buffer refuses
is sent when the socket is writable again, in order; past ``WRITE_QUEUE`` waiting, it is dropped and counted.

A UDP socket on loopback almost never refuses a datagram (the receiver's queue takes it or drops it), so the
kernel's refusal is had from a datagram socket of the UNIX family, whose sender gets ``EAGAIN`` while the
receiver's queue is full: the same ``BlockingIOError`` the media socket meets under load.
"""

from __future__ import annotations

import asyncio
import socket

from servers.sfu.server import WRITE_QUEUE, CompiledSocket

SENT = WRITE_QUEUE * 3


def test_a_full_buffer_queues_in_order_then_drops_past_the_bound(tmp_path):
    async def main() -> None:
        loop = asyncio.get_running_loop()
        path = str(tmp_path / "receiver")
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.bind(path)
        receiver.setblocking(False)
        sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sender.setblocking(False)
        compiled = CompiledSocket(loop, sender, lambda _: None)
        try:
            for i in range(SENT):
                compiled.sendto(i.to_bytes(4, "big"), path)
            assert compiled.dropped > 0  # the receiver's queue and WRITE_QUEUE are both smaller than SENT
            received: list[int] = []
            deadline = loop.time() + 10
            while len(received) < SENT - compiled.dropped and loop.time() < deadline:
                try:
                    received.append(int.from_bytes(receiver.recv(16), "big"))
                except BlockingIOError:
                    await asyncio.sleep(0.001)  # the queue is sent when the socket is writable
            accepted = len(received) - WRITE_QUEUE  # what the kernel took before its first refusal
            assert accepted > 0
            assert received == list(range(len(received)))  # in order, nothing lost but the newest
            assert compiled.dropped == SENT - len(received)
            await asyncio.sleep(0.05)
            compiled.sendto(b"last", path)  # the queue emptied: sent at once again
            assert receiver.recv(16) == b"last"
        finally:
            compiled.close()
            receiver.close()

    asyncio.run(asyncio.wait_for(main(), 30))
