"""Unwrapping 16-bit sequence numbers and 32-bit timestamps to 64-bit counters.

Each new value is placed in the 2**N window centred on the last one, so
reordered packets unwrap backwards and a wrap forwards increments the cycle
count (the rule of RFC 3550 appendix A.1, without its probation, which
:mod:`netcore.rtp.stats` adds).  A packet reordered from before the first
one unwraps below it, possibly below zero.
"""

from __future__ import annotations

__all__ = ["Unwrapper", "SequenceUnwrapper", "TimestampUnwrapper", "seq_lt", "seq_diff"]


class Unwrapper:
    """Extends a ``bits``-wide wrapping counter to an unbounded integer."""

    __slots__ = ("_bits", "_mod", "_half", "_last")

    def __init__(self, bits: int) -> None:
        self._bits = bits
        self._mod = 1 << bits
        self._half = 1 << (bits - 1)
        self._last: int | None = None

    @property
    def last(self) -> int | None:
        """The last unwrapped value returned by :meth:`unwrap`, or None."""
        return self._last

    def unwrap(self, value: int) -> int:
        last = self._last
        if last is None:
            self._last = value
            return value
        delta = (value - last) & (self._mod - 1)
        if delta >= self._half:
            delta -= self._mod
        out = last + delta  # may go below zero for packets before the first
        self._last = out
        return out

    def peek(self, value: int) -> int:
        """What :meth:`unwrap` would return, without moving the reference."""
        last = self._last
        if last is None:
            return value
        delta = (value - last) & (self._mod - 1)
        if delta >= self._half:
            delta -= self._mod
        return last + delta


class SequenceUnwrapper(Unwrapper):
    """RTP sequence numbers (16 bits)."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(16)


class TimestampUnwrapper(Unwrapper):
    """RTP timestamps (32 bits)."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(32)


def seq_diff(a: int, b: int) -> int:
    """Signed distance from sequence number ``b`` to ``a`` (-32768..32767)."""
    d = (a - b) & 0xFFFF
    return d - 0x10000 if d >= 0x8000 else d


def seq_lt(a: int, b: int) -> bool:
    """``a`` comes before ``b`` in 16-bit serial number arithmetic."""
    return seq_diff(a, b) < 0
