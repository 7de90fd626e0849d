"""Links between call servers (netcore.sfu.cascade) in virtual time: origin -> tier 2 -> edges -> viewers."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netcore.net import Receive
from netcore.peer.events import KeyFrameRequested
from netcore.sfu.cascade import LINGER, LINK_TIMEOUT, DownlinkSilent, LinkKeys, PullChanged, RemotePublisher, TrackDescription, UplinkWanted
from netcore.sfu.keyframes import KEYFRAME_INTERVAL
from netcore.testing.simnet import Link
from tests.sfu.cascade_tree import Tree
from tests.sfu.harness import SimulcastPublisher
from tests.sfu.test_simulcast import HEIGHTS, SIZES, frames

FPS = 30


def broadcast(edges: int = 2, viewers: int = 2, tier2_link: Link | None = None):
    """origin <- tier2 <- edge1..N, a simulcast publisher in the origin's room r1, ``viewers`` per edge."""
    tree = Tree()
    origin = tree.server("origin", "10.0.0.1")
    tree.server("tier2", "10.0.1.1", upstream="origin", first_client=20, link=tier2_link)
    for i in range(edges):
        tree.server(f"edge{i + 1}", f"10.0.2.{i + 1}", upstream="tier2", first_client=40 + 20 * i)
    publisher = origin.join("pub", publish=("audio", "video"), slots=0, simulcast=("q", "h", "f"))
    origin.connect()
    layered = SimulcastPublisher(origin, publisher, HEIGHTS, SIZES, FPS)
    for i in range(edges):
        edge = tree.servers[f"edge{i + 1}"]
        for v in range(viewers):
            edge.join(f"e{i + 1}v{v + 1}", publish=(), slots=1)
        edge.connect()
    return tree, layered


def video_of(participant):
    return next(p for p in participant.publications.values() if p.kind == "video")


def viewer_frames(tree: Tree, name: str) -> dict[str, list[int]]:
    out = {}
    for server in tree.servers.values():
        for client in server.clients.values():
            if client.name.startswith("e"):
                mid = next(m for m, k in client.slots.items() if k == "video")
                out[client.name] = frames(client, mid)
    return out


def test_every_layer_goes_once_per_link_and_every_viewer_behind_it_gets_the_stream():
    tree, layered = broadcast(edges=2, viewers=3)
    layered.stream(4.0)
    origin, tier2 = tree.cascade("origin"), tree.cascade("tier2")
    assert len(origin.downlinks) == 1 and len(tier2.downlinks) == 2  # one link per downstream server
    (down,) = origin.downlinks.values()
    publication = video_of(tree.servers["origin"].core.participants["pub"])
    audio = next(p for p in tree.servers["origin"].core.participants["pub"].publications.values() if p.kind == "audio")
    received = publication.packets + audio.packets
    # every layer went, each packet once: the link carried what the origin received since it was pulled,
    # never more (3 viewers per edge, 6 in all, behind one link)
    assert set(down.histories) == {la.ssrc for la in publication.layers + audio.layers}
    assert 0.8 * received < down.stats.packets <= received
    assert down.stats.retransmissions == 0
    # on the edges the link's track is an ordinary publication with its simulcast layers
    remote = tree.servers["edge1"].core.participants["pub"]
    assert isinstance(remote, RemotePublisher)
    assert [la.rid for la in video_of(remote).layers] == ["q", "h", "f"]
    # with the publisher's sender reports, which put the layers on one clock for switches (RFC 3550 6.4.1)
    assert all(la.sender_report is not None for la in video_of(remote).layers)
    for name, got in viewer_frames(tree, "e").items():
        assert len(got) > 2 * FPS, name  # the last 2 s of the 4 at least
        assert got == sorted(got), name


