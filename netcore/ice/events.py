"""Events of the ICE agent: frozen dataclasses named in the past tense.

Every event derives from :class:`IceEvent`. ``pair`` fields carry the
agent's :class:`~netcore.ice.agent.CandidatePair` (its ``local`` and
``remote`` candidates say host/srflx/relay and the addresses); the
application reads them, never mutates them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netcore.net import Event
from netcore.sdp.candidate import Candidate

__all__ = [
    "IceEvent",
    "CandidateGathered",
    "GatheringCompleted",
    "PairEvent",
    "PairNominated",
    "PathSelected",
    "PathDegraded",
    "ConsentLost",
    "ComponentFailed",
    "RoleChanged",
    "ConnectionLost",
    "DataReceived",
]


@dataclass(frozen=True, slots=True)
class IceEvent(Event):
    """Base of the ICE agent's events."""


@dataclass(frozen=True, slots=True)
class CandidateGathered(IceEvent):
    """A local candidate to signal to the peer (trickle it, or put it in SDP)."""

    candidate: Candidate


@dataclass(frozen=True, slots=True)
class GatheringCompleted(IceEvent):
    """No more local candidates: signal end-of-candidates (RFC 8838 section 13)."""


@dataclass(frozen=True, slots=True)
class PairEvent(IceEvent):
    """Something happened to ``pair`` of ``component``: nominated, selected, degraded or lost consent.

    Match on this base to follow one pair's life (a path monitor, a stats
    collector) without naming each event.
    """

    component: int
    pair: Any


@dataclass(frozen=True, slots=True)
class PairNominated(PairEvent):
    """ICE nominated ``pair`` for ``component`` (RFC 8445 section 8.1.1): the component completed."""


@dataclass(frozen=True, slots=True)
class PathSelected(PairEvent):
    """This agent now sends ``component``'s traffic on ``pair``.

    ``reason``: "nominated", "restart" (a new nomination after an ICE
    restart), "consent-lost", "degraded", "rtt" or "loss" (a mid-call switch).
    Each agent picks its own sending path; the two directions may differ.
    """

    reason: str


@dataclass(frozen=True, slots=True)
class PathDegraded(PairEvent):
    """Consent checks on ``pair`` went unanswered for ``silent_for`` seconds (RFC 7675, early warning)."""

    silent_for: float


@dataclass(frozen=True, slots=True)
class ConsentLost(PairEvent):
    """No consent response on ``pair`` for the consent timeout (30 s): it may not carry traffic."""


@dataclass(frozen=True, slots=True)
class ComponentFailed(IceEvent):
    """Every pair of ``component`` failed and both sides ended their candidates."""

    component: int


@dataclass(frozen=True, slots=True)
class RoleChanged(IceEvent):
    """A role conflict (RFC 8445 section 7.3.1.1) switched this agent's role."""

    controlling: bool


@dataclass(frozen=True, slots=True)
class ConnectionLost(IceEvent):
    """The sending path of ``component`` lost consent and no other valid pair was left:
    nothing is sent on ``component`` any more; call ``restart`` to recover (RFC 7675 section 5.1)."""

    component: int
    reason: str


@dataclass(frozen=True, slots=True)
class DataReceived(IceEvent):
    """Application data (anything not STUN) arrived for ``component``.

    ``pair`` is the pair it came on, or None when it matches none (a peer
    sending from an address no check has seen yet).
    """

    data: bytes
    component: int
    pair: Any
