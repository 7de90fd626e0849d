"""What every core takes and gives: addresses, a datagram in, a datagram out.

The whole contract of docs/architecture.md, as types::

    core.handle_datagram(Receive(data, source, destination), now)
    core.handle_timeout(now)
    core.poll_transmit() -> Transmit | None    # data, destination, source, transport
    core.poll_event()    -> <Layer>Event | None
    core.next_deadline() -> float | None

:class:`Receive` classifies its datagram by the first byte once, where it
enters (RFC 7983/9443 through :func:`netcore.demux.classify`), so no layer
below has to look again. Both are slotted and mutable on purpose: one is
built per datagram, and a frozen dataclass costs several times as much to
build (shared/README: ~260 ns slotted, ~970 ns frozen).

A core that serves one peer over a path another core owns (DTLS over ICE)
leaves the addresses ``None``: the transport under it knows where they go.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from netcore.demux import PacketKind, classify

__all__ = ["Address", "Transport", "Receive", "Transmit", "Event", "Core"]

Address = tuple[str, int]
"""A transport address as the socket module gives it: ``(host, port)``."""


class Transport(enum.Enum):
    """What carries a datagram between two addresses."""

    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"


class Receive:
    """A datagram that arrived: from ``source`` to our ``destination``."""

    __slots__ = ("data", "source", "destination", "transport", "kind")

    def __init__(self, data: bytes, source: Address | None = None, destination: Address | None = None,
                 transport: Transport = Transport.UDP) -> None:
        self.data = data
        self.source = source
        self.destination = destination
        self.transport = transport
        self.kind: PacketKind = classify(data)

    def __repr__(self) -> str:
        return (f"Receive({self.kind.name}, {len(self.data)} bytes, {self.source} -> "
                f"{self.destination}, {self.transport.value})")


class Transmit:
    """A datagram to send: to ``destination``, from our ``source``.

    ``source`` ``None`` means the core's one local address (the adapter's
    socket); ``destination`` ``None`` means the one peer of a core that has
    exactly one, over the path of the core beneath it.
    """

    __slots__ = ("data", "destination", "source", "transport")

    def __init__(self, data: bytes, destination: Address | None = None, source: Address | None = None,
                 transport: Transport = Transport.UDP) -> None:
        self.data = data
        self.destination = destination
        self.source = source
        self.transport = transport

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Transmit):
            return NotImplemented
        return (self.data == other.data and self.destination == other.destination
                and self.source == other.source and self.transport is other.transport)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return (f"Transmit({len(self.data)} bytes, {self.source} -> {self.destination}, "
                f"{self.transport.value})")


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event a core emits; each layer derives its own (``IceEvent`` ...)."""


class Core(Protocol):
    """The shape of every sans-IO core; :class:`netcore.driver.Driver` runs any of them."""

    def handle_datagram(self, datagram: Receive, now: float) -> None: ...
    def handle_timeout(self, now: float) -> None: ...
    def poll_transmit(self) -> Transmit | None: ...
    def poll_event(self) -> Event | None: ...
    def next_deadline(self) -> float | None: ...
