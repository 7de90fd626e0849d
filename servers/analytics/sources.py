"""Where the worker reads events from: a Redis stream (consumer group) or JSON lines files.

Both hand out batches of ``(key, raw)`` pairs, where ``key`` names the place
the record was read from (the stream entry id, or ``path:offset``) so that a
rejected record is counted once however often it is read again.  A file
shorter than its committed offset was rotated and is read from its start.

:class:`RedisSource` reads as one consumer of a consumer group: several
workers share the stream, each entry goes to one of them, and is
acknowledged (``XACK``) only after its batch is committed.  Entries a dead
worker read but never acknowledged stay pending; every read first claims
those idle for longer than ``claim_idle`` seconds (``XAUTOCLAIM``), so they
are processed by a live worker and acknowledged there.

:class:`JsonLinesSource` reads whole lines from where the store says the
previous run stopped; the new offsets are committed with the batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

__all__ = ["Batch", "RedisSource", "JsonLinesSource"]


@dataclass
class Batch:
    items: list[tuple[str, str]]  # (key, raw JSON text)
    acks: list[str] = field(default_factory=list)  # stream entry ids to acknowledge after commit
    offsets: dict[str, int] = field(default_factory=dict)  # file -> offset after this batch


class RedisSource:
    """One consumer of a consumer group on a stream."""

    blocks = True  # read() waits up to ``block`` seconds for new entries

    def __init__(self, url: str, stream: str, group: str, consumer: str, *, count: int = 500,
                 block: float = 0.5, claim_idle: float = 30.0) -> None:
        import redis

        self.redis = redis.Redis.from_url(url, decode_responses=True)
        self.stream, self.group, self.consumer = stream, group, consumer
        self.count, self.block_ms, self.claim_idle_ms = count, int(block * 1000), int(claim_idle * 1000)
        self.claimed = 0
        self._claim_cursor = "0-0"
        self._own_pending = True  # first, what this consumer name read before a restart
        try:
            self.redis.xgroup_create(stream, group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self) -> Batch:
        entries = self._claim()
        if not entries and self._own_pending:
            entries = self._read("0")
            self._own_pending = bool(entries)
        if not entries:
            entries = self._read(">", block=True)
        return Batch([(entry_id, fields.get("record", "")) for entry_id, fields in entries],
                     acks=[entry_id for entry_id, _ in entries])

    def _read(self, start: str, block: bool = False) -> list:
        answer = self.redis.xreadgroup(self.group, self.consumer, {self.stream: start}, count=self.count,
                                       block=self.block_ms if block else None)
        return [(i, f) for i, f in answer[0][1] if f is not None] if answer else []

    def _claim(self) -> list:
        cursor, entries, *_ = self.redis.xautoclaim(self.stream, self.group, self.consumer,
                                                    self.claim_idle_ms, self._claim_cursor, count=self.count)
        self._claim_cursor = cursor
        entries = [(i, f) for i, f in entries if f is not None]  # None: trimmed from the stream
        self.claimed += len(entries)
        return entries

    def ack(self, batch: Batch) -> None:
        if batch.acks:
            self.redis.xack(self.stream, self.group, *batch.acks)

    def drained(self) -> bool:
        """Nothing undelivered and nothing pending for any consumer of the group."""
        info = next(g for g in self.redis.xinfo_groups(self.stream) if g["name"] == self.group)
        return info["pending"] == 0 and (info.get("lag") or 0) == 0

    def close(self) -> None:
        self.redis.close()


class JsonLinesSource:
    """Whole lines of several files, each from its committed offset."""

    def __init__(self, paths: list[str], offsets: dict[str, int], *, count: int = 500) -> None:
        self.paths = [os.path.abspath(p) for p in paths]
        self.offsets = {p: offsets.get(p, 0) for p in self.paths}
        self.count = count
        self.claimed = 0

    def read(self) -> Batch:
        items: list[tuple[str, str]] = []
        moved: dict[str, int] = {}
        for path in self.paths:
            if len(items) >= self.count:
                break
            position = self.offsets[path]
            try:
                with open(path, "rb") as fh:
                    if os.fstat(fh.fileno()).st_size < position:
                        position = 0  # rotated or truncated: a new file under the old name
                    fh.seek(position)
                    while len(items) < self.count:
                        line = fh.readline()
                        if not line.endswith(b"\n"):
                            break  # end of file, or a line still being written
                        items.append((f"{path}:{position}", line.decode("utf-8", "replace").strip()))
                        position += len(line)
            except FileNotFoundError:
                continue
            if position != self.offsets[path]:
                moved[path] = position
        return Batch([(k, raw) for k, raw in items if raw], offsets=moved)

    def ack(self, batch: Batch) -> None:
        self.offsets.update(batch.offsets)

    def drained(self) -> bool:
        return all(os.path.getsize(p) <= self.offsets[p] if os.path.exists(p) else True for p in self.paths)

    def close(self) -> None:
        pass
