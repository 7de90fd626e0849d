"""Call-server liveness through the real adapter (servers/signal/server.py), not only the core.

A signaling node in this process; a stand-in call server on its own thread and event loop (a
WebSocket client on ``/v1/service?server=cs1`` that sends ``service.load`` every 0.2 s, and whose
library answers pings as a real call server's does), so its reports keep coming while this
process's loop is blocked. Two rules of docs/signaling.md "Call-server liveness":

* a stall of signaling's own loop longer than ``REPORT_TIMEOUT`` makes nobody suspect, let alone
  dead (the adapter's LoopLag gives the stall to the core before its deadline check runs);
* a call server that stops reporting but whose link answers pings keeps its rooms past the
  ping's ``PROBE_TIMEOUT`` and is dead only at the end of the grace (reason ``silent``).

No timing upper bounds: each check waits on a condition; the one bound is a lower one (a death
never comes before the rules allow it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from servers.signal.placement import PROBE_TIMEOUT, REPORT_TIMEOUT

from .test_rooms import users

SECRET = "svc-secret"
LOAD = {"participants": 0, "rooms": 0, "tracks": 0, "packets_per_second": 0.0}


class StandIn:
    """A call server's service link on a thread of its own: reports while ``reporting`` is set."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reporting = threading.Event()
        self.reporting.set()
        self.last_report = 0.0  # time.monotonic() of its last report
        self.closed = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()

    async def _run(self) -> None:
        async with connect(f"ws://127.0.0.1:{self.port}/v1/service?server=cs1",
                           additional_headers={"Authorization": f"Bearer {SECRET}"}) as ws:
            reader = asyncio.ensure_future(self._read(ws))
            while not self._stop.is_set() and not reader.done():
                if self.reporting.is_set():
                    try:
                        await ws.send(json.dumps({"v": 1, "type": "service.load", "payload": LOAD}))
                    except ConnectionClosed:
                        break
                    self.last_report = time.monotonic()
                await asyncio.sleep(0.2)
            reader.cancel()

    async def _read(self, ws) -> None:
        try:
            async for _ in ws:  # commands for the call server: not needed here
                pass
        except ConnectionClosed:
            pass
        self.closed.set()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


async def until(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return condition()


async def room_on_cs1(start_server, names):
    server = await start_server(service_secret=SECRET, group_threshold=1)
    stand_in = StandIn(server.port)
    assert await until(lambda: "cs1" in server.core.placement
                       and server.core.placement.servers["cs1"].reported_at is not None)
    owner, guest = await users(server, names, 2)
    room_id = (await owner.ok("room.create", {}))["room_id"]
    await owner.ok("room.invite", {"room_id": room_id, "to": guest.user})
    await guest.ok("room.join", {"room_id": room_id})
    assert server.core.room_call_server(room_id) == "cs1"
    return server, stand_in, owner, room_id


async def test_a_stall_of_signalings_own_loop_makes_no_call_server_suspect_or_dead(start_server, names, caplog):
    caplog.set_level(logging.INFO, logger="netcore.signal")
    server, stand_in, owner, room_id = await room_on_cs1(start_server, names)
    try:
        time.sleep(REPORT_TIMEOUT + 2.0)  # this loop (signaling's) blocked; cs1's reports pile up unread
        resumed = time.monotonic()
        cs1 = server.core.placement.servers["cs1"]
        # once a report is read after the stall, the deadline checks of the first loop turn after it have
        # run (they run before the sockets' data is handed on); the loop's clock is time.monotonic()
        assert await until(lambda: "cs1" not in server.core.placement
                           or server.core.placement.servers["cs1"].reported_at >= resumed), \
            "no report read after the stall"
        assert server.core.placement.servers.get("cs1") is cs1, "cs1 was declared dead by our own stall"
        assert not stand_in.closed.is_set()
        assert server.core.room_call_server(room_id) == "cs1"
        assert not [m for m in owner.inbox if m["type"] == "room.moved"]
        said = [r.getMessage() for r in caplog.records]
        assert not [m for m in said if '"service.suspect"' in m or '"service.dead"' in m], said
        assert server.metrics.loop_stalls >= 1 and server.metrics.loop_stalled_seconds >= REPORT_TIMEOUT
    finally:
        stand_in.stop()


async def test_a_silent_call_server_whose_link_answers_pings_keeps_its_rooms_through_the_grace(
        start_server, names, caplog):
    caplog.set_level(logging.INFO, logger="netcore.signal")
    server, stand_in, owner, room_id = await room_on_cs1(start_server, names)
    try:
        stand_in.reporting.clear()  # silent, but its WebSocket library still answers pings
        moved = await owner.expect("room.moved", timeout=60, room_id=room_id)
        silent_for = time.monotonic() - stand_in.last_report
        assert moved["previous"] == "cs1" and moved["call_server"] is None
        # suspect at REPORT_TIMEOUT, its ping answered: not dead when an unanswered one would be
        assert silent_for > REPORT_TIMEOUT + PROBE_TIMEOUT + 0.5, silent_for
        dead = [json.loads(r.getMessage()) for r in caplog.records if '"service.dead"' in r.getMessage()]
        assert [d["reason"] for d in dead] == ["silent"], dead
        assert any('"service.suspect"' in r.getMessage() for r in caplog.records)
        assert await until(stand_in.closed.is_set)  # signaling closed its link, so it links again afresh
    finally:
        stand_in.stop()
