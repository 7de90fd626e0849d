"""The producer side: daemons hand records to a bounded queue, a thread writes them.

A daemon calls :meth:`AnalyticsProducer.emit` from its event loop; the call
appends to a bounded queue under a lock and returns.  One writer thread drains
the queue in batches to a :class:`JsonLinesWriter` (one file, appended) or a
:class:`RedisStreamWriter` (``XADD`` to a stream, pipelined).  When the queue
is full, or the sink fails, records are dropped and counted (``dropped``):
a slow disk or an unreachable Redis never holds up signaling or relaying.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import os
import secrets
import threading
import time
from typing import Any, Protocol

from .events import record

__all__ = ["AnalyticsProducer", "JsonLinesWriter", "RedisStreamWriter", "Writer", "open_writer"]

log = logging.getLogger("netcore.analytics")

STREAM = "nc:analytics"
BATCH = 500


class Writer(Protocol):
    def write_batch(self, records: list[dict]) -> None: ...
    def close(self) -> None: ...


class JsonLinesWriter:
    """Append records to a file, one JSON object per line.

    Each batch is one ``write`` on an ``O_APPEND`` descriptor, so several
    processes (TURN workers) may share one file without tearing lines.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write_batch(self, records: list[dict]) -> None:
        data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def close(self) -> None:
        if self._fd >= 0:  # a daemon's stop may run twice (a signal, then its owner's cleanup)
            os.close(self._fd)
            self._fd = -1


class RedisStreamWriter:
    """``XADD`` each record (field ``record``) to a capped stream, one pipeline per batch."""

    def __init__(self, url: str, stream: str = STREAM, maxlen: int = 1_000_000) -> None:
        import redis

        self.stream, self.maxlen = stream, maxlen
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    def write_batch(self, records: list[dict]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for r in records:
            pipe.xadd(self.stream, {"record": json.dumps(r, separators=(",", ":"))},
                      maxlen=self.maxlen, approximate=True)
        pipe.execute()

    def close(self) -> None:
        self._redis.close()


def open_writer(redis_url: str | None, path: str | None, stream: str = STREAM) -> Writer:
    """The Redis stream when a URL is configured, else the JSON lines file."""
    if redis_url:
        return RedisStreamWriter(redis_url, stream)
    if not path:
        raise ValueError("an analytics sink needs a Redis URL or a file path")
    return JsonLinesWriter(path)


class AnalyticsProducer:
    """Records of one node, queued (at most ``capacity``) and written by one thread."""

    def __init__(self, node: str, writer: Writer, capacity: int = 50_000) -> None:
        self.node = node
        self.writer = writer
        self.capacity = capacity
        self.dropped = 0  # queue full or sink failed
        self.written = 0
        self._prefix = f"{node}-{secrets.token_hex(4)}-"
        self._seq = itertools.count(1)
        self._queue: collections.deque[dict] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="analytics-writer", daemon=True)
        self._thread.start()

    def emit(self, name: str, wall_time: float | None = None, **fields: Any) -> bool:
        """Queue one event; False (and counted) if it was dropped. Never blocks on I/O."""
        rec = record(self._prefix + str(next(self._seq)), name,
                     time.time() if wall_time is None else wall_time, self.node, **fields)
        with self._cond:
            if len(self._queue) >= self.capacity or self._closing:
                self.dropped += 1
                return False
            self._queue.append(rec)
            if len(self._queue) == 1:
                self._cond.notify()
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (for at most ``timeout`` seconds), then stop."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)
        self.writer.close()

    def _take(self) -> list[dict] | None:
        with self._cond:
            while not self._queue and not self._closing:
                self._cond.wait()
            if not self._queue:
                return None
            count = min(BATCH, len(self._queue))
            return [self._queue.popleft() for _ in range(count)]

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            try:
                self.writer.write_batch(batch)
                self.written += len(batch)
            except Exception as exc:  # any sink failure: count the loss, keep the daemon serving
                with self._cond:
                    self.dropped += len(batch)
                log.warning("analytics sink failed, %d records dropped: %s", len(batch), exc)
                if not self._closing:
                    time.sleep(1.0)
