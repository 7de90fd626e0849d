"""Send-side bandwidth estimation from transport-wide feedback (the GCC family), sans-IO.

:class:`BandwidthEstimator` is what a sender owns once per transport::

    estimator.packet_sent(transport_seq, size, now, probe_cluster=None)
    estimator.twcc_received(feedback, now)   # a netcore.rtp.feedback.TransportFeedback
    estimator.remb_received(bitrate)                            # a receiver's cap, if any
    estimator.rtt_measured(rtt)
    estimator.target_bitrate         # what encoders and the pacer follow
    estimator.poll_probe(now)        # a ProbeCluster to send, or None

It composes the pieces of this package: the delay-based chain
(:mod:`~netcore.cc.delay` then :mod:`~netcore.cc.aimd`), the loss-based
bound and acknowledged rate (:mod:`~netcore.cc.loss`) and probing
(:mod:`~netcore.cc.probe`). The target is the smaller of the delay-based
and loss-based estimates, within [minimum, maximum] and under a REMB cap.
The sent-packet history is bounded (:data:`HISTORY` packets). The
per-packet part of each feedback (the history, the acknowledged rate, the
delay chain) is :mod:`~netcore.cc.accounting`'s, compiled when built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from netcore.cc.accounting import HISTORY, Accounting, new_accounting
from netcore.cc.aimd import AimdRateControl
from netcore.cc.delay import BandwidthUsage
from netcore.cc.loss import LossBasedControl
from netcore.cc.probe import ProbeCluster, ProbeController, ProbeResults

if TYPE_CHECKING:
    from netcore.rtp.feedback import TransportFeedback

__all__ = ["BandwidthEstimator", "HISTORY"]


class BandwidthEstimator:
    """The sender's target bitrate, from what the receiver reports."""

    def __init__(self, initial: float = 300_000, minimum: float = 30_000, maximum: float = 2_500_000,
                 accounting: Accounting | None = None) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self._accounting = accounting if accounting is not None else new_accounting()
        self._delay_based = AimdRateControl(initial, minimum, maximum)
        self._loss_based = LossBasedControl(initial, minimum, maximum)
        self._probes = ProbeController(initial, maximum)
        self._probe_results = ProbeResults()
        self._remb: float | None = None
        self.target_bitrate = float(initial)
        self.feedbacks = 0
        self.unknown_reports = 0

    # -- inputs ---------------------------------------------------------------------

    def packet_sent(self, transport_seq: int, size: int, now: float, probe_cluster: int | None = None) -> None:
        """Remember a packet that carries transport-wide sequence number ``transport_seq`` (16 bits)."""
        self._accounting.sent(transport_seq, size, now, probe_cluster)
        if probe_cluster is not None:
            self._probe_results.sent(probe_cluster)

    def packets_sent(self, sent: Iterable[tuple[int, int, float]]) -> int:
        """Packets sent outside any probe, ``(transport_seq, size, send time)`` in send order: what
        :meth:`packet_sent` does for each, in one loop (the call server's compiled path hands its copies over
        in batches, one per copy it sent); returns their bytes."""
        return self._accounting.sent_many(sent)

    def feedback_received(self, arrivals: list[tuple[int, float | None]], now: float) -> None:
        """One feedback's ``(sequence number, arrival or None)`` list, in sequence order."""
        self._accounted(*self._accounting.feedback(arrivals, now), now)

    def twcc_received(self, feedback: TransportFeedback, now: float) -> None:
        """One transport-wide feedback packet: :meth:`feedback_received` of its arrival times
        (:func:`netcore.rtp.twcc.arrival_times`), read by the accounting without the list between."""
        self._accounted(*self._accounting.feedback_twcc(feedback.base_sequence, feedback.reference_time,
                                                        feedback.statuses, feedback.deltas, now), now)

    def _accounted(self, received: int, lost: int, unknown: int,
                   probes: list[tuple[int, float, float, int]] | None, now: float) -> None:
        self.unknown_reports += unknown
        if probes is not None:
            for cluster, send_time, arrival, size in probes:
                self._on_probe_received(cluster, send_time, arrival, size)
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
        return self._accounting.usage

    @property
    def acked_bitrate(self) -> float | None:
        return self._accounting.acked_rate

    @property
    def loss_fraction(self) -> float:
        return self._loss_based.loss

    # -- internals ------------------------------------------------------------------

    def _on_probe_received(self, cluster: int, send_time: float, arrival: float, size: int) -> None:
        """A probe packet reported received (after the feedback's accounting: its result touches only the rate
        controls, which the accounting does not read)."""
        rate = self._probe_results.add(cluster, send_time, arrival, size)
        follow = None if rate is None else self._probes.measured(cluster, rate)
        if follow is not None and follow > self._delay_based.rate:
            self._delay_based.set_estimate(0.95 * follow)
            self._loss_based.raise_to(0.95 * follow)

    def _update(self, received: int, lost: int, now: float) -> None:
        usage = self._accounting.usage
        self._delay_based.update(usage, self._accounting.acked_rate, now)
        self._loss_based.update(received, lost, now)
        self._publish()
        self._probes.update(self.target_bitrate, usage is BandwidthUsage.OVERUSE, now)

    def _publish(self) -> None:
        target = min(self._delay_based.rate, self._loss_based.rate)
        if self._remb is not None:
            target = min(target, self._remb)
        self.target_bitrate = min(max(target, self.minimum), self.maximum)
