"""Events of the TURN server core: allocation life cycle and RFC 6062 connection work.

The client has events of its own (:mod:`netcore.turn.client`); the server's
are named for what happened to a client's allocation on this server.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from netcore.net import Address, Event

__all__ = [
    "TurnServerEvent",
    "AllocationEvent",
    "AllocationGranted",
    "AllocationRenewed",
    "AllocationDeleted",
    "PeerConnectRequested",
    "ConnectionBound",
    "PeerConnectionClosed",
]


@dataclass(frozen=True, slots=True)
class TurnServerEvent(Event):
    """Base of the events of the TURN server."""


@dataclass(frozen=True, slots=True)
class AllocationEvent(TurnServerEvent):
    """Something happened to the allocation of ``client`` on ``listener``, made by ``username``.

    ``(client, listener)`` is the allocation's key (the client and server
    sides of its 5-tuple): a consumer that follows allocations (a log,
    analytics) matches this base and keys on it.
    """

    client: Address
    listener: Address
    username: str


@dataclass(frozen=True, slots=True)
class AllocationGranted(AllocationEvent):
    """An Allocate succeeded: ``client`` on ``listener`` holds ``relayed`` for ``lifetime`` seconds."""

    relayed: tuple[Address, ...]
    lifetime: int


@dataclass(frozen=True, slots=True)
class AllocationRenewed(AllocationEvent):
    """A Refresh extended an allocation by ``lifetime`` seconds."""

    lifetime: int


@dataclass(frozen=True, slots=True)
class AllocationDeleted(AllocationEvent):
    """An allocation ended, with what it relayed each way."""

    relayed: tuple[Address, ...]
    reason: str  # "expired", "deleted" (Refresh 0), "closed" (TCP/TLS), "shutdown"
    packets_to_peer: int
    bytes_to_peer: int
    packets_to_client: int
    bytes_to_client: int


@dataclass(frozen=True, slots=True)
class PeerConnectRequested(TurnServerEvent):
    """Open a TCP connection from ``relayed`` to ``peer``, then call ``handle_peer_connected`` (RFC 6062)."""

    connection_id: int
    relayed: Address
    peer: Address


@dataclass(frozen=True, slots=True)
class ConnectionBound(TurnServerEvent):
    """Pipe the client data connection ``(listener, client)`` with peer connection ``connection_id``."""

    connection_id: int
    client: Address
    listener: Address


@dataclass(frozen=True, slots=True)
class PeerConnectionClosed(TurnServerEvent):
    """Close peer connection ``connection_id`` and the data connection bound to it."""

    connection_id: int


def _slot_setter(cls: type, name: str):
    """The ``__set__`` of the slot descriptor ``name`` of ``cls`` (declared on it or on a base)."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name].__set__
    raise AttributeError(name)


def _fill_slots_directly(cls: type) -> None:
    """Give the frozen dataclass ``cls`` an ``__init__`` that fills its slots through their descriptors.

    A frozen dataclass's own ``__init__`` goes through ``object.__setattr__``
    per field (about 1 us for :class:`AllocationDeleted`'s nine here), and the
    core makes one of these events per Allocate, Refresh and delete. Same
    signature, same instances: still frozen, equal, hashable and
    ``dataclasses.replace``-able.
    """
    names = [field.name for field in dataclasses.fields(cls)]
    namespace = {f"_set_{name}": _slot_setter(cls, name) for name in names}
    body = "".join(f"\n    _set_{name}(self, {name})" for name in names)
    exec(f"def __init__(self, {', '.join(names)}):{body}", namespace)  # as dataclasses builds its own
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__name__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[misc]


for _event in (AllocationGranted, AllocationRenewed, AllocationDeleted):
    _fill_slots_directly(_event)
