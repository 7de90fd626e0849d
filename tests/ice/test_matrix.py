"""The NAT matrix: two agents behind every pair of RFC 4787 NAT types.

A direct path must be chosen whenever one exists, the relay otherwise. The
oracle: a direct path is impossible exactly when one side's mapping depends
on the destination (address-dependent or symmetric) and the other side's NAT
either filters by address and port or also maps per destination, so that
neither side's checks can open the other's pinhole. Run with ``-s`` to see
the table of virtual connection times and check counts.
"""

from __future__ import annotations

import time

import pytest

from netcore.testing.simnet import NAT_TYPES, Behavior
from tests.ice.scenario import make_call

TYPES = list(NAT_TYPES)


def direct_possible(x: str, y: str) -> bool:
    def destination_dependent(t: str) -> bool:
        b = NAT_TYPES[t]
        return b is not None and b[0] is not Behavior.ENDPOINT_INDEPENDENT

    def strict(t: str) -> bool:
        b = NAT_TYPES[t]
        return b is not None and (b[1] is Behavior.ADDRESS_AND_PORT_DEPENDENT or destination_dependent(t))

    return not ((destination_dependent(x) and strict(y)) or (destination_dependent(y) and strict(x)))


def test_matrix():
    started = time.perf_counter()
    rows = []
    for nat_a in TYPES:
        for nat_b in TYPES:
            call = make_call(nat_a, nat_b, seed=3)
            assert call.run_until_connected(30), (nat_a, nat_b)
            a, b = call.a.agent, call.b.agent
            direct = not a.sending_pair().relayed and not b.sending_pair().relayed
            assert direct == direct_possible(nat_a, nat_b), (nat_a, nat_b, a.sending_pair(), b.sending_pair())
            assert a.sending_pair().relayed == b.sending_pair().relayed
            checks = a.checks_sent + b.checks_sent
            rows.append((nat_a, nat_b, "direct" if direct else "relay", call.net.now, checks))
            assert call.net.now < 3.0  # virtual seconds to the selected pair
    wall = time.perf_counter() - started
    print()
    print(f"{'A':22} {'B':22} {'path':7} {'time (s)':>8} {'checks':>6}")
    for nat_a, nat_b, path, at, checks in rows:
        print(f"{nat_a:22} {nat_b:22} {path:7} {at:8.3f} {checks:6d}")
    print(f"{len(rows)} cells in {wall:.2f} s of wall time")
    assert wall < 20


@pytest.mark.parametrize("seed", range(4))
def test_lossy_jittery_links_still_connect_directly(seed):
    call = make_call("port-restricted-cone", "restricted-cone", seed=seed)
    for side in (call.a, call.b):
        link = call.net.link(side.ip)
        link.loss, link.jitter, link.reorder = 0.2, 0.03, 0.1
    assert call.run_until_connected(30)
    assert not call.a.agent.sending_pair().relayed
