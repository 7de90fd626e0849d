"""Events of the media transport (frozen dataclasses, past tense, under :class:`TransportEvent`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from netcore.net import Address, Event
from netcore.rtp.packet import RtpPacket
from netcore.sdp.candidate import Candidate

__all__ = [
    "TransportEvent",
    "Direction",
    "CandidateGathered",
    "GatheringCompleted",
    "TransportConnected",
    "TransportFailed",
    "PathChanged",
    "RtpReceived",
    "KeyFrameRequested",
    "BitrateChanged",
    "RtcpReceived",
    "TransportClosed",
]


class Direction(enum.Enum):
    """Which way a path carries traffic; ICE lets the two differ."""

    SEND = "send"
    RECEIVE = "receive"


@dataclass(frozen=True, slots=True)
class TransportEvent(Event):
    """Base of every event of :class:`~netcore.peer.transport.MediaTransport`."""


@dataclass(frozen=True, slots=True)
class CandidateGathered(TransportEvent):
    """A local ICE candidate to signal (trickle it, or put it in the description)."""

    candidate: Candidate


@dataclass(frozen=True, slots=True)
class GatheringCompleted(TransportEvent):
    """No more local candidates: signal end-of-candidates."""


@dataclass(frozen=True, slots=True)
class TransportConnected(TransportEvent):
    """ICE selected a pair, DTLS completed and SRTP is keyed: media can flow."""

    srtp_profile: int
    peer_fingerprint: str


@dataclass(frozen=True, slots=True)
class TransportFailed(TransportEvent):
    """ICE failed or lost the path, or the DTLS handshake failed; nothing more is sent."""

    reason: str


@dataclass(frozen=True, slots=True)
class PathChanged(TransportEvent):
    """``direction``'s traffic now goes over this pair (``relayed``: through a TURN server).

    ``local_type`` and ``remote_type`` are the pair's candidate types ("host",
    "srflx", "prflx", "relay"). ``reason`` is ICE's for the sending direction
    ("nominated", "degraded", "consent-lost", "unacknowledged" ...) and
    "received" for the receiving one, which follows the pair the peer's media
    arrives on. Each direction moves on its own; no new offer is needed.
    """

    direction: Direction
    relayed: bool
    local: Address
    remote: Address
    reason: str
    pair: Any = None
    local_type: str = ""
    remote_type: str = ""


@dataclass(frozen=True, slots=True)
class RtpReceived(TransportEvent):
    """A media packet of ``mid`` from ``ssrc`` (an RTX packet arrives unwrapped, ``retransmitted`` set);
    ``rid``: its simulcast stream (RFC 8851), None without simulcast."""

    mid: str
    ssrc: int
    packet: RtpPacket
    retransmitted: bool = False
    rid: str | None = None


@dataclass(frozen=True, slots=True)
class KeyFrameRequested(TransportEvent):
    """A PLI or FIR arrived for ``ssrc``, one of the SSRCs we send: code the next frame as a key frame."""

    ssrc: int


@dataclass(frozen=True, slots=True)
class BitrateChanged(TransportEvent):
    """The congestion controller's target moved by more than 5 % since the last event (bit/s)."""

    target: float


@dataclass(frozen=True, slots=True)
class RtcpReceived(TransportEvent):
    """A decrypted RTCP compound (after the transport acted on what concerns it)."""

    packets: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class TransportClosed(TransportEvent):
    """The transport closed (locally, or the peer sent close_notify)."""

    reason: str
