"""A link whose capacity drops: the estimator's target follows it down (and the transport says so).

The bottleneck is a small forwarder core on the simulated network, in
virtual time: A's datagrams to B cross a :class:`Bottleneck` (capacity,
drop-tail queue, delay), B's go back through a wide one. Each side is
told the other's candidate at the forwarder's address on its side, so ICE,
DTLS and media all cross it. The media is sized from the target (30
frames a second of ``0.9 * target``), as an encoder that follows
:class:`BitrateChanged` would send.
"""

from __future__ import annotations

import heapq
import itertools

from netcore.net import Address, Receive, Transmit
from netcore.peer.events import BitrateChanged
from netcore.rtp.packet import RtpPacket
from netcore.testing.bottleneck import Bottleneck
from netcore.testing.simnet import PUBLIC, Link
from tests.peer.harness import A_IP, B_IP, VIDEO_PT, make_call

F_IP = "192.0.2.50"
F_A, F_B = (F_IP, 7000), (F_IP, 7001)  # facing A, facing B


class Forwarder:
    """A sans-IO core relaying A <-> B through one bottleneck per direction."""

    def __init__(self, a: Address, b: Address, down: Bottleneck, up: Bottleneck) -> None:
        self.a, self.b = a, b
        self.down, self.up = down, up  # A -> B, B -> A
        self._queue: list[tuple[float, int, Transmit]] = []
        self._order = itertools.count()
        self._out: list[Transmit] = []

    def candidate_for(self, side: str, candidate):
        """The candidate ``side`` gathered, as the other side must see it: at the forwarder."""
        address = F_B if side == "a" else F_A
        return candidate._replace(address=address[0], port=address[1])

    def handle_datagram(self, datagram: Receive, now: float) -> None:
        if datagram.destination == F_A:
            arrival, out = self.down.send(len(datagram.data), now), Transmit(datagram.data, self.b, F_B)
        else:
            arrival, out = self.up.send(len(datagram.data), now), Transmit(datagram.data, self.a, F_A)
        if arrival is not None:
            heapq.heappush(self._queue, (arrival, next(self._order), out))

    def handle_timeout(self, now: float) -> None:
        while self._queue and self._queue[0][0] <= now:
            self._out.append(heapq.heappop(self._queue)[2])

    def poll_transmit(self) -> Transmit | None:
        return self._out.pop(0) if self._out else None

    def poll_event(self):
        return None

    def next_deadline(self) -> float | None:
        return self._queue[0][0] if self._queue else None


def test_target_follows_a_capacity_drop():
    down = Bottleneck(1_500_000, delay=0.02)
    up = Bottleneck(10_000_000, delay=0.02)
    forwarder = Forwarder((A_IP, 5000), (B_IP, 6000), down, up)
    call = make_call(3, link_a=Link(delay=0.0), link_b=Link(delay=0.0), forwarder=forwarder)
    call.net.add_host(F_IP, PUBLIC, Link(delay=0.0))
    call.net.add_node(forwarder, [F_A, F_B])
    call.connect()
    a, node = call.a, call.node_a
    ssrc = a.config.media[1].send_ssrc
    seq = itertools.count()
    targets: list[tuple[float, float]] = []

    def frame(number: int) -> None:
        now = call.net.now
        size = int(a.target_bitrate * 0.9 / 30 / 8)
        while size > 0:
            chunk = min(size, 1100)
            a.send_rtp(RtpPacket.build(payload_type=VIDEO_PT, sequence_number=next(seq) & 0xFFFF,
                                       timestamp=number * 3000, ssrc=ssrc, payload=bytes(chunk),
                                       marker=chunk == size), now)
            size -= chunk
        node.flush()
        if number % 30 == 0:
            targets.append((now, a.target_bitrate))
        if number == 30 * 10:
            down.capacity = 400_000  # the link falls to 400 kbit/s at 10 s

    start = call.net.now
    for n in range(30 * 18):
        call.net.call_at(start + n / 30, frame, n)
    call.run(18.5)
    by_second = [t for _, t in targets]
    before = by_second[6:10]  # seconds 6-9: settled on 1.5 Mbit/s
    after = by_second[14:18]  # 4 s after the drop
    print("target by second (kbit/s):", [round(t / 1000) for t in by_second])
    print(f"queue drops {down.dropped} of {down.sent}; feedback {a.stats.twcc_received}; "
          f"probes {a.sender.probes_sent}, padding {a.sender.padding_sent}")
    assert all(700_000 < t < 1_700_000 for t in before)
    # Under the new capacity, and not collapsed below it: answering every NACK of what the
    # queue dropped would overload the link further and take the loss-based bound to the floor.
    assert all(200_000 < t < 450_000 for t in after)
    changes = [e.target for e in call.events("a", BitrateChanged)]
    assert changes and 200_000 < changes[-1] < 450_000
    assert a.stats.twcc_received > 100
    assert down.dropped > 0  # the drop did overflow the queue
