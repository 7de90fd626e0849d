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
"""

from __future__ import annotations

from netcore.rtp.packet import RtpPacket, rewrite_header
from netcore.rtp.sequence import seq_diff

__all__ = ["StreamRewriter"]


class StreamRewriter:
    """Maps packets of the selected source onto ``ssrc`` continuously."""

    __slots__ = (
        "ssrc",
        "clock_rate",
        "payload_types",
        "source",
        "_seq_offset",
        "_ts_offset",
        "_last_seq",
        "_last_ts",
        "_last_at",
        "_first_in_seq",
        "_delta",
        "dropped",
    )

    def __init__(self, ssrc: int, clock_rate: int, payload_types: dict[int, int] | None = None) -> None:
        """``payload_types`` maps incoming to outgoing PT (kept when absent)."""
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.payload_types = payload_types or {}
        self.source: int | None = None  # the incoming SSRC being forwarded
        self._seq_offset = 0
        self._ts_offset = 0
        self._last_seq: int | None = None  # outgoing, 16 bits
        self._last_ts = 0
        self._last_at = 0.0
        self._first_in_seq = 0
        self._delta: int | None = None
        self.dropped = 0

    def select(self, source: int, timestamp_delta: int | None = None) -> None:
        """Forward ``source`` from its next packet on; ``timestamp_delta`` puts its timestamps on the
        current source's timeline (see the module docstring)."""
        if source != self.source:
            self.source = source
            self._delta = timestamp_delta
            self._first_in_seq = -1  # re-base on the next packet

    def rewrite(self, packet: RtpPacket, now: float) -> bytearray | None:
        """The outgoing bytes for ``packet``, or None if it is not forwarded."""
        if packet.ssrc != self.source:
            self.dropped += 1
            return None
        if self._first_in_seq < 0:
            self._rebase(packet, now)
        elif seq_diff(packet.sequence_number, self._first_in_seq) < 0:
            # Older than the switch: would collide with the previous source.
            self.dropped += 1
            return None
        seq = (packet.sequence_number + self._seq_offset) & 0xFFFF
        ts = (packet.timestamp + self._ts_offset) & 0xFFFFFFFF
        if self._last_seq is None or seq_diff(seq, self._last_seq) > 0:
            self._last_seq = seq
            self._last_ts = ts
            self._last_at = now
        pt = self.payload_types.get(packet.payload_type, packet.payload_type)
        return rewrite_header(packet.data, self.ssrc, seq, ts, pt)

    def _rebase(self, packet: RtpPacket, now: float) -> None:
        self._first_in_seq = packet.sequence_number
        if self._last_seq is None:
            self._seq_offset = 0
            self._ts_offset = 0
            return
        next_seq = (self._last_seq + 1) & 0xFFFF
        self._seq_offset = (next_seq - packet.sequence_number) & 0xFFFF
        if self._delta is not None:
            offset = (self._ts_offset + self._delta) & 0xFFFFFFFF
            ahead = ((packet.timestamp + offset - self._last_ts) & 0xFFFFFFFF)
            if 0 < ahead < self.clock_rate * 5:  # forward, and not by more than a stall could explain
                self._ts_offset = offset
                return
        ticks = max(1, round((now - self._last_at) * self.clock_rate))
        next_ts = (self._last_ts + ticks) & 0xFFFFFFFF
        self._ts_offset = (next_ts - packet.timestamp) & 0xFFFFFFFF
