"""What each part of the signaling core (rooms, replication) is given by the core that owns it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

from .directory import Directory
from .outbox import Outbox

if TYPE_CHECKING:
    from .core import CoreConfig

__all__ = ["CorePart"]

HostT = TypeVar("HostT")


class CorePart(Generic[HostT]):
    """A part the core composes (it shares no ``self`` with the core).

    The core hands every part the same things: its configuration, this
    node's id, the directory of sessions, the outbox every output goes
    through, and ``host``, the narrow protocol through which the part asks
    the core for what stays the core's (presence, ids, calls, timers).
    """

    def __init__(self, config: CoreConfig, node_id: str, directory: Directory, out: Outbox, host: HostT) -> None:
        self.config = config
        self.node_id = node_id
        self._directory = directory
        self._out = out
        self._host = host
