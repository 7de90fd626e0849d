"""A call's sending side over a bottleneck, in virtual time: encoder, pacer, probes, TWCC feedback.

The encoder makes 30 frames a second at the estimator's target and 50 audio
packets a second; the pacer lets them out; the bottleneck delays or drops
them; the receiver records arrivals and sends transport-wide feedback
(built and read by :mod:`netcore.rtp.twcc`, as on the wire) every 100 ms
back over a fixed delay. Steps of one millisecond.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Callable

from netcore.cc import BandwidthEstimator, Pacer
from netcore.cc.accounting import Accounting
from netcore.cc.delay import BandwidthUsage
from netcore.rtp.twcc import TwccRecorder, arrival_times
from netcore.testing.bottleneck import Bottleneck

STEP = 0.001
AUDIO_BPS = 100 * 8 * 50
FEEDBACK_INTERVAL = 0.1


@dataclass
class Trace:
    """Per whole second: bits sent, share of packets lost at the bottleneck, the target at its end."""

    sent_bps: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    target: list[float] = field(default_factory=list)
    queue_delay: list[float] = field(default_factory=list)
    overuse: int = 0  # feedbacks after which the detector said OVERUSE


def run_call(schedule: list[tuple[float, float]], duration: float, *, initial: float = 300_000,
             maximum: float = 2_500_000, loss: float = 0.0, delay: float = 0.025, seed: int = 1,
             accounting: Callable[[], Accounting] | None = None) -> Trace:
    """``schedule``: ``(from time, capacity bit/s)`` steps of the bottleneck; ``accounting`` makes the
    estimator's feedback accounting (the default: the compiled one when built)."""
    estimator = BandwidthEstimator(initial=initial, maximum=maximum,
                                   accounting=accounting() if accounting is not None else None)
    estimator.rtt_measured(2 * delay)
    pacer: Pacer[int] = Pacer(initial)
    link = Bottleneck(schedule[0][1], delay=delay, loss=loss, seed=seed)
    recorder = TwccRecorder(sender_ssrc=1)
    arrivals: list[tuple[float, int]] = []  # (arrival, transport seq)
    feedback: list[tuple[float, int, list]] = []  # (due, order, arrivals)
    probe_id: int | None = None  # the cluster being sent
    probe_end = next_padding = 0.0
    padding_spacing = 0.0
    trace = Trace()
    seq = 0
    window_bits = window_sent = window_lost = 0
    next_frame = next_audio = next_feedback = 0.0
    order = 0
    steps = int(duration / STEP)

    def send(size: int, now: float, cluster: int | None = None) -> None:
        nonlocal seq, window_bits, window_sent, window_lost
        estimator.packet_sent(seq & 0xFFFF, size, now, cluster)
        arrival = link.send(size, now)
        window_bits += size * 8
        window_sent += 1
        if arrival is None:
            window_lost += 1
        else:
            heapq.heappush(arrivals, (arrival, seq))
        seq += 1

    for step in range(1, steps + 1):
        now = step * STEP
        for start, capacity in schedule:
            if now >= start:
                link.capacity = capacity
        if now >= next_frame:
            next_frame += 1 / 30
            # The video encoder gets what audio leaves of the target (a sender splits it so).
            frame = int(max(estimator.target_bitrate - AUDIO_BPS, 0) / 30 / 8)
            while frame > 0:
                size = min(frame, 1200)
                pacer.enqueue(size, size, now)
                frame -= size
        if now >= next_audio:
            next_audio += 0.02
            pacer.enqueue(100, 100, now, audio=True)
        if probe_id is None:
            cluster = estimator.poll_probe(now)
            if cluster is not None:
                probe_id, probe_end, next_padding = cluster.cluster_id, now + cluster.duration, now
                padding_spacing = cluster.padding_spacing(estimator.target_bitrate)
        elif now >= probe_end:
            probe_id = None
        pacer.set_rate(estimator.target_bitrate)
        for size in pacer.poll(now):
            send(size, now, probe_id)
        while probe_id is not None and next_padding <= now:
            send(1000, now, probe_id)
            next_padding += padding_spacing
        while arrivals and arrivals[0][0] <= now:
            arrival, number = heapq.heappop(arrivals)
            recorder.record(number & 0xFFFF, arrival)
        if now >= next_feedback:
            next_feedback += FEEDBACK_INTERVAL
            for fb in recorder.build():
                order += 1
                heapq.heappush(feedback, (now + delay, order, arrival_times(fb)))
        while feedback and feedback[0][0] <= now:
            _, _, reported = heapq.heappop(feedback)
            estimator.feedback_received(reported, now)
            trace.overuse += estimator.usage is BandwidthUsage.OVERUSE
        if step % 1000 == 0:
            trace.sent_bps.append(window_bits)
            trace.loss.append(window_lost / window_sent if window_sent else 0.0)
            trace.target.append(estimator.target_bitrate)
            trace.queue_delay.append(link.queue_delay(now))
            window_bits = window_sent = window_lost = 0
    return trace
