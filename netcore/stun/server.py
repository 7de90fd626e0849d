"""The STUN Binding server core (RFC 8489 sections 6.3 and 7).

It answers Binding requests with XOR-MAPPED-ADDRESS (and FINGERPRINT when the
request carried one), ignores indications and responses, answers 420 with
UNKNOWN-ATTRIBUTES for unknown comprehension-required attributes and 400 for
other bad requests, and drops whatever does not parse, counting it. The TURN
server core answers Binding requests on the same port with the same
functions.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from netcore.net import Address, Event, Receive, Transmit
from netcore.stun import attributes as attrs
from netcore.stun.errors import StunParseError
from netcore.stun.message import BINDING, Message, MessageClass

__all__ = ["BindingServer", "BindingStats", "binding_success", "unknown_attributes_error"]


def binding_success(request: Message, source: Address, software: str | None = None) -> bytes:
    """The success response to a Binding request from ``source``."""
    response = Message(BINDING, MessageClass.SUCCESS, request.transaction_id)
    response.attributes.append(
        (attrs.XOR_MAPPED_ADDRESS, attrs.encode_xor_address(source, request.transaction_id))
    )
    if software:
        response.add(attrs.SOFTWARE, software)
    return response.encode(fingerprint=request.has_fingerprint)


def unknown_attributes_error(request: Message, unknown: list[int]) -> bytes:
    """420 Unknown Attribute, listing them (section 14.9)."""
    response = request.error_response(420, "Unknown Attribute")
    response.add(attrs.UNKNOWN_ATTRIBUTES, tuple(unknown))
    return response.encode(fingerprint=request.has_fingerprint)


@dataclass(slots=True)
class BindingStats:
    requests: int = 0
    responses: int = 0
    errors_sent: int = 0
    parse_errors: int = 0
    bad_fingerprints: int = 0
    ignored: int = 0
    by_error: dict[int, int] = field(default_factory=dict)


class BindingServer:
    """Sans-IO STUN server that answers Binding requests."""

    def __init__(self, software: str | None = "netcore") -> None:
        self.software = software
        self.stats = BindingStats()
        self._transmit: deque[Transmit] = deque()

    def handle_datagram(self, datagram: Receive, now: float) -> None:
        try:
            request = Message.parse(datagram.data)
        except StunParseError:
            self.stats.parse_errors += 1
            return
        self.handle_message(request, datagram.source, now)

    def handle_message(self, request: Message, addr: Address, now: float) -> None:
        if request.has_fingerprint and not request.check_fingerprint():
            self.stats.bad_fingerprints += 1  # section 7.3: not a STUN message
            return
        if request.message_class != MessageClass.REQUEST:
            self.stats.ignored += 1  # indications need no answer; stray responses are dropped
            return
        self.stats.requests += 1
        unknown = request.unknown_comprehension_required()
        if unknown:
            self._error(420, unknown_attributes_error(request, unknown), addr)
        elif request.method != BINDING:
            self._error(400, request.error_response(400, "Bad Request").encode(
                fingerprint=request.has_fingerprint), addr)
        else:
            self.stats.responses += 1
            self._transmit.append(Transmit(binding_success(request, addr, self.software), addr))

    def _error(self, code: int, data: bytes, addr: Address) -> None:
        self.stats.errors_sent += 1
        self.stats.by_error[code] = self.stats.by_error.get(code, 0) + 1
        self._transmit.append(Transmit(data, addr))

    def handle_timeout(self, now: float) -> None:
        """The Binding server keeps no timers; present for the common core shape."""

    def poll_transmit(self) -> Transmit | None:
        return self._transmit.popleft() if self._transmit else None

    def poll_event(self) -> Event | None:
        return None

    def next_deadline(self) -> float | None:
        return None
