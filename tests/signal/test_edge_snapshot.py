"""A viewer's edge in the room's snapshot (servers/signal/edges.py): a signaling node that restarts, or
another that adopts the room, keeps each placed viewer on its edge and counts it there."""

from __future__ import annotations

from servers.signal.core import MediaOffered, RoomChanged

from .test_core import Harness, cluster_node, resumed_on
from .test_placement import edge, report, viewer_joins

EDGES = [edge("eu-a", "eu"), edge("eu-b", "eu"), edge("us", "us")]  # the eu edges equally loaded


def node_with_edges(seed: int) -> Harness:
    """Node n1 (a viewer room's threshold 0) with every edge linked and in its registry read, and call
    server "origin" linked, where rooms go (the edges report load)."""
    h = cluster_node("n1", seed, group_threshold=0, friends_only=False)
    h.core.handle_call_server_linked("origin", h.now)
    for record in EDGES:
        h.core.handle_call_server_linked(record.name, h.now)
        report(h, record.name, participants=5)
    h.core.handle_edges(EDGES)
    return h


def last_snapshot(h: Harness) -> dict:
    return [e for e in h.events() if isinstance(e, RoomChanged)][-1].snapshot


def test_a_viewers_edge_is_in_the_snapshot_and_after_a_restart_it_stays_there_and_counts():
    before = node_with_edges(1)
    owner = before.connect("owner")
    before.send(owner, "room.create", {})
    room_id = [m for s, m in before.drain() if m["type"] == "ack"][0]["payload"]["room_id"]
    viewer, ack = viewer_joins(before, owner, room_id, "viewer1", "eu")
    assert before.core.room_call_server(room_id) == "origin"
    assert ack["call_server"] == "eu-a"  # a tie: the first name
    snapshot = last_snapshot(before)
    assert snapshot["edges"] == {viewer: ["eu", "eu-a"]}  # the owner, on the room's server, has none
    tokens = {sid: before.core.session(sid).resume_token for sid in (owner, viewer)}

    # n1 restarts: a fresh core with the same links and registry adopts its room from the snapshot
    after = node_with_edges(2)
    after.now = before.now + 5
    for record in EDGES:  # reporting as they do every half second (a silent one gets no viewer)
        report(after, record.name, participants=5)
    after.core.adopt_room(snapshot, after.now)
    for sid, user in ((owner, "owner"), (viewer, "viewer1")):
        resumed_on(after, sid, user, tokens[sid])
    after.drain()
    assert last_snapshot(after)["edges"] == {viewer: ["eu", "eu-a"]}
    # the viewer's offer still goes to its edge, not to the room's server (nor placed again)
    after.send(viewer, "room.media", {"room_id": room_id, "sdp": "v=0"})
    assert [e.call_server for e in after.events() if isinstance(e, MediaOffered)] == ["eu-a"]
    # and it counts against eu-a: the next viewer of the region goes to eu-b
    second, ack = viewer_joins(after, owner, room_id, "viewer2", "eu")
    assert ack["call_server"] == "eu-b"
    assert last_snapshot(after)["edges"] == {viewer: ["eu", "eu-a"], second: ["eu", "eu-b"]}
    # eu-a dies: its viewer (known from the snapshot) is moved alone, and the snapshot says where
    after.core.handle_call_server_unlinked("eu-a", after.now)
    moved = {s: m["payload"] for s, m in after.drain() if m["type"] == "room.moved"}
    assert list(moved) == [viewer] and moved[viewer]["call_server"] == "eu-b", moved
    assert last_snapshot(after)["edges"] == {viewer: ["eu", "eu-b"], second: ["eu", "eu-b"]}
    # a viewer that leaves is no longer in it
    after.send(second, "room.leave", {"room_id": room_id})
    assert last_snapshot(after)["edges"] == {viewer: ["eu", "eu-b"]}
