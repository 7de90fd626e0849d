"""Rewriting forwarded packets onto one outgoing stream (an SFU's send side).

A forwarder sends one outgoing SSRC per receiver track, but the packets may
come from several incoming sources over time (simulcast layers, the active
speaker).  The receiver must see one continuous stream: sequence numbers
without a jump and timestamps moving forward, or its jitter buffer resets
and its decoder stalls.  :class:`StreamRewriter` keeps a sequence and a
timestamp offset per switch and rewrites each packet's header with
:func:`~netcore.rtp.packet.rewrite_header` (one copy, no re-encode).

On a switch the new source is re-based so its first packet follows the
last one sent: sequence number + 1, and the timestamp advanced by the wall
time elapsed since the last packet sent (at least one tick).  When the
caller knows how the two sources' timestamps relate (simulcast layers of
one sender: both layers' RTCP sender reports, RFC 3550 section 6.4.1), it
passes that difference and the new source keeps the old one's timeline
exactly, as long as that moves forward.  Packets of
the previous source that arrive after the switch (late or retransmitted)
are dropped: their numbers would collide with the new source's.

A forwarder that leaves packets of the selected source out on purpose (the
frames of a VP8 temporal layer a receiver is not given) calls :meth:`skip`
for each: the numbers after it close up, so the receiver sees no gap and
asks for nothing.  Only a packet newer than every one seen can be closed
up (an older one's successors already went out under their numbers): its
number stays a gap, counted in :attr:`gaps`.  The offsets in force are kept
per range of incoming numbers (the latest :data:`MAX_OFFSETS` ranges), so a
retransmission of a packet sent before a skip keeps the number it had.

Incoming sequence numbers are unwrapped per source, so a stream longer
than 32768 packets is not taken for one older than its switch.
"""

from __future__ import annotations

from bisect import bisect_right

from netcore.rtp.packet import RtpPacket, rewrite_header
from netcore.rtp.sequence import SequenceUnwrapper

__all__ = ["StreamRewriter", "MAX_OFFSETS"]

MAX_OFFSETS = 256  # ranges of incoming numbers whose offsets are kept (one per run of skipped packets)


class StreamRewriter:
    """Maps packets of the selected source onto ``ssrc`` continuously."""

    __slots__ = (
        "ssrc",
        "clock_rate",
        "payload_types",
        "source",
        "_ts_offset",
        "_last_seq",
        "_last_ts",
        "_last_at",
        "_rebase_next",
        "_unwrap",
        "_highest",
        "_starts",
        "_offsets",
        "_delta",
        "dropped",
        "gaps",
    )

    def __init__(self, ssrc: int, clock_rate: int, payload_types: dict[int, int] | None = None) -> None:
        """``payload_types`` maps incoming to outgoing PT (kept when absent)."""
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.payload_types = payload_types or {}
        self.source: int | None = None  # the incoming SSRC being forwarded
        self._ts_offset = 0
        self._last_seq: int | None = None  # outgoing, 16 bits
        self._last_ts = 0
        self._last_at = 0.0
        self._rebase_next = True
        self._unwrap = SequenceUnwrapper()
        self._highest = 0  # the newest unwrapped incoming number seen (forwarded or skipped)
        # From incoming number _starts[i] (unwrapped, ascending) on, _offsets[i] is added
        self._starts: list[int] = [0]
        self._offsets: list[int] = [0]
        self._delta: int | None = None
        self.dropped = 0
        self.gaps = 0  # skipped packets that could not be closed up (older than one already seen)

    def select(self, source: int, timestamp_delta: int | None = None) -> None:
        """Forward ``source`` from its next packet on; ``timestamp_delta`` puts its timestamps on the
        current source's timeline (see the module docstring)."""
        if source != self.source:
            self.source = source
            self._delta = timestamp_delta
            self._rebase_next = True  # re-base on the next packet

    def rewrite(self, packet: RtpPacket, now: float) -> bytearray | None:
        """The outgoing bytes for ``packet``, or None if it is not forwarded."""
        if packet.ssrc != self.source:
            self.dropped += 1
            return None
        if self._rebase_next:
            self._rebase(packet, now)
        offset = self._offset_of(self._unwrap.unwrap(packet.sequence_number))
        if offset is None:
            # Older than the switch: would collide with the previous source.
            self.dropped += 1
            return None
        seq = (packet.sequence_number + offset) & 0xFFFF
        ts = (packet.timestamp + self._ts_offset) & 0xFFFFFFFF
        if self._last_seq is None or 0 < (seq - self._last_seq) & 0xFFFF < 0x8000:
            self._last_seq = seq
            self._last_ts = ts
            self._last_at = now
        pt = self.payload_types.get(packet.payload_type, packet.payload_type)
        return rewrite_header(packet.data, self.ssrc, seq, ts, pt)

    def skip(self, packet: RtpPacket, now: float) -> bool:
        """``packet`` of the selected source is left out on purpose: close up the numbers after it.
        False when it cannot be (not the selected source, or older than one already seen: a gap)."""
        if packet.ssrc != self.source:
            return False
        if self._rebase_next:
            self._rebase(packet, now)
        n = self._unwrap.unwrap(packet.sequence_number)
        if n <= self._highest or n < self._starts[0]:
            self.gaps += 1
            return False
        offset = self._offsets[-1] - 1
        if self._starts[-1] == n:  # the packet after the last skipped one: extend that range
            self._starts[-1], self._offsets[-1] = n + 1, offset
        else:
            self._starts.append(n + 1)
            self._offsets.append(offset)
            if len(self._starts) > MAX_OFFSETS:
                del self._starts[0], self._offsets[0]
        self._highest = n
        return True

    def _offset_of(self, n: int) -> int | None:
        """The offset for unwrapped incoming number ``n`` (None: before the switch or the kept ranges)."""
        if n > self._highest:
            self._highest = n
        starts = self._starts
        if n >= starts[-1]:
            return self._offsets[-1]
        i = bisect_right(starts, n) - 1
        return self._offsets[i] if i >= 0 else None

    def _rebase(self, packet: RtpPacket, now: float) -> None:
        self._rebase_next = False
        self._unwrap = SequenceUnwrapper()
        first = self._unwrap.unwrap(packet.sequence_number)
        self._highest = first - 1  # the first packet itself may be skipped and closed up
        if self._last_seq is None:
            self._starts, self._offsets = [first], [0]
            self._ts_offset = 0
            return
        next_seq = (self._last_seq + 1) & 0xFFFF
        self._starts, self._offsets = [first], [(next_seq - packet.sequence_number) & 0xFFFF]
        if self._delta is not None:
            offset = (self._ts_offset + self._delta) & 0xFFFFFFFF
            ahead = ((packet.timestamp + offset - self._last_ts) & 0xFFFFFFFF)
            if 0 < ahead < self.clock_rate * 5:  # forward, and not by more than a stall could explain
                self._ts_offset = offset
                return
        ticks = max(1, round((now - self._last_at) * self.clock_rate))
        next_ts = (self._last_ts + ticks) & 0xFFFFFFFF
        self._ts_offset = (next_ts - packet.timestamp) & 0xFFFFFFFF