def test_key_frame_requests_are_aggregated_at_every_hop():
    tree, layered = broadcast(edges=2, viewers=3)
    layered.stream(3.0)
    viewers = [c for name in ("edge1", "edge2") for c in tree.servers[name].clients.values()]
    publisher = layered.client
    before = len([e for e in publisher.node.events if isinstance(e, KeyFrameRequested)])
    plis = sum(u.stats.plis for name in ("edge1", "edge2") for u in tree.cascade(name).uplinks.values())
    rounds = 10
    for _ in range(rounds):  # every viewer of both edges asks for a key frame every 0.1 s for 1 s
        for client in viewers:
            mid = next(m for m, k in client.slots.items() if k == "video")
            client.transport.request_keyframe(client.received[mid][-1].ssrc, tree.net.now)
            client.node.flush()
        layered.stream(0.1)
    layered.stream(0.3)
    asked = [e.ssrc for e in publisher.node.events if isinstance(e, KeyFrameRequested)][before:]
    per_layer = {ssrc: asked.count(ssrc) for ssrc in set(asked)}
    # 60 requests from six viewers through two edges and a tier-2 server: at most one per key-frame
    # interval per layer reached the publisher
    assert per_layer and all(count <= 1.3 / KEYFRAME_INTERVAL + 1 for count in per_layer.values()), per_layer
    edge_plis = sum(u.stats.plis for name in ("edge1", "edge2") for u in tree.cascade(name).uplinks.values()) - plis
    assert 0 < edge_plis <= 2 * (1.3 / KEYFRAME_INTERVAL + 1) * len(per_layer)  # and at most that per edge link


def test_a_server_already_on_the_path_is_refused():
    tree, layered = broadcast(edges=1, viewers=1)
    layered.stream(1.0)
    tier2 = tree.cascade("tier2")
    assert tier2.path("r1") == ("origin", "tier2")
    assert tree.cascade("edge1").path("r1") == ("origin", "tier2", "edge1")
    assert tree.cascade("edge1").tree("r1") == "origin/r1"
    tree.open("origin", "edge1", "r1")  # the origin asking its own edge: edge1's path holds it
    tree.open("tier2", "edge1", "r1")
    assert [r[:2] for r in tree.refused] == [("origin", "edge1"), ("tier2", "edge1")]
    assert len(tree.cascade("edge1").downlinks) == 0


def test_a_path_holding_the_server_itself_is_refused_by_it():
    tree, layered = broadcast(edges=1, viewers=1)
    payload = {"link": "x", "path": ["origin", "edge1"], "keys": LinkKeys.generate().to_wire(), "tracks": []}
    with pytest.raises(Exception, match="already on the room's path"):
        tree.cascade("edge1").open_uplink("r2", payload, ("10.0.2.1", 42000), ("10.0.0.1", 41000), tree.net.now)


def test_a_track_is_pulled_while_watched_and_released_a_linger_after_the_last_viewer():
    tree, layered = broadcast(edges=1, viewers=2)
    layered.stream(2.0)
    edge = tree.servers["edge1"]
    (down,) = tree.cascade("tier2").downlinks.values()
    assert down.pulled == {"pub/0", "pub/1"}
    edge.core.leave("e1v1", tree.net.now)
    edge.server.flush()
    layered.stream(LINGER + 1)
    assert down.pulled == {"pub/0", "pub/1"}  # one viewer left
    edge.core.leave("e1v2", tree.net.now)
    edge.server.flush()
    left = tree.net.now
    layered.stream(LINGER - 0.5)
    assert down.pulled == {"pub/0", "pub/1"}  # lingering
    sent = down.stats.packets
    layered.stream(1.0)
    assert down.pulled == set()
    released = [e.track for n, e in tree.events if n == "edge1" and isinstance(e, PullChanged) and not e.pulled]
    assert sorted(released) == ["pub/0", "pub/1"]  # once each
    # nothing more goes down the link; the edge's room link itself goes a linger later
    layered.stream(0.5)
    after = down.stats.packets
    layered.stream(1.0)
    assert down.stats.packets == after > sent
    assert left + LINGER <= tree.net.now
    layered.stream(LINGER)
    assert "r1" not in tree.cascade("edge1").uplinks and not tree.cascade("tier2").downlinks
    # tier 2 had nobody else: it releases the origin's track too, and its own link after
    layered.stream(LINGER + 1)
    assert not tree.cascade("origin").downlinks


