"""The feedback accounting in C decides as the Python one, to the bit (netcore/cc/accounting.py, _feedback.c).

Both are driven with the same calls, and after every call their answers
and their whole state (history, losses reported, acknowledged rate,
trendline points, detector threshold and timers) must be equal: floats
compared with ``==``, not approximately.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import example, given, settings, strategies as st

from netcore.cc import BandwidthEstimator
from netcore.cc.accounting import FeedbackAccounting, compiled_accounting
from netcore.cc.delay import BandwidthUsage
from tests.cc.sim import run_call

MBIT = 1_000_000


def compiled():
    accounting = compiled_accounting()
    assert type(accounting).__module__ == "netcore.cc._feedback"
    return accounting


def call(name: str, one, other, *args, compare: bool = True):
    assert getattr(one, name)(*args) == getattr(other, name)(*args)
    if compare:
        assert one.state() == other.state()
        assert len(one.history()) == len(other)


def stream(seed: int, packets: int = 3000) -> list[tuple]:
    """A sender's calls from one seed: frames and audio sent (now and then in a batch, some in probes), the
    16-bit numbers wrapping and jumping, and feedback every 100 ms whose arrivals follow a queue that grows,
    drains and jitters, with losses, late reports, repeats and numbers never sent."""
    rng = random.Random(seed)
    calls: list[tuple] = []
    seq = rng.randrange(0x10000)
    now = rng.uniform(0, 1000)
    queue = 0.0
    slope = 0.0
    pending: list[tuple[int, float]] = []  # (seq, arrival or None) not yet reported
    lost_before: list[int] = []
    next_feedback = now + 0.1
    for _ in range(packets):
        now += rng.choice((0.0, 0.0005, 0.002, 1 / 30 / 3, 0.02, rng.uniform(0, 0.05)))
        if rng.random() < 0.01:
            slope = rng.choice((0.0, 0.3, -0.3, 1.0, 0.05))
        queue = max(0.0, queue + slope * 0.01 + rng.gauss(0, 0.0005))
        burst = [(seq + i, rng.choice((1150, 100, 1000, rng.randrange(1, 1500)))) for i in range(rng.randrange(1, 5))]
        seq += len(burst) + (rng.randrange(1, 200) if rng.random() < 0.005 else 0)
        probe = rng.choice((None, None, None, 1, 2)) if rng.random() < 0.05 else None
        if probe is None and rng.random() < 0.3:
            calls.append(("sent_many", [(s, size, now) for s, size in burst]))
        else:
            for s, size in burst:
                calls.append(("sent", s, size, now, probe))
        for s, _ in burst:
            arrival = None if rng.random() < 0.03 else now + 0.02 + queue + abs(rng.gauss(0, 0.001))
            pending.append((s, arrival))
        if now >= next_feedback:
            next_feedback = now + 0.1
            report = sorted(pending, key=lambda p: p[0])
            if lost_before and rng.random() < 0.5:  # a late report: numbers lost before, received after all
                report += [(s, now - 0.01) for s in lost_before]
                lost_before = []
            if rng.random() < 0.05:
                report.append((rng.randrange(0x10000), now))  # a number never sent (or long forgotten)
            if rng.random() < 0.05 and report:
                report.append(report[0])  # repeated
            lost_before += [s for s, a in report if a is None]
            calls.append(("feedback", report, now + 0.025))
            pending = []
    return calls


@pytest.mark.parametrize("seed", range(12))
def test_a_long_stream_is_accounted_alike_to_the_bit(seed):
    python, c = FeedbackAccounting(), compiled()
    for name, *args in stream(seed):
        call(name, python, c, *args, compare=name == "feedback")


def test_the_streams_reach_every_detector_state():
    # the streams above are worth comparing only if they take the detector through its states
    seen = set()
    for seed in range(12):
        accounting = FeedbackAccounting()
        for name, *args in stream(seed):
            getattr(accounting, name)(*args)
            seen.add(accounting.usage)
    assert seen == set(BandwidthUsage)


@given(st.lists(st.one_of(
    st.tuples(st.just("sent"), st.integers(-5, 0x1FFFF), st.integers(0, 1500), st.floats(-1e6, 1e6),
              st.one_of(st.none(), st.integers(0, 5))),
    st.tuples(st.just("sent_many"), st.lists(st.tuples(st.integers(0, 0xFFFF), st.integers(0, 1500),
                                                       st.floats(-1e6, 1e6)), max_size=30)),
    st.tuples(st.just("feedback"), st.lists(st.tuples(st.integers(0, 0xFFFF),
                                                      st.one_of(st.none(), st.floats(-1e6, 1e6))), max_size=40),
              st.floats(-1e6, 1e6))), max_size=60))
@settings(max_examples=300, deadline=None)
def test_arbitrary_calls_are_accounted_alike_to_the_bit(calls):
    python, c = FeedbackAccounting(), compiled()
    for name, *args in calls:
        call(name, python, c, *args)


def test_the_history_is_bounded_and_forgets_the_oldest_first_in_both():
    python, c = FeedbackAccounting(), compiled()
    for i in range(20_000):
        call("sent", python, c, (i * 7) & 0xFFFF, 1000, i * 0.0001, None, compare=i % 2000 == 0)
    call("sent_many", python, c, [(i, 500, 3.0) for i in range(0, 0x10000, 3)])
    assert len(c) == 8192


def test_the_compiled_history_holds_what_is_unreported_not_every_number():
    # a subscriber's numbers go round the 16 bits every few minutes: the memory follows the packets not yet
    # reported (slots reused), not the numbers seen
    c = compiled()
    for start in range(0, 200_000, 100):
        c.sent_many([(s & 0xFFFF, 1000, s * 0.001) for s in range(start, start + 100)])
        c.feedback([(s & 0xFFFF, s * 0.001 + 0.02) for s in range(start, start + 90)], start * 0.001 + 0.1)
    assert len(c) <= 8192  # the tenth never reported: bounded
    assert c.slots <= 16384


@pytest.mark.parametrize("schedule, loss", [
    ([(0, 2 * MBIT), (15, 300_000), (30, 2 * MBIT)], 0.0),
    ([(0, 1 * MBIT)], 0.05),
])
def test_a_simulated_call_takes_the_same_decisions_with_either(schedule, loss):
    # the whole estimator (rate controls, probes, pacer) over a bottleneck: the same trace to the bit
    with_python = run_call(schedule, 40, loss=loss, accounting=FeedbackAccounting)
    with_c = run_call(schedule, 40, loss=loss, accounting=compiled)
    assert with_python == with_c
    assert with_c.overuse > 0 or loss


def test_an_estimator_fed_the_same_stream_publishes_the_same_targets():
    python = BandwidthEstimator(accounting=FeedbackAccounting())
    c = BandwidthEstimator(accounting=compiled())
    for name, *args in stream(99, 5000):
        for estimator in (python, c):
            if name == "sent":
                estimator.packet_sent(*args)
            elif name == "sent_many":
                estimator.packets_sent(args[0])
            else:
                estimator.feedback_received(*args)
                if estimator is c:
                    assert (c.target_bitrate, c.usage, c.acked_bitrate, c.unknown_reports) == (
                        python.target_bitrate, python.usage, python.acked_bitrate, python.unknown_reports)
        assert python.poll_probe(0.0) == c.poll_probe(0.0)


def test_the_compiled_accounting_is_the_default_and_the_environment_selects_the_python_one(monkeypatch):
    monkeypatch.setenv("NETCORE_CC_ACCOUNTING", "c")
    assert type(BandwidthEstimator()._accounting).__module__ == "netcore.cc._feedback"
    monkeypatch.setenv("NETCORE_CC_ACCOUNTING", "python")
    assert isinstance(BandwidthEstimator()._accounting, FeedbackAccounting)


@st.composite
def transport_feedback(draw):
    """A parsed transport-wide feedback packet's fields: its base as an offset from the first number sent (so
    that it reports packets sent), the signed 24-bit reference time, statuses and a delta for each received
    one (small 0..255 ticks, large any 16-bit value)."""
    statuses = draw(st.lists(st.sampled_from((0, 1, 2)), max_size=60))
    deltas = [draw(st.integers(0, 255) if s == 1 else st.integers(-0x8000, 0x7FFF)) for s in statuses if s]
    return (draw(st.integers(-5, 20)), draw(st.integers(0, 0xFFFFFF)), statuses, deltas)


@given(st.integers(0, 0xFFFF), st.lists(st.tuples(st.integers(0, 1500), st.floats(-1e4, 1e4),
                                                   st.one_of(st.none(), st.integers(0, 3))), max_size=80),
       st.lists(transport_feedback(), min_size=1, max_size=4), st.floats(-1e4, 1e4))
@example(0xFFFE, [(1000, 5.0, 1), (1000, 5.001, 1), (500, 5.002, None)],  # a negative reference time, wrapping
         [(0, 0x900000, [1, 0, 2], [3, -700])], 6.0)
@settings(max_examples=300, deadline=None)
def test_a_feedback_packet_is_accounted_as_the_feedback_of_its_arrival_times(first, sent, packets, now):
    # feedback_twcc (the transport's call) against feedback(arrival_times(packet)), in C and in Python; probe
    # packets among those sent, so that the arrival times themselves come back, not only their differences
    from netcore.rtp.feedback import TransportFeedback
    from netcore.rtp.twcc import arrival_times

    python, c, c_listed = FeedbackAccounting(), compiled(), compiled()
    for accounting in (python, c, c_listed):
        for i, (size, at, cluster) in enumerate(sent):
            accounting.sent((first + i) & 0xFFFF, size, at, cluster)
    for offset, reference, statuses, deltas in packets:
        base = (first + offset) & 0xFFFF  # the 16 bits wrap where first is near the top
        packet = TransportFeedback(1, 2, base, reference, 0, statuses, deltas)
        listed = c_listed.feedback(arrival_times(packet), now)
        assert c.feedback_twcc(base, reference, statuses, deltas, now) == listed
        assert python.feedback_twcc(base, reference, statuses, deltas, now) == listed
        assert c.state() == c_listed.state() == python.state()


def test_an_estimator_reads_a_feedback_packet_as_the_list_of_its_arrival_times():
    from netcore.rtp.twcc import TwccRecorder, arrival_times

    listed, packets = BandwidthEstimator(accounting=compiled()), BandwidthEstimator(accounting=compiled())
    recorder, now = TwccRecorder(1, 2), 10.0
    for seq in range(3000):
        now += 0.004
        for estimator in (listed, packets):
            estimator.packet_sent(seq & 0xFFFF, 1000, now)
        if seq % 7:  # one in seven lost
            recorder.record(seq & 0xFFFF, now + 0.02 + (seq % 50) * 0.0004)
        if seq % 25 == 24:
            for feedback in recorder.build():
                listed.feedback_received(arrival_times(feedback), now + 0.03)
                packets.twcc_received(feedback, now + 0.03)
                assert (packets.target_bitrate, packets.usage, packets.acked_bitrate, packets.loss_fraction) == (
                    listed.target_bitrate, listed.usage, listed.acked_bitrate, listed.loss_fraction)
    assert listed.feedbacks == packets.feedbacks > 100 and listed.loss_fraction > 0
