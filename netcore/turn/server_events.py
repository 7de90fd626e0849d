"""Events of the TURN server core: allocation life cycle and RFC 6062 connection work.

The client has events of its own (:mod:`netcore.turn.client`); the server's
are named for what happened to a client's allocation on this server.
"""

from __future__ import annotations

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
