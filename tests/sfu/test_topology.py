"""The broadcast tree's choices (netcore.sfu.topology): least-loaded of the region, the failed left out."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from netcore.sfu.topology import ServerRecord, choose_edge, choose_upstream


def record(name: str, tier: str, region: str = "eu", load: int = 0, capacity: int = 100) -> ServerRecord:
    return ServerRecord(name, tier, region, f"ws://{name}:7100/", load, capacity)


TREE = [record("origin", "origin", "us"), record("t2-eu-a", "tier2", load=30), record("t2-eu-b", "tier2", load=10),
        record("t2-us", "tier2", "us", load=0), record("e-eu-1", "edge", load=50), record("e-eu-2", "edge", load=20),
        record("e-us", "edge", "us", load=0)]


def test_a_viewer_goes_to_the_least_loaded_edge_of_its_region_and_elsewhere_when_it_has_none():
    assert choose_edge(TREE, "eu").name == "e-eu-2"
    assert choose_edge(TREE, "ap").name == "e-us"  # no edge in its region: the least loaded anywhere
    assert choose_edge(TREE, "eu", frozenset({"e-eu-2"})).name == "e-eu-1"  # an edge that died
    assert choose_edge([r for r in TREE if r.tier != "edge"], "eu") is None


def test_an_edge_pulls_from_its_regions_least_loaded_tier2_and_tier2_from_the_origin():
    assert choose_upstream(TREE, "edge", "eu").name == "t2-eu-b"
    assert choose_upstream(TREE, "edge", "eu", frozenset({"t2-eu-b"})).name == "t2-eu-a"
    assert choose_upstream(TREE, "edge", "eu", frozenset({"t2-eu-a", "t2-eu-b"})).name == "t2-us"
    only_origin = [r for r in TREE if r.tier != "tier2"]
    assert choose_upstream(only_origin, "edge", "eu").name == "origin"
    assert choose_upstream(TREE, "tier2", "eu").name == "origin"
    assert choose_upstream(TREE, "origin", "eu") is None


def test_load_is_compared_as_a_share_of_capacity():
    big, small = record("big", "edge", load=40, capacity=400), record("small", "edge", load=20, capacity=50)
    assert choose_edge([big, small], "eu").name == "big"


@given(st.binary(max_size=200) | st.text(max_size=200))
def test_any_record_text_is_parsed_or_refused_without_raising(data):
    assert ServerRecord.from_json(data) is None or isinstance(ServerRecord.from_json(data), ServerRecord)


def test_records_survive_their_wire_form():
    for r in TREE:
        assert ServerRecord.from_json(r.to_json()) == r
    assert ServerRecord.from_json('{"name": "x", "tier": "moon", "region": "eu", "cascade": "ws://x/"}') is None
