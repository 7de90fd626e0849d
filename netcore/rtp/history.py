"""Sent-packet history for answering NACKs (RFC 4585 6.2.1, RFC 4588).

A sender (or a forwarder, on each outgoing stream) keeps the last packets
it sent, indexed by sequence number in a fixed ring, so memory is bounded
by ``capacity`` packets.  A NACK is answered from the ring: the original
packet again, or wrapped in RTX on the repair stream when one is
negotiated.  A packet already retransmitted within ``min_interval`` (about
one RTT) is not sent again: a burst of NACK retries does not multiply the
repair traffic.
"""

from __future__ import annotations

from netcore.errors import UsageError
from netcore.rtp.packet import RtpPacket
from netcore.rtp.rtx import wrap_rtx

__all__ = ["SendHistory"]


class SendHistory:
    """The last ``capacity`` packets of one outgoing SSRC."""

    __slots__ = ("capacity", "_ring", "_sent_at", "rtx_payload_types", "rtx_ssrc", "_rtx_seq", "min_interval")

    def __init__(
        self,
        capacity: int = 1024,
        *,
        rtx_ssrc: int | None = None,
        rtx_payload_types: dict[int, int] | None = None,
        rtx_sequence_start: int = 0,
        min_interval: float = 0.02,
    ) -> None:
        """``rtx_payload_types`` maps each media PT to its RTX PT (``apt``)."""
        if capacity <= 0:
            raise UsageError("capacity must be positive")
        self.capacity = capacity
        self._ring: list[RtpPacket | None] = [None] * capacity
        self._sent_at: list[float] = [-1e18] * capacity
        self.rtx_ssrc = rtx_ssrc
        self.rtx_payload_types = rtx_payload_types or {}
        self._rtx_seq = rtx_sequence_start & 0xFFFF
        self.min_interval = min_interval

    def add(self, packet: RtpPacket) -> None:
        """Remember a packet just sent."""
        i = packet.sequence_number % self.capacity
        self._ring[i] = packet
        self._sent_at[i] = -1e18

    def get(self, sequence_number: int) -> RtpPacket | None:
        """The packet sent with this number, if still held."""
        p = self._ring[sequence_number % self.capacity]
        return p if p is not None and p.sequence_number == sequence_number else None

    def repairable(self, sequence_number: int, now: float) -> RtpPacket | None:
        """The packet with this number if held and not resent within ``min_interval`` of ``now``;
        not marked as resent (see :meth:`resent`): the caller may still decide not to send it."""
        p = self.get(sequence_number & 0xFFFF)
        if p is None or now - self._sent_at[p.sequence_number % self.capacity] < self.min_interval:
            return None
        return p

    def resent(self, sequence_number: int, now: float) -> None:
        """The packet with this number was resent at ``now``."""
        self._sent_at[(sequence_number & 0xFFFF) % self.capacity] = now

    def retransmit(self, lost: list[int], now: float) -> list[RtpPacket]:
        """Packets answering a NACK for ``lost``: RTX-wrapped when an RTX
        stream is configured for their payload type, else as sent."""
        out = []
        for seq in lost:
            p = self.repairable(seq, now)
            if p is None:
                continue
            self.resent(p.sequence_number, now)
            rtx_pt = self.rtx_payload_types.get(p.payload_type)
            if self.rtx_ssrc is not None and rtx_pt is not None:
                out.append(wrap_rtx(p, rtx_pt, self._rtx_seq, self.rtx_ssrc))
                self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
            else:
                out.append(p)
        return out
