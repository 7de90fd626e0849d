"""A broadcast through real call servers: origin -> tier 2 -> two edges, viewers at the edges.

Real processes on loopback: netcore-signal and netcore-sfu for the origin
(a ``netcore-call`` publisher in its room), a tier-2 netcore-sfu linked to
the origin, and two edges (netcore-signal and netcore-sfu each, their rooms
pulled from the tier-2 server) with ``netcore-call --subscribers N --watch``
viewers. Every viewer must decode the program; the origin's link bytes must
not grow when the viewers go from 4 to 20 (its one link carries the program
once whatever is behind it), while the edges' forwarded bytes do.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from pathlib import Path

from tests.call.conftest import make_users, password
from tests.sfu.live import SECRET, _start, health, metrics, start_signal, stop
from tests.sfu.test_failover import Participant, until
from tests.signal.helpers import login, register

_names = itertools.count(1)
FIRST, MORE = 2, 8  # viewers per edge, then added per edge (4 in all, then 20)
WINDOW = 4.0  # seconds each phase's byte rates are measured over


async def call_server(tmp_path: Path, name: str, *extra: str) -> dict:
    """netcore-sfu with links (``--cascade``): process, ports."""
    proc, line = await _start(["-m", "servers.sfu.main", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
                               "--cascade", "127.0.0.1:0", "--service-secret", SECRET, "--name", name, *extra],
                              tmp_path / f"{name}.log")
    fields = dict(f.split("=") for f in line.decode().split()[1:])
    return {"proc": proc, "http": int(fields["http"]), "cascade": int(fields["cascade"]), "name": name,
            "log": tmp_path / f"{name}.log"}


async def linked(server: dict) -> None:
    for _ in range(100):
        if (await asyncio.to_thread(health, server["http"])).get("signal_linked"):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{server['name']} never linked to its signaling")


def link_bytes(server: dict) -> float:
    """What the server sent on its links (media, repairs included)."""
    return sum(v for k, v in metrics(server["http"]).items()
               if k.startswith("sfu_cascade_link_bytes_total") and 'direction="down"' in k)


async def rate(servers: list[dict], read) -> list[float]:
    """Bytes per second of ``read(server)`` over WINDOW, for each server."""
    before = [await asyncio.to_thread(read, s) for s in servers]
    start = time.monotonic()
    await asyncio.sleep(WINDOW)
    after = [await asyncio.to_thread(read, s) for s in servers]
    return [(a - b) / (time.monotonic() - start) for a, b in zip(after, before)]


def forwarded(server: dict) -> float:
    return metrics(server["http"])["sfu_forwarded_bytes_total"]


async def publish(tmp_path: Path, publisher: Participant, port: int, duration: float) -> str:
    """``publisher`` (netcore-call) in a new room at the signaling on ``port``: the room's id."""
    await make_users(f"ws://127.0.0.1:{port}", publisher.user, friends=False)
    await publisher.start(tmp_path, f"ws://127.0.0.1:{port}", "join", "new", "--duration", str(duration))
    assert await until(lambda: publisher.said(r"room (\S+) created"), 30), publisher.log()
    return publisher.said(r"room (\S+) created")[0][1].group(1)


async def edge_room(port: int, owner: str, viewers: list[str]) -> str:
    """A room at an edge's signaling, its viewers invited (it goes to the edge's call server at once)."""
    await register(port, owner)
    client = await login(port, owner)
    room_id = (await client.ok("room.create", {}))["room_id"]
    for viewer in viewers:
        await client.ok("room.invite", {"room_id": room_id, "to": viewer})
    return room_id


