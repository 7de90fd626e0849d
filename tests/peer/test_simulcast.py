"""Our PeerConnection sending simulcast (RFC 8853): the layers' bitrates, and three layers on the wire."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netcore.errors import UsageError
from netcore.media.synthetic import SyntheticCamera
from netcore.peer.connection import PeerConnection
from netcore.peer.simulcast import LAYER_MIN_BITRATE, layer_bitrates, parse_encodings
from netcore.peer.tracks import LocalVideoTrack

ENCODINGS = [{"rid": "q", "scale_resolution_down_by": 4}, {"rid": "h", "scale_resolution_down_by": 2},
             {"rid": "f"}]


@given(st.floats(0, 5_000_000), st.integers(1, 3))
def test_layers_share_the_target_and_pause_from_the_top_when_it_is_short(target, count):
    rates = layer_bitrates(target, count)
    active = [r for r in rates if r]
    assert len(rates) == count and active and rates == active + [0] * (count - len(active))  # paused on top
    assert all(r >= LAYER_MIN_BITRATE[i] for i, r in enumerate(active))
    if len(active) > 1:
        assert sum(active) <= max(target, LAYER_MIN_BITRATE[0]) + 1
    if len(active) < count:  # the next layer's minimum was not there to pay
        assert sum(LAYER_MIN_BITRATE[:len(active) + 1]) > target


def test_three_layers_get_fifteen_twenty_five_and_sixty_percent():
    assert layer_bitrates(2_000_000, 3) == [300_000, 500_000, 1_200_000]
    assert layer_bitrates(300_000, 3) == [75_000, 225_000, 0]  # 380k of minimums: the top pauses
    assert layer_bitrates(20_000, 3) == [30_000, 0, 0]


def test_encodings_are_checked():
    assert [e.rid for e in parse_encodings(ENCODINGS)] == ["q", "h", "f"]
    for bad in ([{"rid": "a b"}], [{"rid": "q"}, {"rid": "q"}], [{"rid": "q", "scale_resolution_down_by": 0.5}],
                [{"rid": str(i)} for i in range(4)], [{"rid": "q", "scalability_mode": "L3T3"}],
                [{"scalability_mode": "L1T3"}, {"rid": "h"}]):
        with pytest.raises(UsageError):
            parse_encodings(bad)
    # a scalability mode gives the layer's temporal layers; one encoding alone needs no rid
    assert [e.temporal_layers for e in parse_encodings([{"rid": "q", "scalability_mode": "L1T3"},
                                                         {"rid": "f", "scalability_mode": "L1T2"}])] == [3, 2]
    assert parse_encodings([{"scalability_mode": "L1T3"}])[0].temporal_layers == 3


def test_a_peer_connection_sends_three_layers_each_on_its_own_ssrc_named_by_rid():
    async def main():
        alice, bob = PeerConnection(), PeerConnection()
        for me, other in ((alice, bob), (bob, alice)):
            me.on("icecandidate", lambda c, other=other: asyncio.ensure_future(other.add_ice_candidate(c)))
        alice.add_transceiver(LocalVideoTrack(SyntheticCamera(320, 240), count=60), "sendonly",
                              send_encodings=ENCODINGS)
        bob.add_transceiver("video", "recvonly")
        sizes: dict[int, int] = {}
        bob.on("rtpreceived", lambda mid, packet, now: sizes.__setitem__(packet.ssrc, sizes.get(packet.ssrc, 0)
                                                                          + len(packet.payload)))
        try:
            await alice.set_local_description(alice.create_offer())
            offer = alice.local_description.sdp
            assert "a=simulcast:send q;h;f" in offer and "a=ssrc:" not in offer.split("m=video")[1]
            await bob.set_remote_description(alice.local_description)
            await bob.set_local_description(bob.create_answer())
            await alice.set_remote_description(bob.local_description)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while len(sizes) < 3 or min(sizes.values()) < 5000:
                assert loop.time() < deadline, sizes
                await asyncio.sleep(0.1)
            routes = {ssrc: route.rid for ssrc, route in bob.transport.demux.routes.items() if not route.rtx}
            stats = [s for s in alice.get_stats().values() if s["type"] == "outbound-rtp"]
            assert {s["rid"]: s["ssrc"] for s in stats} == {rid: ssrc for ssrc, rid in routes.items()}
            by_rid = {routes[ssrc]: size for ssrc, size in sizes.items()}
            assert by_rid["q"] < by_rid["h"] < by_rid["f"]  # a quarter, a half and the whole picture
            targets = {s["rid"]: s["targetBitrate"] for s in stats}
            assert targets["q"] < targets["h"] < targets["f"]
        finally:
            await alice.close()
            await bob.close()

    asyncio.run(main())
