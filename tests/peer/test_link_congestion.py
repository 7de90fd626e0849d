"""Congestion on a real link: a veth pair between two namespaces, shaped by ``tbf``, drops mid-call.

A sends grainy 160x120 video (detail for 2 Mbit/s at little CPU) to B over
a link of 2 Mbit/s (A's side of the veth, ``tbf`` with a 100 ms queue). At the drop the link goes to 300 kbit/s: within
3 s A's sending rate (our own counters, plus the IP/UDP/SRTP overhead of each
packet, which the link carries too) is under the new capacity and the
link's loss (the qdisc's drop counter) is under 2 %; when 2 Mbit/s returns
the rate climbs back within 15 s. Measured, not assumed: the sender's rate
per second from its reports, the loss from ``tc -s``.
"""

from __future__ import annotations

import re
import threading
import time

import pytest

from tests.peer.netns import Netns, PeerProcess, connect, require_namespaces, veth, wait_until

pytestmark = pytest.mark.timeout(150)

A, B = "10.202.0.1", "10.202.0.2"
HIGH, LOW = 2_000_000, 300_000
CLIMBED = 900_000  # "back up": the synthetic picture's encoder makes about 1-1.5 Mbit/s at 2 Mbit/s
OVERHEAD = 20 + 8 + 10  # IPv4 + UDP + the SRTP authentication tag, per packet
# A 100 ms queue: 8 packets of this video at 300 kbit/s. With 50 ms (4 packets) the estimate's additive climb
# back to the link's rate after each cut overflowed the queue before the delay showed, a second of 15-30 %
# loss every few seconds: 4.9 % of the packets of the 7 s at 300 kbit/s in one CI run on an idle machine, up
# to 8 % in another; with 100 ms, 0-3 % (docs/cc.md).
QDISC = "tbf rate {rate} burst 2kb latency 100ms"


class LinkCounters:
    """``tc -s qdisc`` of the shaped interface, read every 250 ms: (time, packets sent, packets dropped)."""

    def __init__(self, ns: Netns, device: str) -> None:
        self.ns, self.device = ns, device
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def read(self) -> tuple[int, int]:
        out = self.ns.ex("tc", "-s", "qdisc", "show", "dev", self.device)
        match = re.search(r"Sent \d+ bytes (\d+) pkt \(dropped (\d+)", out)
        assert match, out
        return int(match.group(1)), int(match.group(2))

    def _run(self) -> None:
        while not self._stop.is_set():
            sent, dropped = self.read()
            self.samples.append((time.monotonic(), sent, dropped))
            self._stop.wait(0.25)

    def window(self, start: float, end: float) -> tuple[tuple[float, int, int], tuple[float, int, int]] | None:
        """The samples nearest around ``start`` and ``end`` (a busy machine may delay a sample)."""
        samples = list(self.samples)
        first = ([x for x in samples if x[0] <= start] or samples[:1])[-1]
        later = [x for x in samples if first[0] < x[0] <= end] or [x for x in samples if x[0] > first[0]][:1]
        return (first, later[-1]) if later else None

    def loss(self, start: float, end: float) -> float:
        """Share of the packets offered to the link from about ``start`` to ``end`` that it dropped."""
        window = self.window(start, end)
        if window is None:
            return 0.0
        (_, sent0, dropped0), (_, sent1, dropped1) = window
        sent, dropped = sent1 - sent0, dropped1 - dropped0
        return dropped / max(1, sent + dropped)

    def media_loss(self, start: float, end: float, sender: PeerProcess, receiver: PeerProcess) -> float:
        """Like :meth:`loss`, leaving out the probes' padding: padding is sent to learn whether the link
        takes more, and a slow link dropping some of it is the answer, not a loss of the call's media
        (the padding the sender sent less what the receiver got, over the same window)."""
        window = self.window(start, end)
        if window is None:
            return 0.0
        (t0, sent0, dropped0), (t1, sent1, dropped1) = window
        sent, dropped = sent1 - sent0, dropped1 - dropped0
        padding = counter(sender, "padding_sent", t1) - counter(sender, "padding_sent", t0)
        arrived = counter(receiver, "padding_received", t1) - counter(receiver, "padding_received", t0)
        padding_dropped = min(max(0, padding - arrived), dropped)
        return (dropped - padding_dropped) / max(1, sent + dropped - padding)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


def rate(sender: PeerProcess, start: float, end: float) -> float:
    """Bits per second A put on the link from about ``start`` to ``end``, between two of its
    reports (the nearest ones around: a busy machine may delay a report)."""
    reports = sender.of("report")
    before = [r for r in reports if r["t"] <= start] or reports[:1]
    first = before[-1]
    after = [r for r in reports if first["t"] < r["t"] <= end] or [r for r in reports if r["t"] > first["t"]][:1]
    if not after:
        return 0.0  # nothing reported since start yet (asked while the call runs)
    last = after[-1]
    wire = (last["bytes_sent"] - first["bytes_sent"]) + OVERHEAD * (last["packets_sent"] - first["packets_sent"])
    return 8 * wire / (last["t"] - first["t"])


