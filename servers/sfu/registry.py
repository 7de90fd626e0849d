"""The broadcast tree's registry in Redis (``netcore-sfu --registry redis://... --tier edge --region eu``).

Each server SETs its :class:`~netcore.sfu.topology.ServerRecord` as
``nc:cascade:server:NAME`` with a PX of RECORD_TTL every HEARTBEAT and adds
its name to the set ``nc:cascade:servers``; readers take the set's members
whose record is still there (and drop the others from the set). The choices
are netcore.sfu.topology's.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from netcore.sfu.topology import HEARTBEAT, RECORD_TTL, ServerRecord

__all__ = ["Registry", "SERVERS_SET", "SERVER_KEY"]

SERVERS_SET = "nc:cascade:servers"
SERVER_KEY = "nc:cascade:server:{}"


class Registry:
    """This server's registration, kept alive, and the live records of the tree (``record`` None: a
    reader only, as netcore-signal is, placing viewers on edges)."""

    def __init__(self, url: str, record: Callable[[], ServerRecord] | None, log: Callable[..., None]) -> None:
        import redis.asyncio as aioredis

        self.client: Any = aioredis.from_url(url)
        self.record, self.log = record, log
        self._task: asyncio.Task | None = None
        self._failing = False

    def start(self) -> None:
        if self.record is not None:
            self._task = asyncio.ensure_future(self._register())

    async def close(self) -> None:
        """Stop registering and take our record out (the others stop choosing us at once)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        try:
            if self.record is not None:
                name = self.record().name
                await self.client.delete(SERVER_KEY.format(name))
                await self.client.srem(SERVERS_SET, name)
        except Exception:  # noqa: BLE001 - gone at shutdown: its record expires anyway
            pass
        await self.client.aclose()

    async def _register(self) -> None:
        while True:
            try:
                assert self.record is not None
                record = self.record()
                await self.client.set(SERVER_KEY.format(record.name), record.to_json(), px=int(RECORD_TTL * 1000))
                await self.client.sadd(SERVERS_SET, record.name)
                if self._failing:
                    self.log("registry.restored")
                self._failing = False
            except Exception as exc:  # noqa: BLE001 - Redis away: keep trying, say it once
                if not self._failing:
                    self.log("registry.unreachable", reason=str(exc) or type(exc).__name__)
                self._failing = True
            await asyncio.sleep(HEARTBEAT)

    async def servers(self) -> list[ServerRecord]:
        """The live records (those whose registration has not expired)."""
        names = sorted(n.decode() if isinstance(n, bytes) else str(n)
                       for n in await self.client.smembers(SERVERS_SET))
        if not names:
            return []
        values = await self.client.mget([SERVER_KEY.format(n) for n in names])
        records, gone = [], []
        for name, value in zip(names, values):
            record = ServerRecord.from_json(value) if value is not None else None
            if record is None:
                gone.append(name)
            else:
                records.append(record)
        if gone:
            await self.client.srem(SERVERS_SET, *gone)
        return records
