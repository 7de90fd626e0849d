"""Send-side bandwidth estimation over a simulated bottleneck, and its pieces one by one."""

from __future__ import annotations

from collections import deque

from hypothesis import given, settings, strategies as st

from netcore.cc import BandwidthEstimator, Pacer
from netcore.cc.aimd import _TRANSITIONS, AimdRateControl, RateControlState
from netcore.cc.delay import BandwidthUsage, InterArrival, OveruseDetector, TrendlineEstimator, _slope
from netcore.cc.loss import AckedBitrate, LossBasedControl
from netcore.cc.probe import MAX_PROBE_INTERVAL, ProbeController, ProbeResults
from tests.cc.sim import run_call

MBIT = 1_000_000


def test_a_capacity_drop_is_followed_within_3_s_and_its_return_within_15_s():
    trace = run_call([(0, 2 * MBIT), (15, 300_000), (30, 2 * MBIT)], 50)
    # Second k of the call is trace index k-1; the drop happens at the end of second 15.
    assert min(trace.target[2:15]) > 1.5 * MBIT  # the start probes found the link
    assert max(trace.sent_bps[17:30]) < 360_000 and trace.sent_bps[17] < 300_000
    assert max(trace.loss[18:30]) < 0.02
    back = next(k for k in range(30, 50) if trace.target[k] > 1.5 * MBIT)
    assert back - 30 < 15
    assert max(trace.loss[30:]) < 0.02


def test_a_clear_link_grows_to_the_maximum_without_overuse():
    trace = run_call([(0, 20 * MBIT)], 20, maximum=2.5 * MBIT)
    assert trace.target[-1] == 2.5 * MBIT
    assert trace.overuse == 0
    assert max(trace.loss) == 0


def test_the_queue_stays_short_on_a_steady_bottleneck():
    trace = run_call([(0, 1 * MBIT)], 40)
    assert max(trace.queue_delay[10:]) < 0.1
    assert 0.7 * MBIT < sum(trace.sent_bps[10:]) / 30 < 1.05 * MBIT


def test_heavy_random_loss_lowers_the_target_light_loss_does_not():
    heavy = run_call([(0, 20 * MBIT)], 20, loss=0.2)
    light = run_call([(0, 20 * MBIT)], 20, loss=0.01)
    assert heavy.target[-1] < 300_000
    assert light.target[-1] > 2 * MBIT


def test_remb_caps_the_target():
    estimator = BandwidthEstimator(initial=1 * MBIT)
    estimator.remb_received(200_000)
    assert estimator.target_bitrate == 200_000


@given(st.lists(st.tuples(st.integers(0, 0xFFFF), st.one_of(st.none(), st.floats(-1e6, 1e6))), max_size=200),
       st.lists(st.tuples(st.integers(0, 0xFFFF), st.integers(1, 1500)), max_size=200))
@settings(max_examples=200, deadline=None)
def test_arbitrary_feedback_never_raises_and_the_target_stays_in_bounds(reports, sent):
    estimator = BandwidthEstimator(initial=500_000, minimum=50_000, maximum=3 * MBIT)
    for i, (seq, size) in enumerate(sent):
        estimator.packet_sent(seq, size, i * 0.001, probe_cluster=1 if i % 7 == 0 else None)
    for i in range(0, len(reports), 20):
        estimator.feedback_received(reports[i:i + 20], 1.0 + i * 0.01)
        assert 50_000 <= estimator.target_bitrate <= 3 * MBIT


def test_the_sent_history_is_bounded():
    estimator = BandwidthEstimator()
    for i in range(100_000):
        estimator.packet_sent(i & 0xFFFF, 1000, i * 0.0001)
    assert len(estimator._accounting.history()) <= 8192


def test_a_batch_of_sent_packets_is_remembered_as_one_by_one():
    # the call server's compiled path hands its copies over in batches: the history (bounded, 16-bit numbers
    # wrapping) and what the feedback then does with it must be those of packet_sent called for each
    one, batch = BandwidthEstimator(), BandwidthEstimator()
    sent = [(i & 0xFFFF, 900 + i % 300, i * 0.0002) for i in range(70_000)]
    for seq, size, at in sent:
        one.packet_sent(seq, size, at)
    totals = [batch.packets_sent(sent[i:i + 5000]) for i in range(0, len(sent), 5000)]
    assert sum(totals) == sum(size for _, size, _ in sent)
    assert one._accounting.history() == batch._accounting.history()
    arrivals = [(seq, at + 0.03) for seq, _, at in sent[-400:]]
    one.feedback_received(arrivals, 14.1)
    batch.feedback_received(arrivals, 14.1)
    assert one.target_bitrate == batch.target_bitrate and one.acked_bitrate == batch.acked_bitrate