def test_a_viewer_coming_back_pulls_again():
    tree, layered = broadcast(edges=1, viewers=1)
    layered.stream(2.0)
    edge = tree.servers["edge1"]
    edge.core.leave("e1v1", tree.net.now)
    edge.server.flush()
    del edge.clients["e1v1"]
    layered.stream(2 * LINGER + 1)
    assert "r1" not in tree.cascade("edge1").uplinks
    client = edge.join("e1v9", publish=(), slots=1)
    edge.connect()
    layered.stream(2.0)
    mid = next(m for m, k in client.slots.items() if k == "video")
    assert len(frames(client, mid)) > FPS


def test_losses_on_a_link_are_repaired_from_that_hops_history():
    tree, layered = broadcast(edges=2, viewers=2, tier2_link=Link(delay=0.005, loss=0.05))
    layered.stream(5.0)
    tier2 = tree.cascade("tier2")
    repaired = sum(d.stats.retransmissions for d in tier2.downlinks.values())
    nacked = sum(u.stats.nacks for n in ("edge1", "edge2") for u in tree.cascade(n).uplinks.values())
    assert nacked > 0 and repaired > 0  # the edges' NACKs answered by tier 2 from its own history
    (origin_link,) = tree.cascade("origin").downlinks.values()
    publisher = tree.servers["origin"].clients["pub"]
    assert publisher.transport.stats.nacks_received == 0  # the publisher was never asked
    # what tier 2 lost from the origin (its own 5 % loss on its reports only) is not what the edges lost
    for name, got in viewer_frames(tree, "e").items():
        assert len(got) > 3 * FPS, name
        gaps = sum(1 for a, b in zip(got, got[1:]) if b - a > 1)
        assert gaps <= 2, (name, gaps)


def test_track_descriptions_survive_the_wire():
    track = TrackDescription("pub", "0", "video", ((96, "VP8"), (97, "RTX")), None, ("q", "h"),
                             (("q", 1), ("h", 2)))
    assert TrackDescription.from_wire(track.to_wire()) == track
    keys = LinkKeys.generate()
    assert LinkKeys.from_wire(keys.to_wire()) == keys


def test_an_edge_whose_upstream_went_asks_again_and_its_viewers_resume_through_the_other():
    tree, layered = broadcast(edges=1, viewers=2)
    tree.server("tier2b", "10.0.1.2", upstream="origin", first_client=100)
    layered.stream(2.0)
    (viewer, *_) = tree.servers["edge1"].clients.values()
    mid = next(m for m, k in viewer.slots.items() if k == "video")
    before = len(frames(viewer, mid))
    tree.upstream["edge1"] = "tier2b"  # what the registry would choose once tier2 is gone
    tree.close("edge1", "r1")  # tier 2 died: the edge's link broke
    layered.stream(2.0)
    assert tree.links[("edge1", "r1")][0] == "tier2b"
    assert tree.cascade("edge1").path("r1") == ("origin", "tier2b", "edge1")
    wanted = [e for name, e in tree.events if name == "edge1" and isinstance(e, UplinkWanted)]
    assert len(wanted) == 2  # the first link, and again once it broke
    got = frames(viewer, mid)
    assert len(got) - before > FPS  # more than a second of the 2 s after the move
    assert got == sorted(got)


def test_a_link_whose_downstream_went_silent_is_stopped_by_the_upstream():
    tree, layered = broadcast(edges=1, viewers=1)
    layered.stream(2.0)
    tier2 = tree.cascade("tier2")
    (down,) = tier2.downlinks.values()
    tree.net.block("10.0.2.1", "10.0.1.1")  # the edge's packets to tier 2 are lost from now on
    layered.stream(LINK_TIMEOUT - 0.5)
    assert down.link_id in tier2.downlinks  # its reports stopped under LINK_TIMEOUT ago
    layered.stream(1.0)
    assert not tier2.downlinks
    assert [e.link_id for n, e in tree.events if n == "tier2" and isinstance(e, DownlinkSilent)] == [down.link_id]
    stopped = down.stats.packets
    layered.stream(0.5)
    assert down.stats.packets == stopped > 0  # nothing more went after it was stopped


