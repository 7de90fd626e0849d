"""Studio control through signaling: only the room's owner operates it; the start puts the room on the
call server; each command reaches the call server's link with the operator's name, and the call server's
``studio.state`` reaches everyone in the room."""

from __future__ import annotations

import json

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
