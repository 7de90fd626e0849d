"""The simulated network's path for streams that are not cores (netcore.testing.simnet)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from netcore.net import Receive
from netcore.testing.simnet import Link, Network, OneWayPath


def _land(path: OneWayPath, count: int, link: Link, spacing: float = 0.001) -> list[bytes]:
    for i in range(count):
        path.send(i.to_bytes(2, "big"), i * spacing, link)
    return path.arrived(1e9)


@given(st.integers(0, 2**32 - 1))
def test_a_fifo_path_delays_but_never_reorders(seed):
    link = Link(delay=0.02, jitter=0.05, loss=0.2)
    landed = _land(OneWayPath(random.Random(seed)), 200, link)
    numbers = [int.from_bytes(d, "big") for d in landed]
    assert numbers == sorted(numbers) and len(numbers) < 200


def test_without_fifo_jitter_reorders():
    landed = _land(OneWayPath(random.Random(1), fifo=False), 200, Link(delay=0.02, jitter=0.05))
    numbers = [int.from_bytes(d, "big") for d in landed]
    assert sorted(numbers) == list(range(200)) and numbers != sorted(numbers)


@given(st.integers(0, 2**32 - 1))
def test_a_loss_that_never_strikes_leaves_the_run_unchanged(seed):
    # Every draw is made whatever the probabilities, so a seeded stream
    # runs the same on a lossless link and on one whose loss never strikes.
    clean, rare = random.Random(seed), random.Random(seed)
    for i in range(50):
        a = Link(delay=0.01, jitter=0.03).sample_copies(clean, i)
        b = Link(delay=0.01, jitter=0.03, loss=1e-12, duplicate=1e-12).sample_copies(rare, i)
        assert a == b and len(a) == 1


def test_duplicates_are_delivered_twice_on_the_network_too():
    class Sink:
        def __init__(self):
            self.got = []

        def handle_datagram(self, datagram: Receive, now: float) -> None:
            self.got.append(datagram.data)

        def handle_timeout(self, now: float) -> None: ...
        def poll_transmit(self): return None
        def poll_event(self): return None
        def next_deadline(self): return None

    net = Network(seed=3)
    net.add_host("10.0.0.1", link=Link(duplicate=0.5))
    net.add_host("10.0.0.2")
    sink = Sink()
    net.add_node(sink, [("10.0.0.2", 9)])
    for i in range(100):
        net.send(bytes((i,)), ("10.0.0.1", 5), ("10.0.0.2", 9))
    net.run()
    assert sorted(set(sink.got)) == [bytes((i,)) for i in range(100)]
    assert 120 < len(sink.got) < 180