def test_renditions_of_a_transcoding_worker_go_down_the_link_as_layers_the_edge_chooses_among():
    from netcore.sfu.events import TranscodeStarted
    from tests.sfu.test_transcode import FPS as TFPS, SingleLayerPublisher, SimulatedWorker

    tree = Tree()
    origin = tree.server("origin", "10.0.0.1")
    edge = tree.server("edge1", "10.0.2.1", upstream="origin", first_client=40)
    origin.core.config.transcoding = True
    origin.core.worker_ready("w1", 2, tree.net.now)
    pub = origin.join("pub", slots=0)
    small = origin.join("small", publish=(), slots=1)
    viewer = edge.join("viewer", publish=(), slots=1)
    origin.connect()
    edge.connect()
    publisher = SingleLayerPublisher(origin, pub, TFPS)
    workers: list[SimulatedWorker] = []

    def stream(seconds: float) -> None:
        end, next_video = tree.net.now + seconds, tree.net.now
        while tree.net.now < end:
            if tree.net.now >= next_video - 1e-9:
                origin.send(pub, publisher.frame(tree.net.now))
                next_video += 1.0 / TFPS
            tree.run(0.01)
            for worker in workers:
                worker.work()
            started = [e for e in origin.events if isinstance(e, TranscodeStarted)]
            for event in started[len(workers):]:
                client = origin.join(f"transcode-{len(workers)}", publish=(), slots=1, job=event.job_id,
                                     renditions=len(event.renditions))
                origin.connect()
                workers.append(SimulatedWorker(origin, client))

    stream(1.0)
    mid = next(m for m, p in origin.core.participants["pub"].publications.items() if p.kind == "video")
    origin.core.request_max_height("small", "pub", mid, 360, tree.net.now)  # the origin's viewer: a ladder
    stream(4.0)
    source = origin.core.participants["pub"].publications[mid]
    assert [la.rid for la in source.layers] == [None, "q", "h"]  # the publisher's stream and two renditions
    (down,) = tree.cascade("origin").downlinks.values()
    assert {la.ssrc for la in source.layers} <= set(down.histories)  # each went down the one link
    remote = edge.core.participants["pub"].publications[mid]
    assert [la.rid for la in remote.layers] == ["~", "q", "h"]
    edge.core.request_max_height("viewer", "pub", mid, 180, tree.net.now)  # chosen at the edge
    stream(3.0)
    slot = next(s for s in edge.core.participants["viewer"].slots if s.kind == "video")
    assert remote.by_ssrc[slot.downtrack.rewriter.source].rid == "q"
    got = frames(viewer, next(m for m, k in viewer.slots.items() if k == "video"))
    assert len(got) > 3 * TFPS and got == sorted(got)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_any_datagram_on_a_link_socket_is_counted_and_dropped_never_raised(datagrams):
    tree, _ = LINKED
    for name in ("tier2", "edge1"):
        cascade = tree.cascade(name)
        addresses = [cascade.address] + [u.local for u in cascade.uplinks.values()]
        for data in datagrams:
            for address in addresses:
                cascade.handle_datagram(Receive(data, ("10.9.9.9", 9), address), tree.net.now)
    assert sum(tree.cascade("tier2").link_drops.values()) + sum(tree.cascade("edge1").link_drops.values()) \
        >= (1 if any(datagrams) else 0) or not datagrams


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12))
@settings(max_examples=200, deadline=None)
def test_a_malformed_track_list_is_refused_as_a_value_error(payload):
    tree, _ = LINKED
    edge = tree.cascade("edge1")
    before = dict(edge.uplinks["r1"].tracks)
    try:
        edge.uplink_tracks("r1", {"path": ["origin", "tier2"], "tracks": [payload]}, tree.net.now)
    except ValueError:
        assert edge.uplinks["r1"].tracks == before  # refused whole: nothing of it taken


def _linked():
    tree, layered = broadcast(edges=1, viewers=1)
    layered.stream(1.0)
    return tree, layered


LINKED = _linked()