async def origin_and_tier2(tmp_path: Path, tag: str, processes: list, people: list,
                           duration: float) -> tuple[dict, dict, str]:
    """The origin (netcore-signal, netcore-sfu and a netcore-call publisher in a new room) and a tier-2
    netcore-sfu pulling from it: (origin, tier2, the program's room id). Processes are added to the lists."""
    (tmp_path / "origin").mkdir()
    signal0, port0 = await start_signal(tmp_path / "origin", 0)
    processes.append(signal0)
    origin = await call_server(tmp_path, "origin", "--signal", f"ws://127.0.0.1:{port0}/v1/service")
    processes.append(origin["proc"])
    await linked(origin)
    tier2 = await call_server(tmp_path, "tier2", "--upstream", f"ws://127.0.0.1:{origin['cascade']}/")
    processes.append(tier2["proc"])
    publisher = Participant(f"{tag}pub")
    people.append(publisher)
    return origin, tier2, await publish(tmp_path, publisher, port0, duration)


async def stop_everyone(people: list[Participant], processes: list) -> None:
    for p in people:
        if p.proc is not None and p.proc.returncode is None:
            p.proc.kill()
            await p.proc.wait()
    for proc in reversed(processes):
        await stop(proc)


async def broadcast(tmp_path: Path) -> dict:
    tag = f"b{os.getpid() % 1000}x{next(_names)}"
    processes: list = []
    people: list[Participant] = []
    try:
        origin, tier2, program = await origin_and_tier2(tmp_path, tag, processes, people, 90)
        publisher = people[0]
        edges = []
        for i in (1, 2):
            (tmp_path / f"edge{i}").mkdir()
            signal, port = await start_signal(tmp_path / f"edge{i}", 0)
            processes.append(signal)
            viewers = [f"{tag}e{i}a{n}" for n in range(1, FIRST + 1)] + [f"{tag}e{i}b{n}" for n in range(1, MORE + 1)]
            same = {v: password(v.rstrip("0123456789")) for v in viewers}  # netcore-call's USER1..N share one
            await make_users(f"ws://127.0.0.1:{port}", *viewers, friends=False, passwords=same)
            room_id = await edge_room(port, f"{tag}e{i}owner", viewers)
            edge = await call_server(tmp_path, f"edge{i}", "--signal", f"ws://127.0.0.1:{port}/v1/service",
                                     "--upstream", f"ws://127.0.0.1:{tier2['cascade']}/",
                                     "--cascade-room", f"*={program}")
            processes.append(edge["proc"])
            await linked(edge)
            edges.append({**edge, "port": port, "room": room_id, "tag": f"{tag}e{i}"})
        return {"origin": origin, "tier2": tier2, "edges": edges, "publisher": publisher, "people": people,
                "processes": processes, "program": program}
    except BaseException:
        await stop_everyone(people, processes)
        raise


async def viewers(tmp_path: Path, edge: dict, letter: str, count: int, duration: float, *extra: str) -> Participant:
    """``count`` receive-only viewers in one netcore-call process at ``edge`` (``extra``: more of its flags)."""
    viewer = Participant(f"{edge['tag']}{letter}")
    await viewer.start(tmp_path, f"ws://127.0.0.1:{edge['port']}", "--subscribers", str(count),
                       "join", edge["room"], "--watch", "--slots", "1", "--duration", str(duration), *extra)
    return viewer


def receiving(viewer: Participant, count: int) -> bool:
    return len({m.group(1) for _, m in viewer.said(r"(\S+): receiving \S+ through")}) >= count


async def scenario(tmp_path: Path) -> dict:
    env = await broadcast(tmp_path)
    people, edges = env["people"], env["edges"]
    try:
        first = [await viewers(tmp_path, edge, "a", FIRST, 40) for edge in edges]
        people += first
        assert await until(lambda: all(receiving(v, FIRST) for v in first), 40), \
            "\n---\n".join(v.log() for v in first)
        await asyncio.sleep(1.0)
        servers = [env["origin"], env["tier2"]]
        origin4, tier4 = await rate(servers, link_bytes)
        edges4 = await rate(edges, forwarded)
        more = [await viewers(tmp_path, edge, "b", MORE, 25) for edge in edges]
        people += more
        assert await until(lambda: all(receiving(v, MORE) for v in more), 60), \
            "\n---\n".join(v.log() for v in more)
        await asyncio.sleep(1.0)
        origin20, tier20 = await rate(servers, link_bytes)
        edges20 = await rate(edges, forwarded)
        series = await asyncio.to_thread(metrics, env["origin"]["http"])
        summaries = [await v.finish(90) for v in first + more]
        return {"origin": (origin4, origin20), "tier2": (tier4, tier20), "edges": (edges4, edges20),
                "summaries": summaries, "publisher": env["publisher"].user, "origin_metrics": series}
    finally:
        await stop_everyone(people, env["processes"])


