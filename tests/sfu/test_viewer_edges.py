"""A broadcast's viewers placed one by one on the least-loaded live edge of their region.

Real processes on loopback and a real redis-server: one netcore-signal that
reads the broadcast tree's registry (``registry`` in its TOML), and three
edges (netcore-sfu ``--registry --tier edge``), two in region "eu" and one
in "us", each linked to that signaling under its registry name. The room
is on edge-eu-a with two participants (its load in the registry); viewers
that join with ``region`` land on the less loaded eu edge, a viewer of a
region with no edge ("ap", a ``netcore-call --region`` process) on the
least loaded of all, and when an eu edge is killed its viewers are moved
alone to the other one and, once its record has expired, new viewers never
go to it.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from netcore.peer.connection import Description, PeerConnection
from netcore.sfu.topology import RECORD_TTL
from servers.sfu.registry import SERVER_KEY
from tests.call.conftest import make_users, password
from tests.sfu.live import offer_to_call_server, start_signal
from tests.sfu.test_cascade_daemon import call_server, edge_room, linked, origin_and_tier2, stop_everyone, viewers
from tests.sfu.test_failover import Participant, until
from tests.signal.helpers import login, register
from tests.signal.test_multinode import redis_url  # noqa: F401  (the fixture: a redis-server of the test's own)


class Viewer:
    """A receive-only session of ours: joins with a region, offers to the edge signaling chose."""

    def __init__(self) -> None:
        self.pc: PeerConnection | None = None
        self.client = None

    async def watch(self, port: int, user: str, room_id: str, region: str | None) -> dict:
        await register(port, user)
        self.client = await login(port, user)
        ack = await self.client.ok("room.join", {"room_id": room_id, **({"region": region} if region else {})})
        await self.offer(room_id)
        return ack

    async def offer(self, room_id: str) -> None:
        """A new peer connection's offer (at the start, and after room.moved), answered by the call server."""
        if self.pc is not None:
            await self.pc.close()
        self.pc = PeerConnection()
        for kind in ("video", "audio"):
            self.pc.add_transceiver(kind, "recvonly")
        await self.pc.set_local_description(self.pc.create_offer())
        answer = await offer_to_call_server(self.client, room_id, self.pc.local_description.sdp)
        await self.pc.set_remote_description(Description(answer["sdp"], "answer"))

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()