def counter(peer: PeerProcess, key: str, t: float) -> int:
    """``key`` of the peer's last report at or before ``t`` (its first if none)."""
    reports = peer.of("report")
    before = [r for r in reports if r["t"] <= t] or reports[:1]
    return before[-1].get(key, 0) if before else 0


class Timeline:
    """Second by second from 2 s before the drop: what A sent, its target, its retransmissions and
    padding, and the link's loss; printed in full when an assertion fails (a run on a busier machine
    is read from it)."""

    def __init__(self, sender: PeerProcess, counters: LinkCounters, drop: float, back: float) -> None:
        self.rows = []
        for t in (drop + i for i in range(-2, 27)):
            if t >= back + 16:
                break
            self.rows.append((round(t - drop), round(rate(sender, t - 1, t) / 1000),
                              round(counter(sender, "target", t) / 1000),
                              counter(sender, "retransmissions", t) - counter(sender, "retransmissions", t - 1),
                              counter(sender, "padding_sent", t) - counter(sender, "padding_sent", t - 1),
                              round(counters.loss(t - 1, t), 3)))

    def __str__(self) -> str:
        head = "  s  kbit/s  target  rtx  padding  loss"
        return "\n".join([head] + [f"{s:>3} {r:>7} {g:>7} {x:>4} {p:>8} {l:>5}" for s, r, g, x, p, l in self.rows])


def first_time(condition, start: float, end: float, step: float = 0.25) -> float | None:
    """The first one-second window [t - 1, t] (t from start, by ``step``) where condition(t - 1, t) holds."""
    t = start + 1.0
    while t <= end:
        if condition(t - 1.0, t):
            return t
        t += step
    return None


@pytest.fixture
def link():
    require_namespaces()
    a, b = Netns("ca"), Netns("cb")
    try:
        device, _ = veth(a, A, b, B)
        a.ex("tc", "qdisc", "replace", "dev", device, "root", *QDISC.format(rate="2mbit").split())
        yield a, b, device
    finally:
        a.down()
        b.down()


def test_rate_follows_the_link_down_to_300_kbits_and_back(link):
    ns_a, ns_b, device = link
    video = ["--width", "160", "--height", "120", "--noise", "20", "--duration", "60"]
    a = PeerProcess(ns_a, A, *video, offer=True)
    b = PeerProcess(ns_b, B, *video, "--receive-only")
    counters = LinkCounters(ns_a, device)
    try:
        connect(a, b)
        # Up to the link's rate first (the start probes), then a few seconds of call.
        assert wait_until(lambda: len(a.of("report")) > 8 and rate(a, time.monotonic() - 1.5, time.monotonic())
                          > CLIMBED, 25), a.of("report")[-1:]
        time.sleep(3)
        ns_a.ex("tc", "qdisc", "replace", "dev", device, "root", *QDISC.format(rate="300kbit").split())
        drop = time.monotonic()
        time.sleep(10)
        ns_a.ex("tc", "qdisc", "replace", "dev", device, "root", *QDISC.format(rate="2mbit").split())
        back = time.monotonic()
        wait_until(lambda: rate(a, time.monotonic() - 1, time.monotonic()) > CLIMBED, 16)
        time.sleep(0.5)
    finally:
        counters.stop()
        a.stop()
        b.stop()
    timeline = Timeline(a, counters, drop, back)
    # A second under the new capacity and under 2 % loss within 3 s of the drop (runs here: 1.75-2 s),
    # and it stays so: the NACKs of what the drop lost stop once the receiver has skipped past it,
    # and a recovery probe that crosses the link's token bucket whole does not raise the estimate
    # unless a second one, at twice its rate, carries its rate too (docs/cc.md).
    settled = first_time(lambda s, e: rate(a, s, e) < LOW and counters.loss(s, e) < 0.02, drop, drop + 10)
    assert settled is not None and settled - drop <= 3.0, f"settled after {settled and settled - drop}\n{timeline}"
    # The media's loss stays low; the probes' padding is left out: a recovery probe and the one
    # confirming it send 30 ms at twice and four times the link's rate, and the link drops part of it
    # by design (one such pair alone was 3 % of the packets of these 7 s).
    assert counters.media_loss(drop + 3, back, a, b) < 0.05, f"link loss {counters.loss(drop + 3, back):.3f}\n{timeline}"
    climbed = first_time(lambda s, e: rate(a, s, e) > CLIMBED, back, back + 16)
    assert climbed is not None and climbed - back <= 15.0, f"{timeline}"
    assert len(b.decoded()) > 300  # video kept being decoded through it all
