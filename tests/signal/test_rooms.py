"""Group calls: join up to and past the threshold, recording, recording.ready."""

from __future__ import annotations

import asyncio
import json

from websockets.asyncio.client import connect

from .helpers import login, make_friends, register

CALL_SERVER = "wss://callserver.example:7443/v1"


async def users(server, names, n):
    clients = []
    for i in range(n):
        user = names(f"g{i}")
        await register(server.port, user)
        clients.append(await login(server.port, user))
    for other in clients[1:]:
        await make_friends(clients[0], other)
    return clients


async def test_mesh_up_to_threshold_then_call_server(start_server, names):
    server = await start_server(group_threshold=3, call_server=CALL_SERVER)
    owner, *others = await users(server, names, 4)
    created = await owner.ok("room.create", {"media": ["audio", "video"]})
    room_id = created["room_id"]
    assert created["topology"] == "mesh" and created["participants"][0]["user"] == owner.user
    for c in others:
        await owner.ok("room.invite", {"room_id": room_id, "to": c.user})
        assert (await c.expect("room.invited", room_id=room_id))["from"] == owner.user
    joined1 = await others[0].ok("room.join", {"room_id": room_id})
    assert joined1["topology"] == "mesh" and len(joined1["participants"]) == 2
    await owner.expect("room.joined", user=others[0].user)
    # mesh signaling between two participants, addressed by session id
    await owner.ok("room.signal", {"room_id": room_id, "to": others[0].session_id, "kind": "offer", "sdp": "v=0"})
    sig = await others[0].expect("room.signal", room_id=room_id)
    assert sig["from"] == owner.session_id and sig["sdp"] == "v=0"
    err = await owner.request("room.signal", {"room_id": room_id, "to": others[0].session_id, "kind": "candidate"})
    assert err["payload"] == {"code": 400, "reason": "a candidate needs field 'candidate'"}
    await others[1].ok("room.join", {"room_id": room_id})  # 3 participants: still a mesh
    await owner.nothing("room.topology")
    joined = await others[2].ok("room.join", {"room_id": room_id})  # 4 > threshold
    assert joined["topology"] == "sfu" and joined["call_server"] == CALL_SERVER
    for c in (owner, others[0], others[1]):
        topo = await c.expect("room.topology", room_id=room_id)
        assert topo == {"room_id": room_id, "mode": "sfu", "call_server": CALL_SERVER, "reason": "threshold"}
    err = await owner.request("room.signal", {"room_id": room_id, "to": others[0].session_id, "kind": "offer",
                                              "sdp": "v=0"})
    assert err["payload"]["code"] == 409
    # leave: the others hear it
    await others[2].ok("room.leave", {"room_id": room_id})
    assert (await owner.expect("room.left", user=others[2].user))["reason"] == "left"


async def test_uninvited_user_cannot_join_or_see_room(start_server, names):
    server = await start_server(call_server=CALL_SERVER)
    owner, friend = await users(server, names, 2)
    eve = names("eve")
    await register(server.port, eve)
    ce = await login(server.port, eve)
    room_id = (await owner.ok("room.create", {}))["room_id"]
    for kind, extra in (("room.join", {}), ("room.leave", {}), ("room.record", {"action": "start"})):
        real = await ce.request(kind, {"room_id": room_id, **extra})
        fake = await ce.request(kind, {"room_id": "f" * 32, **extra})
        assert real["payload"] == fake["payload"] == {"code": 404, "reason": "no such room"}
    err = await owner.request("room.invite", {"room_id": room_id, "to": eve})
    assert err["payload"]["code"] == 403  # not a friend


async def room_with_service_link(start_server, names):
    """A server with a call server's service link open, and a room of two: (link, owner, guest, room id)."""
    server = await start_server(call_server=CALL_SERVER, service_secret="svc-secret")
    service = await connect(f"ws://127.0.0.1:{server.port}/v1/service",
                            additional_headers={"Authorization": "Bearer svc-secret"})
    owner, guest = await users(server, names, 2)
    room_id = (await owner.ok("room.create", {}))["room_id"]
    await owner.ok("room.invite", {"room_id": room_id, "to": guest.user})
    await guest.ok("room.join", {"room_id": room_id})
    return service, owner, guest, room_id


