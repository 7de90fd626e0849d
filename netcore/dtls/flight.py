"""Handshake fragmentation and reassembly (RFC 6347 section 4.2.3).

:class:`Reassembler` collects fragments of the messages of the current and
next few ``message_seq`` values, bounded in count and bytes whatever the peer
sends, and hands them out complete and in order.  :func:`fragment` cuts an
outgoing message into fragments that fit a record payload budget.
"""

from __future__ import annotations

from .errors import DtlsParseError
from .handshake import HANDSHAKE_HEADER_SIZE, HandshakeHeader

__all__ = ["Reassembler", "fragment"]

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