# -- the pieces --------------------------------------------------------------------


def test_inter_arrival_groups_packets_sent_within_5_ms():
    groups = InterArrival()
    assert groups.add(0.000, 0.050, 100) is None
    assert groups.add(0.004, 0.051, 100) is None  # same group
    assert groups.add(0.010, 0.062, 100) is None  # starts the second group: no pair yet
    deltas = groups.add(0.020, 0.080, 100)  # third group: deltas of the first two
    assert deltas is not None
    send_delta, arrival_delta, size_delta = deltas
    assert abs(send_delta - 0.006) < 1e-9 and abs(arrival_delta - 0.011) < 1e-9 and size_delta == -100


def test_the_trend_is_the_growth_of_queuing_delay():
    trend = TrendlineEstimator()
    arrival = 0.0
    for _ in range(40):
        arrival += 0.012  # sent 10 ms apart, arriving 12 ms apart: the queue grows 2 ms a group
        trend.update(0.010, 0.012, arrival)
    assert trend.trend > 0.1
    flat = TrendlineEstimator()
    for i in range(40):
        flat.update(0.010, 0.010, i * 0.010)
    assert flat.trend == 0.0


@settings(max_examples=300)
@given(st.lists(st.tuples(st.floats(0, 1e6), st.floats(-1e3, 1e3)), min_size=2, max_size=20))
def test_the_trend_slope_is_the_least_squares_slope_to_the_bit(points):
    # _slope runs per packet group of every subscriber's feedback and is written for speed; it must give what
    # the textbook formula gives, bit for bit (the estimator's decisions follow its comparisons)
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    denominator = sum((x - mean_x) ** 2 for x, _ in points)
    expected = sum((x - mean_x) * (y - mean_y) for x, y in points) / denominator if denominator else None
    assert _slope(deque(points)) == expected


def test_overuse_needs_the_trend_over_the_threshold_for_a_while():
    detector = OveruseDetector()
    assert detector.detect(20.0, 0.005, 0.000) is BandwidthUsage.NORMAL  # once is not enough
    assert detector.detect(21.0, 0.005, 0.020) is BandwidthUsage.OVERUSE
    assert detector.detect(-30.0, 0.005, 0.040) is BandwidthUsage.UNDERUSE
    assert detector.detect(0.0, 0.005, 0.060) is BandwidthUsage.NORMAL


def test_the_threshold_adapts_within_its_bounds():
    detector = OveruseDetector()
    for i in range(2000):
        detector.detect(0.0, 0.005, i * 0.01)
    assert detector.threshold == 6.0
    for i in range(2000, 4000):
        detector.detect(20.0 if i % 2 else 10.0, 0.005, i * 0.01)
    assert 6.0 < detector.threshold < 600.0


def test_every_signal_and_state_has_a_transition():
    assert len(_TRANSITIONS) == len(BandwidthUsage) * len(RateControlState)


def test_overuse_cuts_to_beta_times_the_acknowledged_rate_once_per_round_trip():
    aimd = AimdRateControl(1 * MBIT)
    aimd.update(BandwidthUsage.OVERUSE, 800_000, 1.0)
    assert aimd.rate == 0.85 * 800_000
    aimd.update(BandwidthUsage.OVERUSE, 600_000, 1.05)  # within one RTT: the old queue still shows
    assert aimd.rate == 0.85 * 800_000
    assert aimd.state is RateControlState.HOLD


def test_increase_is_multiplicative_far_from_capacity_and_additive_near_it():
    far = AimdRateControl(500_000)
    far.update(BandwidthUsage.NORMAL, 500_000, 0.0)
    far.update(BandwidthUsage.NORMAL, 500_000, 1.0)
    assert abs(far.rate - 540_000) < 1_000  # 8 % in a second
    near = AimdRateControl(500_000)
    near.update(BandwidthUsage.OVERUSE, 500_000, 0.0)
    near.update(BandwidthUsage.NORMAL, 425_000, 0.5)  # DECREASE -> HOLD -> INCREASE
    before = near.rate
    near.update(BandwidthUsage.NORMAL, 425_000, 1.5)
    assert 0 < near.rate - before < 40_000


