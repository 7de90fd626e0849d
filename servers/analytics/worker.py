"""The worker loop: read a batch, sort it into records and rejects, commit, acknowledge.

A record that is not JSON, or does not match the schema, is a reject of kind
``malformed``; one with an unknown event name or a newer version is
``unknown``.  Both are stored (keyed by where they were read, so counted
once) and skipped; nothing a producer sends stops the worker.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from .events import EventParseError, UnknownEventError, validate
from .sources import Batch
from .store import Store

__all__ = ["Worker", "WorkerStats", "sort_batch"]

log = logging.getLogger("netcore.analytics")


@dataclass
class WorkerStats:
    batches: int = 0
    records: int = 0
    malformed: int = 0
    unknown: int = 0


def sort_batch(batch: Batch) -> tuple[list[tuple[dict, str]], list[tuple[str, str, str]]]:
    """(valid records with their text, rejects as (key, kind, reason)) of a batch."""
    records: list[tuple[dict, str]] = []
    rejects: list[tuple[str, str, str]] = []
    for key, raw in batch.items:
        try:
            records.append((validate(json.loads(raw)), raw))
        except UnknownEventError as exc:
            rejects.append((key, "unknown", str(exc)[:200]))
        except (EventParseError, ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
            rejects.append((key, "malformed", str(exc)[:200] or "not JSON"))
    return records, rejects


class Worker:
    """Runs a source into a store until stopped (or, with ``until_drained``, until nothing is left)."""

    def __init__(self, source, store: Store, *, refresh_every: float = 2.0) -> None:
        self.source = source
        self.store = store
        self.refresh_every = refresh_every
        self.stats = WorkerStats()
        self.stopping = False

    def step(self) -> bool:
        """One batch; False when the source had nothing."""
        batch = self.source.read()
        if not batch.items and not batch.offsets:
            return False
        records, rejects = sort_batch(batch)
        self.store.ingest(records, rejects, batch.offsets)
        self.source.ack(batch)
        self.stats.batches += 1
        self.stats.records += len(records)
        for _, kind, reason in rejects:
            setattr(self.stats, kind, getattr(self.stats, kind) + 1)
            log.debug("skipped a %s record: %s", kind, reason)
        return True

    def run(self, until_drained: bool = False) -> WorkerStats:
        refreshed = time.monotonic()
        while not self.stopping:
            busy = self.step()
            if not busy or time.monotonic() - refreshed >= self.refresh_every:
                self.store.refresh()
                refreshed = time.monotonic()
            if not busy and until_drained and self.source.drained():
                break
            if not busy and not getattr(self.source, "blocks", False):
                time.sleep(0.05 if until_drained else 0.5)
        self.store.refresh()
        return self.stats
