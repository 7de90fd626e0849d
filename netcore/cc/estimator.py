"""Send-side bandwidth estimation from transport-wide feedback (the GCC family), sans-IO.

:class:`BandwidthEstimator` is what a sender owns once per transport::

    estimator.packet_sent(transport_seq, size, now, probe_cluster=None)
    estimator.feedback_received(arrival_times(feedback), now)   # netcore.rtp.twcc
    estimator.remb_received(bitrate)                            # a receiver's cap, if any
    estimator.rtt_measured(rtt)
    estimator.target_bitrate         # what encoders and the pacer follow
    estimator.poll_probe(now)        # a ProbeCluster to send, or None

It composes the pieces of this package: the delay-based chain
(:mod:`~netcore.cc.delay` then :mod:`~netcore.cc.aimd`), the loss-based
bound and acknowledged rate (:mod:`~netcore.cc.loss`) and probing
(:mod:`~netcore.cc.probe`). The target is the smaller of the delay-based
and loss-based estimates, within [minimum, maximum] and under a REMB cap.
The sent-packet history is bounded (:data:`HISTORY` packets).
"""

from __future__ import annotations

from typing import Iterable

from netcore.cc.aimd import AimdRateControl
from netcore.cc.delay import BandwidthUsage, InterArrival, OveruseDetector, TrendlineEstimator
from netcore.cc.loss import AckedBitrate, LossBasedControl
from netcore.cc.probe import ProbeCluster, ProbeController, ProbeResults

__all__ = ["BandwidthEstimator"]

HISTORY = 8192  # sent packets remembered for feedback; far more than one feedback interval


class _Sent:
    __slots__ = ("send_time", "size", "probe_cluster", "reported_lost")

    def __init__(self, send_time: float, size: int, probe_cluster: int | None) -> None:
        self.send_time = send_time
        self.size = size
        self.probe_cluster = probe_cluster
        self.reported_lost = False


class BandwidthEstimator:
    """The sender's target bitrate, from what the receiver reports."""

    def __init__(self, initial: float = 300_000, minimum: float = 30_000, maximum: float = 2_500_000) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self._sent: dict[int, _Sent] = {}
        self._inter_arrival = InterArrival()
        self._trendline = TrendlineEstimator()
        self._detector = OveruseDetector()
        self._delay_based = AimdRateControl(initial, minimum, maximum)
        self._loss_based = LossBasedControl(initial, minimum, maximum)
        self._acked = AckedBitrate()
        self._probes = ProbeController(initial, maximum)
        self._probe_results = ProbeResults()
        self._remb: float | None = None
        self.target_bitrate = float(initial)
        self.feedbacks = 0
        self.unknown_reports = 0

    # -- inputs ---------------------------------------------------------------------

    def packet_sent(self, transport_seq: int, size: int, now: float, probe_cluster: int | None = None) -> None:
        """Remember a packet that carries transport-wide sequence number ``transport_seq`` (16 bits)."""
        sent = self._sent
        sent[transport_seq & 0xFFFF] = _Sent(now, size, probe_cluster)
        if probe_cluster is not None:
            self._probe_results.sent(probe_cluster)
        if len(sent) > HISTORY:
            del sent[next(iter(sent))]

    def packets_sent(self, sent: Iterable[tuple[int, int, float]]) -> int:
        """Packets sent outside any probe, ``(transport_seq, size, send time)`` in send order: what
        :meth:`packet_sent` does for each, in one loop (the call server's compiled path hands its copies over
        in batches, one per copy it sent); returns their bytes."""
        history = self._sent
        total = 0
        for seq, size, at in sent:
            history[seq & 0xFFFF] = _Sent(at, size, None)
            total += size
        while len(history) > HISTORY:
            del history[next(iter(history))]
        return total

    def feedback_received(self, arrivals: list[tuple[int, float | None]], now: float) -> None:
        """One feedback's ``(sequence number, arrival or None)`` list, in sequence order."""
        received = lost = 0
        for seq, arrival in arrivals:
            packet = self._sent.get(seq & 0xFFFF)
            if packet is None:
                self.unknown_reports += 1
                continue
            if arrival is None:
                if not packet.reported_lost:
                    packet.reported_lost = True
                    lost += 1
                continue
            del self._sent[seq & 0xFFFF]
            if packet.reported_lost:
                lost -= 1  # reported lost before, received after all (a late report)
            received += 1
            self._on_received(packet, arrival, now)
        self.feedbacks += 1
        self._update(received, lost, now)  # lost < 0: late reports took back earlier losses

    def remb_received(self, bitrate: float) -> None:
        """A receiver's estimate (RFC draft REMB): the target stays under it."""
        self._remb = bitrate
        self._publish()

    def rtt_measured(self, rtt: float) -> None:
        self._delay_based.rtt = rtt
        self._loss_based.rtt = rtt

    # -- outputs --------------------------------------------------------------------

    def request_probe(self, rate: float) -> None:
        """Probe at ``rate`` bit/s soon (see :meth:`ProbeController.request`)."""
        self._probes.request(rate)

    def poll_probe(self, now: float) -> ProbeCluster | None:
        cluster = self._probes.poll(now)
        if cluster is not None:
            self._probe_results.started(cluster.cluster_id, cluster.rate)
        return cluster

    @property
    def usage(self) -> BandwidthUsage:
        return self._detector.state

    @property
    def acked_bitrate(self) -> float | None:
        return self._acked.rate

    @property
    def loss_fraction(self) -> float:
        return self._loss_based.loss

    # -- internals ------------------------------------------------------------------

    def _on_received(self, packet: _Sent, arrival: float, now: float) -> None:
        self._acked.add(arrival, packet.size)
        if packet.probe_cluster is not None:
            rate = self._probe_results.add(packet.probe_cluster, packet.send_time, arrival, packet.size)
            follow = None if rate is None else self._probes.measured(packet.probe_cluster, rate)
            if follow is not None and follow > self._delay_based.rate:
                self._delay_based.set_estimate(0.95 * follow)
                self._loss_based.raise_to(0.95 * follow)
        deltas = self._inter_arrival.add(packet.send_time, arrival, packet.size)
        if deltas is not None:
            send_delta, arrival_delta, _ = deltas
            self._trendline.update(send_delta, arrival_delta, arrival)
            self._detector.detect(self._trendline.modified_trend, send_delta, now)

    def _update(self, received: int, lost: int, now: float) -> None:
        usage = self._detector.state
        self._delay_based.update(usage, self._acked.rate, now)
        self._loss_based.update(received, lost, now)
        self._publish()
        self._probes.update(self.target_bitrate, usage is BandwidthUsage.OVERUSE, now)

    def _publish(self) -> None:
        target = min(self._delay_based.rate, self._loss_based.rate)
        if self._remb is not None:
            target = min(target, self._remb)
        self.target_bitrate = min(max(target, self.minimum), self.maximum)