def test_loss_based_control_follows_the_rfc_bands():
    control = LossBasedControl(1 * MBIT)
    control.update(80, 20, 1.0)  # 20 % lost
    assert control.rate == 1 * MBIT * 0.9
    control.update(95, 5, 2.0)  # 5 %: hold
    assert control.rate == 1 * MBIT * 0.9
    control.update(100, 0, 3.0)  # none: +8 %
    assert abs(control.rate - 1 * MBIT * 0.9 * 1.08) < 1e-6
    control.update(5, 5, 4.0)  # too few packets to judge: counted, nothing changes yet
    assert abs(control.rate - 1 * MBIT * 0.9 * 1.08) < 1e-6


def test_numbers_reported_lost_then_received_count_as_received():
    # A path that reorders within its feedback interval: every fifth packet is overtaken and
    # reported lost by one feedback, then received by the next (its receiver reports it again).
    # The loss fraction is what was really lost (none), not the fifth that was overtaken.
    estimator = BandwidthEstimator(1 * MBIT, 30_000, 10 * MBIT)
    seq = 0
    for round_ in range(40):
        now = round_ * 0.1
        for i in range(10):
            estimator.packet_sent(seq + i, 1200, now + i * 0.005)
        late = [seq + 4, seq + 9]
        first = [(s, None if s in late else now + 0.03 + (s - seq) * 0.005) for s in range(seq, seq + 10)]
        estimator.feedback_received(first, now + 0.08)
        again = [(s, now + 0.09) for s in late]
        estimator.feedback_received(again, now + 0.1)
        seq += 10
    assert estimator.loss_fraction == 0.0
    control = LossBasedControl(1 * MBIT)
    control.update(10, 10, 1.0)  # judged: 50 % lost ...
    control.update(0, -10, 1.1)  # ... then taken back: the next window starts owing 10 losses
    control.update(20, 5, 1.2)
    assert control.loss == 0.0


def test_acked_bitrate_counts_bytes_over_the_window():
    acked = AckedBitrate(window=0.5)
    for i in range(100):
        acked.add(i * 0.01, 1250)  # 1250 bytes every 10 ms = 1 Mbit/s
    assert abs(acked.rate - 1 * MBIT) < 20_000


def test_probes_at_start_and_after_a_large_drop_only():
    probes = ProbeController(300_000, 5 * MBIT)
    first, second = probes.poll(0.0), probes.poll(0.2)
    assert (first.rate, second.rate) == (900_000, 1_800_000)
    assert probes.poll(0.4) is None
    for i in range(100):
        probes.update(1.8 * MBIT, False, 1 + i * 0.1)
    assert probes.poll(12.0) is None  # steady: no probing
    probes.update(300_000, True, 12.0)
    probes.update(320_000, False, 12.5)
    probes.update(330_000, False, 14.3)
    assert probes.poll(14.3) is None  # clear for 1.8 s: the drop's repairs may still be settling
    probes.update(330_000, False, 14.6)
    cluster = probes.poll(14.6)
    assert cluster is not None and cluster.rate == 660_000


def test_the_pacer_spreads_a_frame_at_its_rate_and_lets_audio_first():
    pacer: Pacer[str] = Pacer(400_000, factor=1.0)  # 400 kbit/s = 250 bytes per 5 ms
    for i in range(8):
        pacer.enqueue(f"v{i}", 250, 0.0)
    pacer.enqueue("a", 100, 0.0, audio=True)
    assert pacer.poll(0.0) == ["a", "v0"]
    sent = []
    now = 0.0
    while len(pacer):
        now = pacer.next_deadline(now)
        sent.extend(pacer.poll(now))
    assert sent == [f"v{i}" for i in range(1, 8)]
    assert 0.03 < now < 0.045  # 8 * 250 bytes at 400 kbit/s is 40 ms


def test_the_pacer_sends_what_waited_too_long_anyway():
    pacer: Pacer[int] = Pacer(8_000, factor=1.0, max_queue_time=0.2)
    for i in range(10):
        pacer.enqueue(i, 1000, 0.0)
    pacer.poll(0.0)
    assert len(pacer.poll(0.25)) == 9


