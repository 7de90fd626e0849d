"""Transport-wide CC feedback built from arrivals, over the wire and back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from netcore.rtp.rtcp import parse_rtcp, serialize_rtcp
from netcore.rtp.twcc import TICK, TwccRecorder, arrival_times


@given(
    st.integers(0, 0xFFFF),
    st.floats(0, 1000),
    st.lists(st.tuples(st.booleans(), st.floats(0, 0.5)), min_size=1, max_size=400),
    st.integers(1, 3),
)
def test_recorded_arrivals_come_back_within_half_a_tick(first_seq, start, steps, rounds):
    rec = TwccRecorder(sender_ssrc=1, media_ssrc=2)
    expected: dict[int, float | None] = {}
    t = start
    seq = first_seq
    steps = [(True, 0.0)] + steps  # the first packet arrives
    chunk = max(1, len(steps) // rounds)
    reported: dict[int, float | None] = {}
    for i, (received, gap) in enumerate(steps):
        t += gap
        if received:
            rec.record(seq & 0xFFFF, t)
        expected[seq & 0xFFFF] = t if received else None
        seq += 1
        if (i + 1) % chunk == 0 or i == len(steps) - 1:
            packets = rec.build()
            # Over the wire and back.
            for fb in parse_rtcp(serialize_rtcp(packets)) if packets else []:
                for s, at in arrival_times(fb):
                    # Reported once, or again when a late one is reported: as it was, or now received.
                    assert s not in reported or reported[s] is None or reported[s] == at
                    reported[s] = at
    for s, at in expected.items():
        if at is None:
            assert reported.get(s) is None
        else:
            assert abs(reported[s] - at) <= TICK / 2 + 1e-9


def test_large_gap_starts_a_new_feedback_packet():
    rec = TwccRecorder(1)
    rec.record(10, 1.0)
    rec.record(11, 20.0)  # 19 s later: beyond a 16-bit delta
    rec.record(13, 20.001)
    packets = rec.build()
    assert [p.base_sequence for p in packets] == [10, 11]
    assert [p.fb_pkt_count for p in packets] == [0, 1]
    assert arrival_times(packets[1])[1] == (12, None)
    assert rec.build() == []
    rec.record(12, 20.5)  # reported as lost, overtaken by 13: reported again (see below)
    (again,) = rec.build()
    assert rec.late == 1 and arrival_times(again)[0] == (12, 20.5)


def test_a_packet_overtaken_across_a_feedback_is_reported_again_as_received():
    # Reordered on the path by a few ms (3 overtook 2) right as a feedback was built: 2 was reported
    # lost. It is not lost: the next feedback starts at 2 and repeats 3 as it was.
    rec = TwccRecorder(1)
    rec.record(1, 1.000)
    rec.record(3, 1.010)
    (first,) = rec.build()
    assert arrival_times(first) == [(1, 1.0), (2, None), (3, 1.01)]
    rec.record(2, 1.012)
    rec.record(4, 1.020)
    (second,) = rec.build()
    assert [(s, round(t, 4)) for s, t in arrival_times(second)] == [(2, 1.012), (3, 1.01), (4, 1.02)]
    rec.record(2, 1.030)  # a duplicate: nothing more
    assert rec.build() == []
    # 5 lost in the feedback of 6, half a second after 4: reported again alone (nothing newer came).
    rec.record(6, 1.6)
    rec.build()
    rec.record(5, 1.61)
    (third,) = rec.build()
    assert [s for s, _ in arrival_times(third)] == [5]
    # Numbers reported more than half a second of arrivals ago are not gone back to.
    rec.record(7, 2.2)
    rec.build()
    rec.record(0, 2.21)  # older than anything remembered
    assert rec.build() == [] and rec.late == 4


def test_memory_is_bounded():
    rec = TwccRecorder(1, max_packets=100)
    for i in range(1000):
        rec.record(i, i * 0.001)
        assert len(rec) <= 100
    (fb,) = rec.build()
    assert fb.base_sequence == 900 and len(fb.statuses) == 100


def test_feedback_names_a_stream_of_the_sender():
    """libwebrtc acts only on feedback whose media SSRC is one of its streams (0 was ignored, and
    Chromium's estimate then fell to its floor): the SSRC of the last recorded packet is named."""
    rec = TwccRecorder(sender_ssrc=1)
    rec.record(1, 0.010, ssrc=0xA1)
    rec.record(2, 0.011, ssrc=0xB2)
    (fb,) = parse_rtcp(serialize_rtcp(rec.build()))
    assert fb.sender_ssrc == 1 and fb.media_ssrc == 0xB2
    rec.record(3, 0.020, ssrc=0xA1)
    (fb,) = rec.build()
    assert fb.media_ssrc == 0xA1
