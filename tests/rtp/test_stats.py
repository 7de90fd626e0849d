"""Sequence unwrapping, RFC 3550 appendix A statistics, report generation."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from netcore.rtp.packet import RtpPacket
from netcore.rtp.reports import RtcpReporter, ntp_from_seconds, ntp_middle, ntp_to_seconds
from netcore.rtp.rtcp import Bye, ReceiverReport, SenderReport, parse_rtcp
from netcore.rtp.sequence import SequenceUnwrapper, TimestampUnwrapper, seq_diff
from netcore.rtp.stats import ReceiverStatistics


@given(st.integers(0, 0xFFFF), st.lists(st.integers(-1000, 1000), max_size=200))
def test_sequence_unwrapper_tracks_true_counter(start, steps):
    true = start + (1 << 20)  # far from zero so it never goes negative
    u = SequenceUnwrapper()
    base = u.unwrap(true & 0xFFFF)
    offset = true - base
    for step in steps:
        true += step
        assert u.unwrap(true & 0xFFFF) + offset == true


def test_timestamp_unwrapper_wraps_forward():
    u = TimestampUnwrapper()
    assert u.unwrap(0xFFFFFF00) == 0xFFFFFF00
    assert u.unwrap(0x100) == 0x100000100
    assert u.unwrap(0xFFFFFFF0) == 0xFFFFFFF0  # reordered from before the wrap
    assert SequenceUnwrapper().unwrap(0) == 0
    assert seq_diff(1, 65535) == 2 and seq_diff(65535, 1) == -2


@given(
    st.integers(0, 0xFFFF),
    st.lists(st.booleans(), min_size=3, max_size=400),
)
def test_cumulative_loss_matches_gaps(start, delivered):
    # In-order delivery with random loss; the first two packets always arrive
    # (probation), the last too (so the highest is known).
    delivered = [True, True] + delivered + [True]
    s = ReceiverStatistics(90000)
    for i, ok in enumerate(delivered):
        if ok:
            s.update((start + i) & 0xFFFF, i * 3000, i / 30)
    # Counting starts at the second packet (it ends probation).
    expected = len(delivered) - 1
    lost = expected - sum(delivered[1:])
    assert s.expected == expected
    assert s.packets_lost == lost
    assert s.extended_highest_sequence - s.base_seq == len(delivered) - 2
    report = s.report()
    assert report.packets_lost == lost
    assert report.fraction_lost == (lost << 8) // expected if lost > 0 else report.fraction_lost == 0


def test_probation_restart_and_large_jump():
    s = ReceiverStatistics(8000)
    assert not s.update(10, 0, 0.0)
    assert not s.update(20, 0, 0.0)  # out of sequence: still on probation
    assert s.update(21, 0, 0.0) and s.validated
    assert s.update(22, 160, 0.02)
    # A jump beyond MAX_DROPOUT is rejected once, accepted when confirmed.
    assert not s.update(30000, 0, 0.04)
    assert s.update(30001, 160, 0.06)
    assert s.base_seq == 30001 and s.received == 1  # RFC 3550 A.1 restarts there


def test_jitter_converges_to_rfc_estimate():
    # Transit alternates 0 and 10 ms: |D| = 10 ms = 80 units at 8 kHz.
    s = ReceiverStatistics(8000, probation=0)
    for i in range(400):
        s.update(i, i * 160, i * 0.02 + (0.01 if i % 2 else 0.0))
    assert 78 <= s.jitter <= 80


def _rtp(seq, ts, ssrc, n=100):
    return RtpPacket.build(payload_type=96, sequence_number=seq, timestamp=ts, ssrc=ssrc, payload=bytes(n))


def test_reporters_exchange_sr_rr_and_measure_rtt():
    # A sends media to B; wallclocks differ only by the injected offsets.
    a = RtcpReporter(ssrc=0xA, clock_rate=90000, wallclock_offset=1_700_000_000.0)
    b = RtcpReporter(ssrc=0xB, clock_rate=90000, wallclock_offset=1_700_000_000.0)
    one_way = 0.025
    now = 0.0
    for i in range(50):
        now = i * 0.033
        p = _rtp(i, 1000 + i * 2970, 0xA)
        a.handle_rtp_sent(p, now)
        if i != 20:  # one loss
            b.handle_rtp_received(p, now + one_way)
    sr = a.report(now)
    assert isinstance(sr, SenderReport) and sr.packet_count == 50 and sr.octet_count == 5000
    assert sr.rtp_timestamp == 1000 + 49 * 2970
    # B receives the SR, holds it 0.2 s, then reports back.
    b.handle_rtcp(parse_rtcp(sr.serialize()), now + one_way)
    rr = b.report(now + one_way + 0.2)
    assert isinstance(rr, ReceiverReport)
    (block,) = rr.reports
    assert block.ssrc == 0xA and block.packets_lost == 1
    assert block.highest_sequence == 49 and block.lsr == ntp_middle(sr.ntp_timestamp)
    assert abs(block.dlsr / 65536 - 0.2) < 1e-3
    a.handle_rtcp(parse_rtcp(rr.serialize()), now + 2 * one_way + 0.2)
    assert a.rtt is not None and abs(a.rtt - 2 * one_way) < 1e-3
    # B's mapping turns A's RTP timestamps into A's wallclock.
    m = b.mapping(0xA)
    assert m is not None
    t = m.to_seconds(1000 + 10 * 2970)
    assert abs(t - (1_700_000_000.0 + 10 * 0.033)) < 1e-3
    assert m.to_rtp(t) == 1000 + 10 * 2970
    # Without new media A sends an RR next, in a compound packet with its CNAME.
    rr_a, sdes = parse_rtcp(a.compound(now + 1, b"alice"), reduced_size=False)
    assert isinstance(rr_a, ReceiverReport) and sdes.chunks[0].cname == b"alice"
    # A BYE from A makes B forget it.
    b.handle_rtcp([Bye([0xA])], now + 2)
    assert b.statistics(0xA) is None and b.report(now + 2).reports == []


def test_ntp_conversions():
    t = 1_700_000_000.25
    ntp = ntp_from_seconds(t)
    assert ntp >> 32 == int(t) + 2208988800 and (ntp & 0xFFFFFFFF) == 1 << 30
    assert abs(ntp_to_seconds(ntp) - t) < 1e-6
