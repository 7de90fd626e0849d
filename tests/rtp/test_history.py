"""Answering NACKs from the send history, plain and RTX."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from netcore.rtp.history import SendHistory
from netcore.rtp.packet import RtpPacket
from netcore.rtp.rtcp import Nack, parse_rtcp
from netcore.rtp.rtx import unwrap_rtx


def _pkt(seq):
    return RtpPacket.build(
        payload_type=96, sequence_number=seq & 0xFFFF, timestamp=seq * 3000, ssrc=5,
        payload=seq.to_bytes(4, "big"),
    )


@given(st.integers(0, 0xFFFF), st.integers(1, 600), st.lists(st.integers(0, 700), max_size=30))
def test_nacked_packets_come_back_through_rtx(start, sent, asked):
    h = SendHistory(256, rtx_ssrc=9, rtx_payload_types={96: 97}, rtx_sequence_start=100)
    packets = [_pkt(start + i) for i in range(sent)]
    for p in packets:
        h.add(p)
    held = {p.sequence_number: p for p in packets[-256:]}
    lost = sorted({(start + a) & 0xFFFF for a in asked})
    nack = parse_rtcp(Nack(1, 5, lost).serialize())[0]
    out = h.retransmit(nack.lost, now=1.0)
    expected = [s for s in nack.lost if s in held]
    assert [unwrap_rtx(r, 96, 5).serialize() for r in out] == [held[s].serialize() for s in expected]
    assert [r.sequence_number for r in out] == [(100 + i) & 0xFFFF for i in range(len(out))]
    assert all(r.ssrc == 9 and r.payload_type == 97 for r in out)
    # Asked again within the interval: nothing is resent.
    assert h.retransmit(nack.lost, now=1.001) == []


def test_plain_retransmission_without_rtx():
    h = SendHistory(4)
    for s in range(10):
        h.add(_pkt(s))
    assert h.get(3) is None and h.get(9) is not None  # the ring holds 6..9
    assert [p.sequence_number for p in h.retransmit([5, 6, 9], 0.0)] == [6, 9]
    assert [p.sequence_number for p in h.retransmit([6], 0.5)] == [6]