async def test_recording_switches_topology_and_ready_is_notified(start_server, names):
    service, owner, guest, room_id = await room_with_service_link(start_server, names)
    err = await guest.request("room.record", {"room_id": room_id, "action": "start"})
    assert err["payload"]["code"] == 403  # only the owner
    await owner.ok("room.record", {"room_id": room_id, "action": "start"})
    topo = await guest.expect("room.topology", room_id=room_id)
    assert topo["mode"] == "sfu" and topo["reason"] == "recording"
    assert (await guest.expect("room.recording", room_id=room_id))["state"] == "started"
    command = json.loads(await service.recv())
    assert command["type"] == "recording.start" and command["payload"]["room_id"] == room_id
    await owner.ok("room.record", {"room_id": room_id, "action": "stop"})
    assert json.loads(await service.recv())["type"] == "recording.stop"
    await service.send(json.dumps({"v": 1, "type": "recording.ready", "id": "r1",
                                   "payload": {"room_id": room_id, "location": "file:///rec/a.webm"}}))
    ack = json.loads(await service.recv())
    assert ack["type"] == "ack" and ack["payload"]["delivered"] is True
    for c in (owner, guest):
        ready = await c.expect("recording.ready", room_id=room_id)
        assert ready["location"] == "file:///rec/a.webm"
    await service.close()


async def test_service_link_needs_its_secret(start_server):
    import pytest
    from websockets.exceptions import InvalidStatus

    server = await start_server(service_secret="svc-secret")
    with pytest.raises(InvalidStatus):
        await connect(f"ws://127.0.0.1:{server.port}/v1/service",
                      additional_headers={"Authorization": "Bearer wrong"})


async def test_offers_go_to_the_call_server_and_its_answers_slots_and_speaker_come_back(start_server, names):
    server = await start_server(call_server=CALL_SERVER, service_secret="svc-secret", group_threshold=1)
    owner, guest = await users(server, names, 2)
    room_id = (await owner.ok("room.create", {}))["room_id"]
    err = await owner.request("room.media", {"room_id": room_id, "sdp": "v=0"})
    assert err["payload"]["code"] == 409  # still a mesh
    await owner.ok("room.invite", {"room_id": room_id, "to": guest.user})
    await guest.ok("room.join", {"room_id": room_id})  # 2 > threshold: the call server
    err = await guest.request("room.media", {"room_id": room_id, "sdp": "v=0"})
    assert err["payload"]["code"] == 480  # the call server is not linked
    service = await connect(f"ws://127.0.0.1:{server.port}/v1/service",
                            additional_headers={"Authorization": "Bearer svc-secret"})
    await guest.ok("room.media", {"room_id": room_id, "sdp": "v=0 offer"})
    offer = json.loads(await service.recv())
    assert offer["type"] == "media.offer" and offer["payload"] == {
        "room_id": room_id, "session_id": guest.session_id, "user": guest.user, "sdp": "v=0 offer"}
    slots = [{"mid": "2", "kind": "video", "publisher": owner.session_id, "track": "1"}]
    await service.send(json.dumps({"v": 1, "type": "media.answer", "id": "a1", "payload": {
        "room_id": room_id, "session_id": guest.session_id, "sdp": "v=0 answer", "slots": slots}}))
    assert json.loads(await service.recv())["payload"]["delivered"] is True
    assert await guest.expect("room.media", room_id=room_id) == {"room_id": room_id, "sdp": "v=0 answer",
                                                                 "slots": slots}
    await service.send(json.dumps({"v": 1, "type": "media.slots", "id": "s1", "payload": {
        "room_id": room_id, "session_id": guest.session_id, "slots": []}}))
    assert (await guest.expect("room.slots", room_id=room_id))["slots"] == []
    await service.send(json.dumps({"v": 1, "type": "media.speaker", "id": "p1", "payload": {
        "room_id": room_id, "session_id": owner.session_id}}))
    for c in (owner, guest):
        assert (await c.expect("room.speaker", room_id=room_id))["session_id"] == owner.session_id
    # what the guest displays of the owner's video: the call server's layer allocator caps it
    await guest.ok("room.quality", {"room_id": room_id, "publisher": owner.session_id, "track": "1",
                                    "max_height": 180})
    err = await guest.request("room.quality", {"room_id": room_id, "publisher": owner.session_id, "track": "1",
                                               "max_height": 0})
    assert err["payload"]["code"] == 400
    import asyncio
    while (message := json.loads(await asyncio.wait_for(service.recv(), 10)))["type"] == "ack":
        pass  # the acks of media.slots and media.speaker
    assert message["type"] == "media.quality" and message["payload"] == {
        "room_id": room_id, "session_id": guest.session_id, "publisher": owner.session_id, "track": "1",
        "max_height": 180}
    # ... and its frame rate (a small tile of a broadcast: the publisher's lowest temporal layers)
    await guest.ok("room.quality", {"room_id": room_id, "publisher": owner.session_id, "track": "1",
                                    "max_height": 90, "max_fps": 3})
    while (message := json.loads(await asyncio.wait_for(service.recv(), 10)))["type"] == "ack":
        pass
    assert message["type"] == "media.quality" and message["payload"]["max_fps"] == 3, message
    await guest.ok("room.leave", {"room_id": room_id})
    while (message := json.loads(await asyncio.wait_for(service.recv(), 10)))["type"] == "ack":
        pass
    assert message == {"v": 1, "type": "media.leave", "id": None,
                       "payload": {"room_id": room_id, "session_id": guest.session_id}}
    await service.close()