async def loads(redis: str) -> dict[str, int]:
    """Each live edge's load as its registry record says."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis)
    try:
        out = {}
        for name in ("edge-eu-a", "edge-eu-b", "edge-us"):
            value = await client.get(SERVER_KEY.format(name))
            if value is not None:
                out[name] = json.loads(value)["load"]
        return out
    finally:
        await client.aclose()


async def until_loads(redis: str, wanted: dict[str, int], timeout: float = 10) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while (seen := await loads(redis)) != wanted and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return seen


async def scenario(tmp_path: Path, redis: str) -> dict:
    tag = f"v{os.getpid() % 1000}"
    processes, people, ours = [], [], []
    try:
        signal, port = await start_signal(tmp_path, 0, call_server=None, settings=f'registry = "{redis}"\n')
        processes.append(signal)
        edges = {}
        for name, region in (("edge-eu-a", "eu"), ("edge-eu-b", "eu"), ("edge-us", "us")):
            edges[name] = await call_server(tmp_path, name, "--signal", f"ws://127.0.0.1:{port}/v1/service",
                                            "--registry", redis, "--tier", "edge", "--region", region)
            processes.append(edges[name]["proc"])
            await linked(edges[name])
        watchers = [f"{tag}w{n}" for n in range(1, 7)]
        await make_users(f"ws://127.0.0.1:{port}", f"{tag}ap1", friends=False,
                         passwords={f"{tag}ap1": password(f"{tag}ap")})
        room_id = await edge_room(port, f"{tag}owner", [f"{tag}g1", f"{tag}g2", f"{tag}ap1", *watchers])
        # the room (all loads 0: the first name) and two participants on it: edge-eu-a's load is 2
        guests = [Viewer(), Viewer()]
        ours += guests
        for n, guest in enumerate(guests, 1):
            assert (await guest.watch(port, f"{tag}g{n}", room_id, None))["call_server"] == "edge-eu-a"
        seeded = await until_loads(redis, {"edge-eu-a": 2, "edge-eu-b": 0, "edge-us": 0})
        await asyncio.sleep(1.5)  # signaling reads the registry every 0.5 s (HEARTBEAT)
        placed = {}
        for user, region in ((watchers[0], "eu"), (watchers[1], "eu")):
            viewer = Viewer()
            ours.append(viewer)
            ack = await viewer.watch(port, user, room_id, region)
            placed[user] = (ack["call_server"], ack["edge"])
        ap = Participant(f"{tag}ap")  # netcore-call --region: a region without an edge
        people.append(ap)
        await ap.start(tmp_path, f"ws://127.0.0.1:{port}", "--subscribers", "1", "join", room_id, "--watch",
                       "--region", "ap", "--slots", "1", "--duration", "30")
        assert await until(lambda: ap.said(r"is on the call server (\S+)"), 30), ap.log()
        placed["ap"] = ap.said(r"is on the call server (\S+)")[0][1].group(1)
        after = await until_loads(redis, {"edge-eu-a": 2, "edge-eu-b": 2, "edge-us": 1})
        # an eu edge dies: its viewers (and only they) move; once its record expires, nobody is sent there
        moved = ours[2:4]
        killed = time.monotonic()
        edges["edge-eu-b"]["proc"].kill()
        moves = [await v.client.expect("room.moved", timeout=10) for v in moved]
        for viewer in moved:  # offer again: to the new edge
            await viewer.offer(room_id)
        gone = await until_loads(redis, {"edge-eu-a": 4, "edge-us": 1}, timeout=3 * RECORD_TTL)
        expired = time.monotonic() - killed
        late = Viewer()
        ours.append(late)
        late_ack = await late.watch(port, watchers[2], room_id, "eu")
        others_moved = [m for c in (guests[0].client, guests[1].client) for m in c.inbox if m["type"] == "room.moved"]
        return {"seeded": seeded, "placed": placed, "after": after, "moves": moves, "gone": gone,
                "expired": expired, "late": late_ack["call_server"], "others_moved": others_moved}
    finally:
        for viewer in ours:
            await viewer.close()
        await stop_everyone(people, processes)


def test_viewers_go_to_the_least_loaded_live_edge_of_their_region(tmp_path, redis_url):  # noqa: F811
    out = asyncio.run(asyncio.wait_for(scenario(tmp_path, redis_url), 180))
    print(f"placed: {out['placed']}; the killed edge's record gone {out['expired']:.2f} s after the kill")
    assert out["seeded"] == {"edge-eu-a": 2, "edge-eu-b": 0, "edge-us": 0}, out
    (first, second) = [v for k, v in out["placed"].items() if k != "ap"]
    assert first == second == ("edge-eu-b", {"name": "edge-eu-b", "region": "eu"}), out  # the less loaded eu edge
    assert out["placed"]["ap"] == "edge-us", out  # no edge in "ap": the least loaded anywhere
    assert out["after"] == {"edge-eu-a": 2, "edge-eu-b": 2, "edge-us": 1}, out  # each offer reached its edge
    assert [(m["call_server"], m["previous"], m["reason"]) for m in out["moves"]] == \
        [("edge-eu-a", "edge-eu-b", "failover")] * 2, out
    assert out["others_moved"] == [], out  # the room stayed where it was
    assert out["gone"] == {"edge-eu-a": 4, "edge-us": 1}, out  # the moved viewers' offers reached edge-eu-a
    assert out["late"] == "edge-eu-a", out


async def program_through_two_edges(tmp_path: Path, redis: str) -> dict:
    """The origin and a tier-2 server with a publisher's program; two eu edges linked to the viewers' signaling;
    two viewers of one room in one ``netcore-call --region eu`` process."""
    tag = f"p{os.getpid() % 1000}"
    processes, people = [], []
    try:
        _, tier2, program = await origin_and_tier2(tmp_path, tag, processes, people, 60)
        (tmp_path / "viewers").mkdir()
        signal, port = await start_signal(tmp_path / "viewers", 0, call_server=None,
                                          settings=f'registry = "{redis}"\n')
        processes.append(signal)
        edges = {}
        for name in ("edge-eu-a", "edge-eu-b"):
            edges[name] = await call_server(tmp_path, name, "--signal", f"ws://127.0.0.1:{port}/v1/service",
                                            "--upstream", f"ws://127.0.0.1:{tier2['cascade']}/",
                                            "--cascade-room", f"*={program}",
                                            "--registry", redis, "--tier", "edge", "--region", "eu")
            processes.append(edges[name]["proc"])
            await linked(edges[name])
        assert await until_loads(redis, {"edge-eu-a": 0, "edge-eu-b": 0}) == {"edge-eu-a": 0, "edge-eu-b": 0}
        await asyncio.sleep(1.5)  # signaling has read both records
        names = [f"{tag}w{n}" for n in (1, 2)]
        await make_users(f"ws://127.0.0.1:{port}", *names, friends=False,
                         passwords={n: password(f"{tag}w") for n in names})
        room_id = await edge_room(port, f"{tag}owner", names)
        watchers = await viewers(tmp_path, {"tag": tag, "port": port, "room": room_id}, "w", 2, 20, "--region", "eu")
        people.append(watchers)
        assert await until(lambda: len({m.group(1) for _, m in watchers.said(r"(\S+): receiving")}) >= 2, 40), \
            watchers.log()
        where = {m.group(1): m.group(2) for _, m in watchers.said(r"(\S+): room \S+ is on the call server (\S+)")}
        summary = await watchers.finish(60)
        return {"where": where, "summary": summary}
    finally:
        await stop_everyone(people, processes)


def test_two_viewers_of_one_room_go_to_two_edges_and_each_decodes_the_program(tmp_path, redis_url):  # noqa: F811
    out = asyncio.run(asyncio.wait_for(program_through_two_edges(tmp_path, redis_url), 240))
    print(f"viewers' edges: {out['where']}")
    assert sorted(out["where"].values()) == ["edge-eu-a", "edge-eu-b"], out["where"]  # per viewer, not per room
    for session in out["summary"]["sessions"]:
        (link,) = session["links"]
        video = link["received"]["video"]
        assert len(video["numbers"]) >= 60 and video["in_order"], (session["user"], video["numbers"][:20])