def test_a_program_through_origin_tier2_and_two_edges_reaches_every_viewer_and_the_origin_sends_it_once(tmp_path):
    figures = asyncio.run(asyncio.wait_for(scenario(tmp_path), 300))
    (origin4, origin20), (tier4, tier20) = figures["origin"], figures["tier2"]
    edges4, edges20 = figures["edges"]
    print(f"origin link bytes/s: {origin4:.0f} at 4 viewers, {origin20:.0f} at 20; tier 2: {tier4:.0f}, "
          f"{tier20:.0f}; edges forwarded: {[round(e) for e in edges4]} -> {[round(e) for e in edges20]}")
    sessions = [s for summary in figures["summaries"] for s in summary["sessions"]]
    assert len(sessions) == 2 * (FIRST + MORE)
    for session in sessions:  # every viewer decoded the program, in order
        (link,) = session["links"]
        video = link["received"]["video"]
        assert len(video["numbers"]) >= 60 and video["in_order"], (session["user"], video["numbers"][:20])
        assert link["received"]["audio"]["frames"] > 0, session["user"]
    shown = {k: v for k, v in figures.items() if k != "summaries"}
    assert origin4 > 10_000 and tier4 > 1.5 * origin4, shown  # the program once to tier 2, once to each edge
    assert origin20 < 1.25 * origin4 and tier20 < 1.25 * tier4, shown  # not one byte more per viewer upstream
    assert all(e20 > 2.5 * e4 for e4, e20 in zip(edges4, edges20)), shown  # while the edges send 5x as much
    series = figures["origin_metrics"]  # the link, as the origin's /metrics reports it
    cascade_series = {k: v for k, v in series.items() if k.startswith("sfu_cascade")}
    assert series['sfu_cascade_links{direction="down"}'] == 1, cascade_series
    (bitrate,) = [v for k, v in series.items() if k.startswith("sfu_cascade_link_bitrate_bps")]
    assert 0.5 * origin20 * 8 < bitrate < 2 * origin20 * 8, cascade_series
    assert [v for k, v in series.items() if k.startswith("sfu_cascade_pulled_tracks")] == [2], cascade_series


async def refusals(tmp_path: Path) -> list:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    server = await call_server(tmp_path, "lonely")
    url = f"ws://127.0.0.1:{server['cascade']}/"
    out = []
    try:
        for headers, hello in (({"Authorization": "Bearer wrong"}, None),
                               ({"Authorization": f"Bearer {SECRET}"}, {"type": "worker.hello", "payload": {}}),
                               ({"Authorization": f"Bearer {SECRET}"},
                                {"type": "link.open", "payload": {"room": "r", "server": "lonely"}})):
            async with connect(url, additional_headers=headers) as ws:
                if hello is not None:
                    await ws.send(json.dumps({"v": 1, **hello}))
                try:
                    while True:
                        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
                        out.append(message["type"])
                except ConnectionClosed as exc:
                    out.append(exc.rcvd.code if exc.rcvd else None)
    finally:
        await stop(server["proc"])
    return out


def test_the_links_control_refuses_a_wrong_secret_a_wrong_hello_and_a_loop(tmp_path):
    # (the last asks the server for a room on behalf of a server of its own name: it is on the path)
    assert asyncio.run(refusals(tmp_path)) == [4401, 4400, "link.refused", 4409]