def test_a_probe_counts_once_most_of_it_is_reported_and_never_above_its_rate():
    results = ProbeResults()
    results.started(1, 600_000)
    for _ in range(20):
        results.sent(1)
    # The first packets leave in a burst (a key frame, tagged too) and cross an idle link's
    # token bucket at line rate: 1200 bytes every millisecond is 9.6 Mbit/s.
    early = [results.add(1, i * 0.001, 0.02 + i * 0.001, 1200) for i in range(10)]
    assert early == [None] * 10
    # The rest arrive at the link's 300 kbit/s (1200 bytes per 32 ms).
    late = [results.add(1, 0.01 + i * 0.002, 0.03 + i * 0.032, 1200) for i in range(10)]
    measured = [r for r in late if r is not None]
    assert measured and max(measured) <= 600_000


def test_a_probe_result_is_capped_at_the_rate_it_tested():
    results = ProbeResults()
    results.started(1, 500_000)
    for _ in range(5):
        results.sent(1)
    rates = [results.add(1, i * 0.001, i * 0.001, 1200) for i in range(5)]
    assert rates[-1] == 500_000


def test_a_probe_that_carried_its_rate_is_followed_by_one_at_twice_the_measurement():
    probes = ProbeController(300_000, 2_500_000)
    first = probes.poll(0.0)
    probes.poll(0.2)  # the second start probe (1.8 Mbit/s)
    probes.measured(first.cluster_id, 850_000)
    assert probes.poll(0.4) is None  # the second start probe already runs
    second = ProbeController(300_000, 2_500_000)
    for _ in range(2):
        cluster = second.poll(_ * 0.2)
    second.measured(cluster.cluster_id, 1_700_000)
    further = second.poll(0.6)
    assert further is not None and further.rate == 2_500_000
    second.measured(further.cluster_id, 2_000_000)  # at the maximum: no further probe
    assert second.poll(1.0) is None


def test_a_slow_probe_lasts_long_enough_for_five_packets():
    probes = ProbeController(30_000, 2_500_000)
    cluster = probes.poll(0.0)
    assert cluster.rate == 90_000 and cluster.rate * cluster.duration >= 5 * 300 * 8


def test_recovery_probes_back_off_while_the_link_stays_slow():
    probes = ProbeController(1_000_000, 2_500_000)
    probes.poll(0.0)
    probes.poll(0.2)
    probes.update(2_000_000, False, 1.0)
    probes.update(300_000, True, 2.0)  # a large drop
    times = []
    now = 2.0
    while now < 40.0:
        now += 0.1
        probes.update(300_000, False, now)
        if probes.poll(now) is not None:
            times.append(round(now, 1))
    gaps = [round(b - a) for a, b in zip(times, times[1:])]  # to the 0.1 s steps of this loop
    assert gaps[:3] == [2, 4, 8] and all(g == 8 for g in gaps[3:]), times


def test_a_pacer_polled_late_still_sends_at_its_rate():
    # A busy process's timer fires every 20 ms instead of at the pacer's 5 ms steps: the time
    # that passed is credited, so 40 packets of 250 bytes (40 ms at 2 Mbit/s) leave within ~40 ms.
    pacer: Pacer[int] = Pacer(2_000_000, factor=1.0)
    for i in range(40):
        pacer.enqueue(i, 250, 0.0)
    sent = pacer.poll(0.0)
    now = 0.0
    while len(pacer) and now < 1.0:
        now += 0.02
        sent += pacer.poll(now)
    assert sent == list(range(40))
    assert now <= 0.06


def test_a_pacer_after_idle_time_sends_one_interval_at_once():
    pacer: Pacer[int] = Pacer(400_000, factor=1.0)  # 250 bytes per 5 ms
    pacer.enqueue(0, 250, 0.0)
    assert pacer.poll(0.0) == [0]
    for i in range(1, 9):
        pacer.enqueue(i, 250, 1.0)  # a second of silence earns no burst
    assert pacer.poll(1.0) == [1]


def test_a_pacer_backlog_is_spread_to_leave_within_the_queue_time():
    # 40 kB queued at a rate that needs 4 s: it leaves evenly within the 0.5 s bound, not in a
    # dump when that bound is reached.
    pacer: Pacer[int] = Pacer(80_000, factor=1.0, max_queue_time=0.5)
    for i in range(40):
        pacer.enqueue(i, 1000, 0.0)
    times: list[float] = []
    now = 0.0
    while len(pacer) and now < 1.0:
        times += [now] * len(pacer.poll(now))
        now = round(now + 0.005, 3)
    assert len(times) == 40 and times[-1] <= 0.5
    assert sum(1 for t in times if t < 0.25) >= 15  # half the backlog in the first half


