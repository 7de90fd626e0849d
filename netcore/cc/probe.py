"""Probing: sending a short burst above the estimate to learn whether the link can carry more.

Additive and 8 %-a-second increases take tens of seconds to climb from a
few hundred kbit/s back to megabits; a probe answers in one round trip. A
:class:`ProbeCluster` is a short stretch of time (:data:`CLUSTER_DURATION`)
in which the sender sends at the probe's rate in all: media as usual plus
padding to make up the rest, every packet tagged with the cluster's id.
When the feedback reports them, the rate the receiver saw them at, no more
than the rate they were sent at, is what the link carried
(:class:`ProbeResults`). Counting the media too matters: padding alone
would share the link with the media and measure only what the media left.

:class:`ProbeController` decides when to probe:

* at the start, at 3 and 6 times the initial rate (libwebrtc does the same),
  so a call on a fast link reaches its rate in about a second;
* after a large drop (the estimate fell by more than :data:`LARGE_DROP` in
  one step), once the link looks clear again (no over-use for
  :data:`RECOVERY_WAIT`), at twice the estimate, after 2, 4, then every
  8 s (:data:`PROBE_INTERVAL` doubling to :data:`MAX_PROBE_INTERVAL`), until the estimate is back to 85 % of where it
  fell from or :data:`RECOVERY_WINDOW` has passed: a link whose capacity
  returns is found in seconds, and a steady link is not probed at all.
  Once a confirmation (below) has found a token bucket, the next recovery
  probe waits :data:`MAX_PROBE_INTERVAL`: each pair overflows a small
  shaper's queue for a moment (on a 300 kbit/s ``tbf`` link with a 100 ms
  queue, 10-15 % of that second's packets), and the link has just said it
  is slow.
  Such a probe that carries most of its rate moves nothing by itself: a link
  that has just shown it is slow is often a shaper, whose token bucket lets
  one short cluster through at line rate (``tbf``'s 2 kB bucket passes a
  30 ms cluster at 500 kbit/s whole, and the jump to that rate lost half the
  packets). The probe after it, at twice its measurement, must carry most of
  its rate too; then the estimate follows the *first* one's measurement, and
  the probes that go on from there confirm each other the same way: a
  measurement counts once the probe after it, at twice it, has carried most
  of its rate. The bucket refills while the first probe's feedback comes
  back, so the second is not always held back: on a 300 kbit/s link a 30 ms
  confirmation at 690 kbit/s read 530 and the estimate jumped there (a
  second at 29 % loss); the first one's 346 is much nearer the link. One
  that carries less than most of its rate is the link's rate, and the
  estimate follows it at once (a confirmation that does not carry moves
  nothing); a confirmation at the maximum counts by itself;
* on request (:meth:`ProbeController.request`): a call server that
  would forward a higher simulcast layer asks whether the link takes it;
* further, at twice what a cluster measured when it carried at least
  :data:`FURTHER_PROBE_SHARE` of its rate (libwebrtc's exponential probing),
  until the maximum: from 300 kbit/s back to 2 Mbit/s takes three round
  trips, where 8 % a second would take 25 seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ProbeCluster", "ProbeController", "ProbeResults"]

MIN_PACKETS = 5
MIN_RECEIVED_SHARE = 0.8  # of a cluster's packets reported received before its rate counts
CLUSTER_DURATION = 0.03
PROBE_INTERVAL = 2.0
RECOVERY_WAIT = 2.0  # the drop's own repairs and key frames settle over the first second or two
CLUSTER_GAP = 0.1  # between the starts of two clusters
LARGE_DROP = 0.3
RECOVERY_WINDOW = 60.0
FURTHER_PROBE_SHARE = 0.7
MAX_PROBE_INTERVAL = 8.0  # recovery probes back off to this: 2, 4, 8 s
PROBE_PACKET_BITS = 300 * 8  # about a padding packet on the wire


@dataclass(frozen=True, slots=True)
class ProbeCluster:
    """Send at ``rate`` bit/s in all (media and padding) for ``duration``, tagging packets ``cluster_id``."""

    cluster_id: int
    rate: float
    duration: float = CLUSTER_DURATION

    def padding_spacing(self, media_rate: float, packet_size: int = 1000) -> float:
        """Seconds between padding packets of ``packet_size`` that make up the rate beside the media."""
        return packet_size * 8 / max(self.rate - media_rate, self.rate * 0.1)


class _Cluster:
    __slots__ = ("first_send", "last_send", "first_arrival", "last_arrival", "bytes", "count", "last_size",
                 "sent", "rate")

    def __init__(self) -> None:
        self.first_send = self.last_send = self.first_arrival = self.last_arrival = None
        self.bytes = 0
        self.count = 0
        self.last_size = 0
        self.sent = 0  # packets sent tagged with this cluster
        self.rate: float | None = None  # the rate the cluster was sent to test


class ProbeResults:
    """Rates measured from the feedback on probe clusters.

    A cluster counts once most of it is reported (:data:`MIN_RECEIVED_SHARE`
    of the packets sent with its tag): its first few packets can leave in a
    burst (a key frame's packets are tagged too) and cross an idle link's
    token bucket at line rate, which says nothing of the link's rate. And a
    cluster never shows more than the rate it was sent to test.
    """

    def __init__(self, max_clusters: int = 16) -> None:
        self._clusters: dict[int, _Cluster] = {}
        self.max_clusters = max_clusters

    def _cluster(self, cluster_id: int) -> _Cluster:
        cluster = self._clusters.get(cluster_id)
        if cluster is None:
            if len(self._clusters) >= self.max_clusters:
                self._clusters.pop(next(iter(self._clusters)))
            cluster = self._clusters[cluster_id] = _Cluster()
        return cluster

    def started(self, cluster_id: int, rate: float) -> None:
        """The sender starts cluster ``cluster_id`` at ``rate`` bit/s."""
        self._cluster(cluster_id).rate = rate

    def sent(self, cluster_id: int) -> None:
        """A packet tagged ``cluster_id`` left."""
        self._cluster(cluster_id).sent += 1

    def add(self, cluster_id: int, send: float, arrival: float, size: int) -> float | None:
        """A probe packet was reported received; return the cluster's rate once it is measurable."""
        cluster = self._cluster(cluster_id)
        if cluster.first_send is None or send < cluster.first_send:
            cluster.first_send = send
        if cluster.last_send is None or send > cluster.last_send:
            cluster.last_send = send
        if cluster.first_arrival is None or arrival < cluster.first_arrival:
            cluster.first_arrival = arrival
        if cluster.last_arrival is None or arrival >= cluster.last_arrival:
            cluster.last_arrival = arrival
            cluster.last_size = size
        cluster.bytes += size
        cluster.count += 1
        if cluster.count < MIN_PACKETS or cluster.count < MIN_RECEIVED_SHARE * cluster.sent:
            return None
        send_span = cluster.last_send - cluster.first_send
        arrival_span = cluster.last_arrival - cluster.first_arrival
        if send_span <= 0 or arrival_span <= 0:
            return None
        # The last packet's bytes arrive at its arrival time: they do not count over the span.
        received_rate = (cluster.bytes - cluster.last_size) * 8 / arrival_span
        send_rate = (cluster.bytes - cluster.last_size) * 8 / send_span
        rate = min(received_rate, send_rate)
        return rate if cluster.rate is None else min(rate, cluster.rate)


class ProbeController:
    """When to probe, and at what rate."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.maximum = maximum
        self._next_id = 1
        # (rate, kind, confirms) of the clusters to send; kind: "start", "recovery", "confirm", "further",
        # "request"; confirms: the measurement a "confirm" would let the estimate follow
        self._pending: list[tuple[float, str, float]] = [(min(3 * initial, maximum), "start", 0.0),
                                                         (min(6 * initial, maximum), "start", 0.0)]
        self._estimate = initial
        self._dropped_from: float | None = None
        self._dropped_at = 0.0
        self._last_probe: float | None = None
        self._clear_since: float | None = None
        self._issued: dict[int, float] = {}  # cluster id -> its rate, until measured
        self._interval = PROBE_INTERVAL / 2  # between recovery probes; doubles with each one
        # Clusters whose measurement the estimate must not follow (yet): recovery probes, and
        # the probes confirming them until they carry their rate.
        self._held: dict[int, tuple[str, float]] = {}  # cluster id -> ("recovery" or "confirm", confirms)
        self._caps: dict[int, float] = {}  # a confirmation that carried -> the measurement it confirmed

    def update(self, estimate: float, overusing: bool, now: float) -> None:
        """Feed the estimate after each feedback."""
        if estimate < (1 - LARGE_DROP) * self._estimate:
            self._dropped_from = max(self._dropped_from or 0.0, self._estimate)
            self._dropped_at = now
        self._estimate = estimate
        if self._dropped_from is not None and (estimate >= 0.85 * self._dropped_from
                                               or now - self._dropped_at > RECOVERY_WINDOW):
            self._dropped_from = None  # recovered, or the link stays slow
            self._interval = PROBE_INTERVAL / 2
        if overusing:
            self._clear_since = None
        elif self._clear_since is None:
            self._clear_since = now
        if (not self._pending and self._dropped_from is not None and self._clear_since is not None
                and now - self._clear_since >= RECOVERY_WAIT
                and (self._last_probe is None or now - self._last_probe >= self._interval)):
            # A short probe can cross a slow link's token bucket and read as success: each
            # recovery probe waits twice as long as the last, so a link that stays slow is
            # disturbed less and less, and one whose capacity returned is still found in 8 s.
            self._pending.append((min(2 * estimate, self.maximum), "recovery", 0.0))
            self._interval = min(2 * self._interval, MAX_PROBE_INTERVAL)

    def request(self, rate: float) -> None:
        """Probe at ``rate`` (a forwarder that would send more if the link took it: the next simulcast
        layer), unless a probe is pending already."""
        if not self._pending:
            self._pending.append((min(rate, self.maximum), "request", 0.0))

    def poll(self, now: float) -> ProbeCluster | None:
        """The next cluster to send, if any."""
        if not self._pending:
            return None
        if self._last_probe is not None and now - self._last_probe < CLUSTER_GAP:
            return None  # one cluster at a time: two at once would each measure less
        rate, kind, confirms = self._pending.pop(0)
        self._last_probe = now
        # Long enough for MIN_PACKETS padding packets: at tens of kbit/s, 30 ms is one packet,
        # and a cluster never measured never lets the estimate climb back from the minimum.
        duration = max(CLUSTER_DURATION, MIN_PACKETS * PROBE_PACKET_BITS / rate)
        cluster = ProbeCluster(self._next_id, rate, duration)
        self._next_id += 1
        self._issued[cluster.cluster_id] = rate
        while len(self._issued) > 16:
            del self._issued[next(iter(self._issued))]
        if kind in ("recovery", "confirm"):
            self._held[cluster.cluster_id] = (kind, confirms)
            while len(self._held) > 16:
                del self._held[next(iter(self._held))]
        return cluster

    def measured(self, cluster_id: int, rate: float) -> float | None:
        """Cluster ``cluster_id`` measured ``rate``: probe further if it carried most of its rate.
        Returns the rate the estimate may follow, or ``None`` (see the module docstring)."""
        sent_at = self._issued.pop(cluster_id, None)
        if sent_at is not None:
            carried = rate >= FURTHER_PROBE_SHARE * sent_at
            kind, confirms = self._held.get(cluster_id, (None, 0.0))
            if kind == "recovery" and carried:
                self._pending.append((min(2 * rate, self.maximum), "confirm", rate))  # a token bucket?
                return None
            if kind == "confirm" and not carried:
                # A shaper: the pair cost a queue's worth of the call's packets; the next pair waits longest.
                self._interval = MAX_PROBE_INTERVAL
            if kind == "recovery" or (kind == "confirm" and carried):
                del self._held[cluster_id]  # the link's rate: held back, or confirmed
                if kind == "confirm" and sent_at < self.maximum:
                    self._caps[cluster_id] = confirms
                    while len(self._caps) > 16:
                        del self._caps[next(iter(self._caps))]
            if carried and kind in (None, "confirm"):
                self._probe_further(sent_at, rate, confirming=kind == "confirm")
        if cluster_id in self._held:
            return None
        return min(rate, self._caps.get(cluster_id, rate))

    def _probe_further(self, sent_at: float, rate: float, *, confirming: bool) -> None:
        further = min(2 * rate, self.maximum)
        # Not when a cluster at least as fast is already out (the second start probe).
        if further > sent_at and not self._pending and all(r < further for r in self._issued.values()):
            # After a recovery, each step is confirmed by the next before the estimate follows it.
            self._pending.append((further, "confirm", rate) if confirming else (further, "further", 0.0))
