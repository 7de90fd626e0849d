"""Priorities, pair priorities and foundations (RFC 8445 sections 5.1.2, 5.1.1.3, 6.1.2.3)."""

from hypothesis import given
from hypothesis import strategies as st

from netcore.ice.priority import Foundations, candidate_priority, pair_priority

# Type preferences stop at 126, so real priorities are below 2^31 and pair priorities fit 64 bits.
priorities = st.integers(min_value=1, max_value=2**31 - 1)


def test_host_priority_matches_what_browsers_send():
    # Chrome's first host candidate for component 1: 2130706431 = 126 << 24 | 65535 << 8 | 255.
    assert candidate_priority("host", 65535, 1) == 2130706431
    assert candidate_priority("host", 65535, 2) == 2130706430
    assert candidate_priority("srflx", 65535, 1) == 1694498815
    assert candidate_priority("relay", 65535, 1) == 16777215


def test_type_preference_orders_candidates():
    order = [candidate_priority(t, 1000, 1) for t in ("host", "prflx", "srflx", "relay")]
    assert order == sorted(order, reverse=True)


@given(st.sampled_from(["host", "prflx", "srflx", "relay"]), st.integers(0, 65535), st.integers(1, 256))
def test_priority_fits_32_bits_and_decodes(cand_type, local_preference, component):
    value = candidate_priority(cand_type, local_preference, component)
    assert 0 < value < 2**32
    assert (value >> 8) & 0xFFFF == local_preference
    assert 256 - (value & 0xFF) == component


@given(priorities, priorities)
def test_pair_priority_formula_and_tie_bit(g, d):
    assert pair_priority(g, d) == (min(g, d) << 32) + 2 * max(g, d) + (g > d)
    assert pair_priority(g, d) < 2**64
    if g != d:
        assert pair_priority(g, d) != pair_priority(d, g)  # the tie bit tells them apart


@given(priorities, priorities, priorities)
def test_pair_priority_is_ordered_by_the_lower_candidate_first(a, b, c):
    if min(a, b) < min(a, c):
        assert pair_priority(a, b) < pair_priority(a, c)


def test_foundations_shared_by_type_base_server_and_transport():
    f = Foundations()
    assert f.get("host", "10.0.0.1", None) == f.get("host", "10.0.0.1", None)
    assert f.get("srflx", "10.0.0.1", "203.0.113.1") != f.get("srflx", "10.0.0.1", "203.0.113.9")
    assert f.get("srflx", "10.0.0.1", "203.0.113.1") != f.get("host", "10.0.0.1", None)
    assert f.get("host", "10.0.0.2", None) != f.get("host", "10.0.0.1", None)
    assert f.get("relay", "10.0.0.1", "203.0.113.1", "UDP") == f.get("relay", "10.0.0.1", "203.0.113.1")