def _recovery_probe(probes: ProbeController):
    probes.poll(0.0)
    probes.poll(0.2)
    probes.update(2_000_000, False, 1.0)
    probes.update(300_000, True, 2.0)  # a large drop
    now = 2.0
    while (cluster := probes.poll(now)) is None:
        now += 0.1
        probes.update(300_000, False, now)
    assert cluster.rate == 600_000
    return cluster, now


def test_a_recovery_probe_that_carried_its_rate_counts_only_once_a_second_one_does():
    # A shaper's token bucket passes one short cluster whole at line rate: alone it proves nothing.
    probes = ProbeController(300_000, 2_500_000)
    cluster, now = _recovery_probe(probes)
    assert probes.measured(cluster.cluster_id, 600_000) is None
    confirm = probes.poll(now + 0.2)
    assert confirm.rate == 1_200_000
    assert probes.measured(confirm.cluster_id, 600_000) is None  # the bucket was empty: the link is slow
    assert probes.measured(cluster.cluster_id, 600_000) is None  # nor do later reports of the first count
    # The capacity is back: the second carries its rate too, and the estimate follows the first.
    probes = ProbeController(300_000, 2_500_000)
    cluster, now = _recovery_probe(probes)
    assert probes.measured(cluster.cluster_id, 600_000) is None
    confirm = probes.poll(now + 0.2)
    assert probes.measured(confirm.cluster_id, 1_150_000) == 600_000
    assert probes.measured(confirm.cluster_id, 1_180_000) == 600_000  # later reports of it too
    assert probes.poll(now + 0.4).rate == 2_300_000  # and probing goes on from there


def test_after_a_recovery_each_probe_counts_once_the_next_at_twice_it_carried():
    # The bucket refills while the first probe's feedback comes back: a 30 ms confirmation at
    # 690 kbit/s read 530 on a 300 kbit/s link. The estimate goes no higher than what the probe
    # after it confirmed.
    probes = ProbeController(300_000, 2_500_000)
    cluster, now = _recovery_probe(probes)
    assert probes.measured(cluster.cluster_id, 560_000) is None
    confirm = probes.poll(now + 0.2)
    assert probes.measured(confirm.cluster_id, 950_000) == 560_000
    further = probes.poll(now + 0.4)
    assert further.rate == 1_900_000
    assert probes.measured(further.cluster_id, 700_000) is None  # did not carry: 950 stays unconfirmed
    assert probes.poll(now + 0.6) is None
    # On a link that took it all, the chain goes on to the maximum, which counts by itself.
    probes = ProbeController(300_000, 2_500_000)
    cluster, now = _recovery_probe(probes)
    probes.measured(cluster.cluster_id, 600_000)
    confirm = probes.poll(now + 0.2)
    assert probes.measured(confirm.cluster_id, 1_200_000) == 600_000
    further = probes.poll(now + 0.4)
    assert probes.measured(further.cluster_id, 2_300_000) == 1_200_000
    last = probes.poll(now + 0.6)
    assert last.rate == 2_500_000
    assert probes.measured(last.cluster_id, 2_400_000) == 2_400_000


def test_a_recovery_probe_the_link_held_back_is_the_links_rate():
    probes = ProbeController(300_000, 2_500_000)
    cluster, now = _recovery_probe(probes)
    assert probes.measured(cluster.cluster_id, 350_000) == 350_000
    assert probes.poll(now + 0.2) is None


def test_a_token_bucket_found_makes_the_next_recovery_probe_wait_longest():
    # Each recovery pair overflows a small shaper's queue for a moment: once the confirmation shows the
    # link is a shaper, the next pair comes MAX_PROBE_INTERVAL later, not after the 2 s and 4 s steps.
    probes = ProbeController(300_000, 2_500_000)
    cluster, now = _recovery_probe(probes)
    assert probes.measured(cluster.cluster_id, 600_000) is None
    confirm = probes.poll(now + 0.2)
    assert probes.measured(confirm.cluster_id, 300_000) is None
    start, t = now, now + 0.2
    while (cluster := probes.poll(t)) is None and t < now + 20:
        t = round(t + 0.1, 1)
        probes.update(300_000, False, t)
    assert cluster is not None and cluster.rate == 600_000
    assert round(t - (start + 0.2)) == MAX_PROBE_INTERVAL
