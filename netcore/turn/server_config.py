"""What the TURN server core is given: its configuration, the relay provider, and its counters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from netcore.net import Address
from netcore.turn import wire

__all__ = ["ServerConfig", "ServerStats", "RelayProvider"]


class RelayProvider(Protocol):
    """Hands out relayed transport addresses; owned by the adapter, not the core."""

    families: frozenset[int]  # STUN families it can relay on (1, 2)

    def open_relay(self, family: int, *, transport: int = 17, even_port: bool = False,
                   dont_fragment: bool = False, port: int | None = None) -> Address | None:
        """A fresh relayed address of ``family`` (an even port, or ``port`` exactly), or None.

        ``transport`` 6 asks for a listening TCP port (RFC 6062), 17 for UDP.
        """

    def close_relay(self, relayed: Address) -> None:
        """Give ``relayed`` back; later datagrams to it are not delivered."""


@dataclass(slots=True)
class ServerConfig:
    """What an operator configures; the daemon's flags map onto these fields."""

    realm: str = "netcore"
    users: dict[str, str] = field(default_factory=dict)
    auth_secrets: tuple[str, ...] = ()
    software: str | None = "netcore"
    default_lifetime: int = 600  # RFC 8656 section 7.2
    max_lifetime: int = 3600
    permission_lifetime: int = 300  # section 9
    channel_lifetime: int = 600  # section 12
    channel_cooldown: int = 300  # section 12: no rebinding to another peer for 5 minutes
    nonce_lifetime: int = 3600
    reservation_lifetime: int = 30  # section 7.2: about 30 seconds
    user_quota: int = 100  # allocations per username
    total_quota: int = 10000
    max_permissions: int = 256  # per allocation, bounds memory
    max_channels: int = 256
    # RFC 8656 section 12 allows 0x4000-0x4FFF; RFC 5766 allowed up to 0x7FFF
    # and coturn's clients still pick numbers there. 0x7FFF is the lenient mode.
    channel_max: int = wire.CHANNEL_MAX
    max_bps: int = 0  # bytes per second per allocation each way, 0 = unlimited
    unauthorized_rate: float = 20.0  # 401 answers per second per source IP
    unauthorized_burst: float = 40.0
    max_rate_sources: int = 10000
    sweep_interval: float = 1.0
    denied_peers: tuple[str, ...] = ()
    allowed_peers: tuple[str, ...] = ()
    allow_loopback_peers: bool = False


@dataclass(slots=True)
class ServerStats:
    """Counters for /metrics; every field is a monotonic count except the gauges noted."""

    allocations_total: int = 0
    allocations_expired: int = 0
    requests: int = 0
    auth_failures: int = 0
    stale_nonces: int = 0
    unauthorized_rate_limited: int = 0
    quota_refusals: int = 0
    port_exhaustion: int = 0
    denied_peers: int = 0
    parse_errors: int = 0
    dropped: int = 0  # no allocation, permission or channel for the datagram
    bandwidth_dropped: int = 0
    by_error: dict[int, int] = field(default_factory=dict)
    # Relay counters of allocations already deleted; live ones sum on top.
    packets_to_peer: int = 0
    bytes_to_peer: int = 0
    packets_to_client: int = 0
    bytes_to_client: int = 0
