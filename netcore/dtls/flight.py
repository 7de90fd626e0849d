"""Handshake fragmentation, reassembly and flights (RFC 6347 sections 4.2.3, 4.2.4).

:class:`Reassembler` collects fragments of the messages of the current and
next few ``message_seq`` values, bounded in count and bytes whatever the peer
sends, and hands them out complete and in order.  :func:`fragment` cuts an
outgoing message into fragments that fit a record payload budget;
:func:`flight_datagrams` seals a flight's messages as records and packs them
into datagrams of at most the MTU; :class:`FlightTimer` says when to send a
flight again.
"""

from __future__ import annotations

from .errors import DtlsParseError
from .handshake import HANDSHAKE_HEADER_SIZE, HandshakeHeader
from .record import ContentType
from .recordlayer import RecordLayer

__all__ = ["Reassembler", "fragment", "FlightItem", "FlightTimer", "flight_datagrams"]

MAX_MESSAGE_LENGTH = 1 << 16  # a certificate chain fits; more is refused
MAX_AHEAD = 8  # messages buffered beyond the next expected one
MAX_HOLES = 64  # disjoint ranges kept per message; more is refused (CPU bound)


class _Partial:
    __slots__ = ("msg_type", "body", "ranges")

    def __init__(self, msg_type: int, length: int) -> None:
        self.msg_type = msg_type
        self.body = bytearray(length)
        self.ranges: list[tuple[int, int]] = []  # merged, sorted [start, end)

    def add(self, offset: int, data: bytes) -> None:
        end = offset + len(data)
        self.body[offset:end] = data
        merged: list[tuple[int, int]] = []
        start = offset
        for s, e in self.ranges:
            if e < start or s > end:
                merged.append((s, e))
            else:
                start, end = min(s, start), max(e, end)
        merged.append((start, end))
        merged.sort()
        self.ranges = merged

    def touches(self, offset: int, length: int) -> bool:
        """True if adding this fragment cannot add a disjoint range."""
        return any(s <= offset + length and offset <= e for s, e in self.ranges)

    @property
    def complete(self) -> bool:
        return self.ranges == [(0, len(self.body))]


class Reassembler:
    """Fragments in, whole messages out in ``message_seq`` order."""

    __slots__ = ("next_seq", "_partials")

    def __init__(self, next_seq: int = 0) -> None:
        self.next_seq = next_seq
        self._partials: dict[int, _Partial] = {}

    def reset(self, next_seq: int) -> None:
        self.next_seq = next_seq
        self._partials.clear()

    def add(self, header: HandshakeHeader, data: bytes) -> bool:
        """Store a fragment; return False if its message was already handed out."""
        seq = header.message_seq
        if seq < self.next_seq:
            return False
        if seq > self.next_seq + MAX_AHEAD:
            return True  # too far ahead: drop, the peer retransmits
        if header.length > MAX_MESSAGE_LENGTH:
            raise DtlsParseError("handshake message too long")
        partial = self._partials.get(seq)
        if partial is None:
            partial = self._partials[seq] = _Partial(header.msg_type, header.length)
        elif partial.msg_type != header.msg_type or len(partial.body) != header.length:
            raise DtlsParseError("fragments of one message disagree")
        if len(partial.ranges) < MAX_HOLES or partial.touches(header.fragment_offset, len(data)):
            partial.add(header.fragment_offset, data)
        return True

    def peek(self) -> tuple[int, int, bytes] | None:
        """``(msg_type, message_seq, body)`` of the next message if complete."""
        partial = self._partials.get(self.next_seq)
        if partial is None or not partial.complete:
            return None
        return partial.msg_type, self.next_seq, bytes(partial.body)

    def advance(self) -> None:
        self._partials.pop(self.next_seq, None)
        self.next_seq += 1


def fragment(msg_type: int, message_seq: int, body: bytes, max_fragment: int) -> list[bytes]:
    """The message as handshake fragments of at most ``max_fragment`` body bytes each."""
    max_fragment = max(1, max_fragment)
    if not body:
        return [HandshakeHeader(msg_type, 0, message_seq, 0, 0).encode()]
    out = []
    for offset in range(0, len(body), max_fragment):
        chunk = body[offset : offset + max_fragment]
        out.append(
            HandshakeHeader(msg_type, len(body), message_seq, offset, len(chunk)).encode() + chunk
        )
    return out


FRAGMENT_OVERHEAD = HANDSHAKE_HEADER_SIZE


class FlightItem:
    """One message of a flight we send, kept to be sent again on a timeout."""

    __slots__ = ("epoch", "msg_type", "message_seq", "body")

    def __init__(self, epoch: int, msg_type: int | None, message_seq: int, body: bytes) -> None:
        self.epoch = epoch
        self.msg_type = msg_type  # None: a ChangeCipherSpec record
        self.message_seq = message_seq
        self.body = body


def flight_datagrams(flight: list[FlightItem], records: RecordLayer, mtu: int) -> list[bytes]:
    """The flight sealed as records (fresh sequence numbers each time) in datagrams of at most ``mtu``.

    RFC 6347 section 4.1.1: several records may share a datagram, none spans two.
    """
    datagrams: list[bytes] = []
    datagram = bytearray()
    for item in flight:
        if item.msg_type is None:
            sealed = [records.seal(ContentType.CHANGE_CIPHER_SPEC, b"\x01", item.epoch)]
        else:
            budget = mtu - records.overhead(item.epoch) - HANDSHAKE_HEADER_SIZE
            sealed = [
                records.seal(ContentType.HANDSHAKE, piece, item.epoch)
                for piece in fragment(item.msg_type, item.message_seq, item.body, budget)
            ]
        for record in sealed:
            if datagram and len(datagram) + len(record) > mtu:
                datagrams.append(bytes(datagram))
                datagram = bytearray()
            datagram += record
    if datagram:
        datagrams.append(bytes(datagram))
    return datagrams


class FlightTimer:
    """The retransmission timer of our last flight (RFC 6347 section 4.2.4.1).

    Starts at ``initial`` seconds, doubles at each expiry up to ``maximum``,
    and gives up after ``limit`` retransmissions.
    """

    __slots__ = ("initial", "maximum", "limit", "deadline", "_interval", "_count")

    def __init__(self, initial: float, maximum: float, limit: int) -> None:
        self.initial = initial
        self.maximum = maximum
        self.limit = limit
        self.deadline: float | None = None
        self._interval = initial
        self._count = 0

    def start(self, now: float) -> None:
        """A new flight went out: wait ``initial`` seconds for the peer's answer."""
        self._count = 0
        self._interval = self.initial
        self.deadline = now + self._interval

    def stop(self) -> None:
        self.deadline = None

    def due(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline

    def back_off(self, now: float) -> bool:
        """Double the wait for one more retransmission; False (and stopped) once exhausted."""
        if self._count >= self.limit:
            self.deadline = None
            return False
        self._count += 1
        self._interval = min(self._interval * 2, self.maximum)
        self.deadline = now + self._interval
        return True
