"""The TURN daemon's allocation events as analytics events.

:class:`AllocationEvents` turns the server core's ``AllocationGranted``,
``AllocationRenewed`` and ``AllocationDeleted`` into ``turn.allocation.*``
records: it names each allocation (``allocation_id``, node-unique) when it is
granted, keyed by the client's 5-tuple, and reports its lifetime, bytes and
packets each way when it is deleted.
"""

from __future__ import annotations

import itertools
import secrets
import time
from typing import Callable

from netcore.turn.server_events import AllocationDeleted, AllocationGranted, AllocationRenewed

from .producer import AnalyticsProducer

__all__ = ["AllocationEvents", "user_of"]


def user_of(username: str) -> str:
    """The user of a TURN username: the part after ``expiry:`` for REST API names."""
    expiry, sep, user = username.partition(":")
    return user if sep and expiry.isdigit() and user else username


def _fmt(addr: tuple) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class AllocationEvents:
    """Feed it every server event (``on_event``); it emits the allocation ones."""

    def __init__(self, producer: AnalyticsProducer, clock: Callable[[], float] = time.time) -> None:
        self.producer = producer
        self._clock = clock
        self._prefix = f"{producer.node}-{secrets.token_hex(3)}-"
        self._numbers = itertools.count(1)
        self._live: dict[tuple, tuple[str, float]] = {}  # (client, listener) -> (allocation_id, granted at)

    def on_event(self, event: object) -> None:
        if isinstance(event, AllocationGranted):
            self._granted(event)
        elif isinstance(event, AllocationRenewed):
            known = self._live.get((event.client, event.listener))
            if known is not None:
                self.producer.emit("turn.allocation.renewed", self._clock(), allocation_id=known[0],
                                   user=user_of(event.username), lifetime=event.lifetime)
        elif isinstance(event, AllocationDeleted):
            self._deleted(event)

    def _granted(self, event: AllocationGranted) -> None:
        now = self._clock()
        allocation_id = self._prefix + str(next(self._numbers))
        self._live[(event.client, event.listener)] = (allocation_id, now)
        self.producer.emit("turn.allocation.granted", now, allocation_id=allocation_id,
                           user=user_of(event.username), client=_fmt(event.client),
                           relayed=[_fmt(r) for r in event.relayed], lifetime=event.lifetime)

    def _deleted(self, event: AllocationDeleted) -> None:
        now = self._clock()
        known = self._live.pop((event.client, event.listener), None)
        allocation_id, granted = known if known is not None else (self._prefix + str(next(self._numbers)), now)
        self.producer.emit("turn.allocation.deleted", now, allocation_id=allocation_id,
                           user=user_of(event.username), reason=event.reason,
                           duration=round(max(0.0, now - granted), 3),
                           packets_to_peer=event.packets_to_peer, bytes_to_peer=event.bytes_to_peer,
                           packets_to_client=event.packets_to_client, bytes_to_client=event.bytes_to_client)