async def test_a_recorder_link_keeps_the_call_server_and_recording_ready_waits_for_the_next_login(
        start_server, names):
    server = await start_server(call_server=CALL_SERVER, service_secret="svc-secret", resume_window=0.2)
    headers = {"Authorization": "Bearer svc-secret"}
    service = await connect(f"ws://127.0.0.1:{server.port}/v1/service", additional_headers=headers)
    owner, guest = await users(server, names, 2)
    room_id = (await owner.ok("room.create", {}))["room_id"]
    await owner.ok("room.invite", {"room_id": room_id, "to": guest.user})
    await guest.ok("room.join", {"room_id": room_id})
    await guest.ok("room.leave", {"room_id": room_id})
    await guest.close()  # logs out before the file is ready
    for _ in range(100):  # past the resume window: no session of the guest left
        if server.core.status(guest.user) == "offline":
            break
        await asyncio.sleep(0.05)
    assert server.core.status(guest.user) == "offline"
    recorder = await connect(f"ws://127.0.0.1:{server.port}/v1/service?role=recorder", additional_headers=headers)
    # the recorder did not take the call server's place: recording.start still reaches the call server
    await owner.ok("room.record", {"room_id": room_id, "action": "start"})
    assert json.loads(await service.recv())["type"] == "recording.start"
    ready = {"room_id": room_id, "location": "/rec/x.json", "users": [owner.user, guest.user, "someone_else"],
             "files": [{"participant": "s1", "name": "x-s1.webm", "location": "/rec/x-s1.webm"}]}
    for attempt in range(2):  # a recorder that resends after a lost ack: one notice kept, not two
        await recorder.send(json.dumps({"v": 1, "type": "recording.ready", "id": f"r{attempt}", "payload": ready}))
        ack = json.loads(await recorder.recv())
        assert ack["type"] == "ack" and ack["payload"]["delivered"] is True
    got = await owner.expect("recording.ready", room_id=room_id)  # online now
    assert got["location"] == "/rec/x.json" and got["files"][0]["name"] == "x-s1.webm"
    again = await login(server.port, guest.user)  # at the next login, once
    got = await again.expect("recording.ready", room_id=room_id)
    assert got["location"] == "/rec/x.json" and got["files"][0]["location"] == "/rec/x-s1.webm"
    await again.nothing("recording.ready")
    third = await login(server.port, guest.user)  # handed out once
    await third.nothing("recording.ready")
    for c in (owner, again, third):
        await c.close()
    await recorder.close()
    await service.close()
