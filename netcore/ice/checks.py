"""The STUN side of connectivity checks (RFC 8445 section 7): what the agent
sends, what a request asks of it, and why each transaction was started.

Pure functions and small records; the agent owns the STUN clients and sends.
"""

from __future__ import annotations

import base64
import enum
from typing import Any, Callable

from netcore.ice.pairs import CandidatePair, LocalCandidate
from netcore.ice.priority import candidate_priority
from netcore.net import Address
from netcore.stun import attributes
from netcore.stun.errors import StunParseError
from netcore.stun.message import BINDING, Message, MessageClass

__all__ = ["Purpose", "Route", "Conflict", "check_request", "role_conflict", "attribute",
           "transaction_id", "ice_string"]


class Purpose(enum.Enum):
    """What a STUN transaction of the agent is for."""

    GATHER = "gather"
    CHECK = "check"
    CONSENT = "consent"


class Route:
    """Where a transaction's request left from and what its outcome is for."""

    __slots__ = ("kind", "local", "pair", "nominate", "sent_at", "server", "controlling")

    def __init__(self, kind: Purpose, local: LocalCandidate, pair: CandidatePair | None, sent_at: float,
                 nominate: bool = False, server: Address | None = None, controlling: bool = False) -> None:
        self.kind = kind
        self.controlling = controlling
        self.local = local
        self.pair = pair
        self.nominate = nominate
        self.sent_at = sent_at
        self.server = server


class Conflict(enum.Enum):
    """What a request's role attribute means for us (section 7.3.1.1)."""

    NONE = "none"
    SWITCH = "switch"  # we lose the tie-break: take the other role, answer the request
    REJECT = "reject"  # we win it: answer 487 (Role Conflict), the request stops there


def check_request(transaction_id: bytes, username: str, pair: CandidatePair, controlling: bool,
                  tie_breaker: int, nominate: bool) -> Message:
    """A check (or consent) Binding request on ``pair``, unsigned yet (section 7.1)."""
    request = Message(BINDING, MessageClass.REQUEST, transaction_id)
    request.add(attributes.USERNAME, username)
    # Section 7.1.1: PRIORITY is the one a peer-reflexive candidate would get.
    request.add(attributes.PRIORITY, candidate_priority("prflx", pair.local.local_preference, pair.component))
    request.add(attributes.ICE_CONTROLLING if controlling else attributes.ICE_CONTROLLED, tie_breaker)
    if nominate:
        request.add(attributes.USE_CANDIDATE)
    return request


def role_conflict(controlling: bool, tie_breaker: int, request: Message) -> Conflict:
    """Section 7.3.1.1: both sides claim the same role; the larger tie-breaker controls."""
    if controlling:
        theirs = request.get(attributes.ICE_CONTROLLING)
        if theirs is None:
            return Conflict.NONE
        return Conflict.REJECT if tie_breaker >= theirs else Conflict.SWITCH
    theirs = request.get(attributes.ICE_CONTROLLED)
    if theirs is None:
        return Conflict.NONE
    return Conflict.SWITCH if tie_breaker >= theirs else Conflict.REJECT


def attribute(message: Message, attr_type: int) -> Any:
    """A decoded attribute of an authenticated response, None when absent or malformed.

    Outcomes are handled after the transaction is closed, so a malformed
    value must not raise there: it would leave the pair or gathering hanging.
    """
    try:
        return message.get(attr_type)
    except StunParseError:
        return None


def transaction_id(request: bytes) -> bytes:
    """The transaction id of a request this agent encoded (RFC 8489 section 5: header bytes 8-20)."""
    return request[8:20]


def ice_string(random: Callable[[int], bytes], size: int) -> str:
    # base64 of 3k bytes has no '=': every character is an ice-char (RFC 8839 section 5.4).
    return base64.b64encode(random(size)).decode("ascii")
