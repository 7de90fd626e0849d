"""Studio control through signaling: only the room's owner operates it; the start puts the room on the
call server; each command reaches the call server's link with the operator's name, and the call server's
``studio.state`` reaches everyone in the room."""

from __future__ import annotations

import json

from servers.signal.core import RoomChanged
from servers.signal.events import StudioCommanded

from .test_core import Harness, cluster_node, resumed_on
from .test_placement import sfu_room
from .test_rooms import room_with_service_link


async def test_the_owner_operates_the_studio_and_the_call_server_is_told(start_server, names):
    service, owner, guest, room_id = await room_with_service_link(start_server, names)
    source = {"publisher": "p1", "track": "1"}
    err = await owner.request("studio.cut", {"room_id": room_id, "source": source})
    assert err["payload"]["code"] == 409  # no studio yet
    err = await guest.request("studio.start", {"room_id": room_id})
    assert err["payload"]["code"] == 403  # only the owner
    await owner.ok("studio.start", {"room_id": room_id})
    topo = await guest.expect("room.topology", room_id=room_id)
    assert topo["mode"] == "sfu" and topo["reason"] == "studio"
    command = json.loads(await service.recv())
    assert command["type"] == "studio.start" and command["payload"] == {"room_id": room_id, "by": owner.user}
    err = await guest.request("studio.cut", {"room_id": room_id, "source": source})
    assert err["payload"]["code"] == 403
    await owner.ok("studio.cut", {"room_id": room_id, "source": source})
    await owner.ok("studio.audio", {"room_id": room_id, "source": None})
    await owner.ok("studio.card", {"room_id": room_id})
    relayed = [json.loads(await service.recv()) for _ in range(3)]
    assert [(m["type"], m["payload"]) for m in relayed] == [
        ("studio.cut", {"room_id": room_id, "by": owner.user, "source": source}),
        ("studio.audio", {"room_id": room_id, "by": owner.user, "source": None}),
        ("studio.card", {"room_id": room_id, "by": owner.user})]
    bad = await owner.request("studio.cut", {"room_id": room_id, "source": {"publisher": "p1"}})
    assert bad["payload"]["code"] == 400
    state = {"room_id": room_id, "video": source, "next": None, "audio": None, "sources": []}
    await service.send(json.dumps({"v": 1, "type": "studio.state", "id": "s1", "payload": state}))
    assert json.loads(await service.recv())["payload"]["delivered"] is True
    for client in (owner, guest):
        assert await client.expect("studio.state", room_id=room_id) == state
    await service.close()


async def test_the_owner_stops_the_studio_and_everyone_in_the_room_is_told(start_server, names):
    service, owner, guest, room_id = await room_with_service_link(start_server, names)
    err = await owner.request("studio.stop", {"room_id": room_id})
    assert err["payload"]["code"] == 409  # no studio to stop
    await owner.ok("studio.start", {"room_id": room_id})
    assert json.loads(await service.recv())["type"] == "studio.start"
    err = await guest.request("studio.stop", {"room_id": room_id})
    assert err["payload"]["code"] == 403  # only the operator
    await owner.ok("studio.stop", {"room_id": room_id})
    command = json.loads(await service.recv())
    assert command["type"] == "studio.stop" and command["payload"] == {"room_id": room_id, "by": owner.user}
    for client in (owner, guest):
        assert await client.expect("studio.stopped", room_id=room_id) == {"room_id": room_id, "by": owner.user}
    err = await owner.request("studio.cut", {"room_id": room_id, "source": {"publisher": "p1", "track": "1"}})
    assert err["payload"]["code"] == 409  # no studio any more; a new start makes one again
    await owner.ok("studio.start", {"room_id": room_id})
    assert json.loads(await service.recv())["type"] == "studio.start"
    await service.close()


# --- the studio in the room's snapshot (another node, or a restarted one, adopts the room) ---------


def journaled(node_id: str, seed: int) -> Harness:
    """A cluster node with call server "a" linked."""
    h = cluster_node(node_id, seed, group_threshold=4, friends_only=False)
    h.core.handle_call_server_linked("a", h.now)
    return h


def last_snapshot(events: list) -> dict:
    return [e for e in events if isinstance(e, RoomChanged)][-1].snapshot


def adopted(snapshot: dict, by: Harness, operator_session: str, resume_token: str, node_id: str) -> Harness:
    """Node ``node_id`` takes the room over, with the operator's session (as a node that adopts a dead one's),
    which then resumes there."""
    node = journaled(node_id, len(node_id) + 7)
    node.now = by.now
    node.core.adopt_room(snapshot, node.now)
    resumed_on(node, operator_session, "user0", resume_token)
    node.drain()
    return node


def studio_commands(events: list) -> list[tuple[str, dict]]:
    return [(e.kind, e.payload) for e in events if isinstance(e, StudioCommanded)]


def test_a_studio_and_what_is_on_air_travel_in_the_rooms_snapshot_to_a_node_that_adopts_it():
    first = journaled("n1", 1)
    sids, room_id = sfu_room(first)
    token = first.core.session(sids[0]).resume_token
    assert last_snapshot(first.events())["studio"] is None  # no studio yet
    first.send(sids[0], "studio.start", {"room_id": room_id})
    assert last_snapshot(first.events())["studio"] == {"video": {"card": True}, "audio": None}  # the card from the start
    source = {"publisher": sids[1], "track": "1"}
    first.send(sids[0], "studio.cut", {"room_id": room_id, "source": source})
    first.send(sids[0], "studio.audio", {"room_id": room_id, "source": {"mix": True}})
    snapshot = last_snapshot(first.events())
    assert snapshot["studio"] == {"video": source, "audio": {"mix": True}}
    # another node adopts the room: it is a studio there, the operator's commands go on to the call server
    second = adopted(snapshot, first, sids[0], token, "n2")
    assert last_snapshot(second.events())["studio"] == {"video": source, "audio": {"mix": True}}
    second.send(sids[0], "studio.card", {"room_id": room_id})
    out = second.drain()
    assert [m["type"] for s, m in out if s == sids[0]] == ["ack"], out
    events = second.events()
    assert studio_commands(events) == [("studio.card", {})]
    assert last_snapshot(events)["studio"] == {"video": {"card": True}, "audio": {"mix": True}}
    # stopped there: its snapshot says no studio, and a node that adopts it then refuses a cut
    second.send(sids[0], "studio.stop", {"room_id": room_id})
    out = second.drain()
    assert [m["type"] for s, m in out if s == sids[0]] == ["ack", "studio.stopped"], out
    events = second.events()
    assert studio_commands(events) == [("studio.stop", {})]
    snapshot = last_snapshot(events)
    assert snapshot["studio"] is None
    third = adopted(snapshot, second, sids[0], token, "n3")
    third.send(sids[0], "studio.cut", {"room_id": room_id, "source": source})
    (err,) = [m for s, m in third.drain() if s == sids[0]]
    assert err["type"] == "error" and err["payload"]["code"] == 409
