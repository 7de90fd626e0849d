"""Forwarding several sources onto one continuous outgoing stream."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from netcore.rtp.forward import StreamRewriter
from netcore.rtp.packet import RtpPacket
from netcore.rtp.sequence import seq_diff


@given(
    st.lists(st.tuples(st.integers(0, 0xFFFF), st.integers(0, 2**32 - 1)), min_size=2, max_size=3),
    st.lists(st.tuples(st.integers(0, 2), st.integers(1, 30)), min_size=1, max_size=12),
)
def test_switching_sources_keeps_the_stream_continuous(starts, schedule):
    sources = [dict(ssrc=100 + i, seq=s, ts=t) for i, (s, t) in enumerate(starts)]
    rw = StreamRewriter(ssrc=7, clock_rate=90000, payload_types={96: 100})
    out = []
    now = 0.0
    for which, count in schedule:
        which %= len(sources)
        rw.select(sources[which]["ssrc"])
        for _ in range(count):
            now += 1 / 30
            for src in sources:  # every source keeps sending
                p = RtpPacket.build(
                    payload_type=96, sequence_number=src["seq"], timestamp=src["ts"],
                    ssrc=src["ssrc"], payload=src["ssrc"].to_bytes(4, "big"),
                )
                src["seq"] = (src["seq"] + 1) & 0xFFFF
                src["ts"] = (src["ts"] + 3000) & 0xFFFFFFFF
                data = rw.rewrite(p, now)
                if src["ssrc"] == rw.source:
                    assert data is not None
                    out.append((RtpPacket.parse(bytes(data)), p))
                else:
                    assert data is None
    for (a, pa), (b, pb) in zip(out, out[1:]):
        assert seq_diff(b.sequence_number, a.sequence_number) == 1
        dt = (b.timestamp - a.timestamp) & 0xFFFFFFFF
        assert 0 < dt < 0x80000000
        if pa.ssrc == pb.ssrc:
            assert dt == 3000
    for o, p in out:
        assert o.ssrc == 7 and o.payload_type == 100 and o.payload == p.payload


def test_late_packets_of_the_previous_source_are_dropped():
    rw = StreamRewriter(ssrc=7, clock_rate=48000)
    rw.select(1)
    a = [RtpPacket.build(payload_type=111, sequence_number=s, timestamp=s * 960, ssrc=1) for s in range(5)]
    b = [RtpPacket.build(payload_type=111, sequence_number=s, timestamp=s * 960, ssrc=2) for s in (500, 501)]
    for p in a[:4]:
        assert rw.rewrite(p, 0.0) is not None
    rw.select(2)
    assert RtpPacket.parse(bytes(rw.rewrite(b[1], 0.1))).sequence_number == 4
    assert rw.rewrite(b[0], 0.1) is None  # before the switch point
    assert rw.rewrite(a[4], 0.1) is None  # the old source
    assert rw.dropped == 2


def test_a_stream_longer_than_half_the_sequence_space_is_forwarded_whole():
    """Incoming numbers are unwrapped: 70,000 packets (past 32,768 from the switch, and past the wrap)
    all go out, one number after the other."""
    rw = StreamRewriter(ssrc=7, clock_rate=90000)
    rw.select(1)
    last = None
    for i in range(70_000):
        out = rw.rewrite(RtpPacket.build(payload_type=96, sequence_number=(40_000 + i) & 0xFFFF, timestamp=i,
                                         ssrc=1, payload=b"x"), i * 0.001)
        assert out is not None
        seq = int.from_bytes(out[2:4], "big")
        assert last is None or seq == (last + 1) & 0xFFFF
        last = seq
    assert rw.dropped == 0
