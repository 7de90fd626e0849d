"""The asyncio adapter's batch of datagrams (netcore.aio.DatagramBatch), on a real event loop."""

from __future__ import annotations

import asyncio

from netcore.aio import DatagramBatch
from netcore.net import Receive


def test_what_one_pass_of_the_loop_reads_is_handed_over_as_one_batch_in_order():
    async def main() -> list[list[bytes]]:
        loop = asyncio.get_running_loop()
        batches: list[list[bytes]] = []
        got = asyncio.Event()

        def deliver(batch: list[Receive]) -> None:
            batches.append([d.data for d in batch])
            if sum(map(len, batches)) == 5:
                got.set()

        batch = DatagramBatch(loop, deliver)

        def one_pass(first: int, count: int) -> None:  # as the loop's read callbacks of one wake-up
            for i in range(first, first + count):
                batch.add(Receive(bytes([0x80, 0x60, i])))

        loop.call_soon(one_pass, 0, 3)
        while not batches:
            await asyncio.sleep(0)
        loop.call_soon(one_pass, 3, 2)
        await asyncio.wait_for(got.wait(), 30)
        return batches

    batches = asyncio.run(main())
    assert batches == [[bytes([0x80, 0x60, i]) for i in range(3)], [bytes([0x80, 0x60, i]) for i in (3, 4)]]
