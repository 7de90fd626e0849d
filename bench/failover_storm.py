"""The failover storm, simulated: 400 viewers on four edges, edges that starve when loaded (issue 19).

The signaling core itself (servers/signal/core.py, sans-IO) on a virtual clock, driven as its
adapter drives it; the edges and viewers are a model, not processes:

* four edges (one region), each linked and reporting its load every 0.5 s; its registry record (the
  viewers on it) is renewed with each report and read by signaling every 0.5 s, and expires 2 s
  after the last renewal;
* starvation: each second, an edge carrying L viewers stalls with probability (L - 90) / 60 (0 below
  90 viewers, certain above 150) for 2-5 s (the silences measured at 312-400 viewers at load 15-21,
  docs/broadcast.md): no reports, no record renewal, and its link answers a ping only when the stall
  ends;
* signaling's own loop stalls for 2.5 s every 15 s (a burst of logins on a loaded machine): reports
  that arrive meanwhile are read after the stall, after the deadline check;
* a viewer told ``room.moved`` reconnects 1 s later and then weighs on its new edge; a call server
  whose link signaling closed (declared dead) links again 1 s after (after its stall, if stalled).

Printed per code tree: edges declared dead, viewer moves, the most viewers one edge carried, the
viewers still on an edge at the end, the longest a dead edge took to empty (from its death to the last
``room.moved`` off it) and the most viewers moved onto one edge within a second. Run it in a tree and with ``PYTHONPATH=/other/tree`` for the
other tree's core (an older core has no pings and no stall input; the driver skips them).
"""

from __future__ import annotations

import argparse
import heapq
import json
import random

from netcore.sfu.topology import ServerRecord
from servers.signal.core import CoreConfig, SignalCore

EDGES = ("edge-a", "edge-b", "edge-c", "edge-d")
REPORT_EVERY = 0.5
RECORD_TTL = 2.0
RECONNECT = 1.0
RELINK = 1.0


class Storm:
    def __init__(self, viewers: int, seconds: float, seed: int) -> None:
        self.rng = random.Random(seed)
        seeded = random.Random(seed + 1)
        self.core = SignalCore(CoreConfig(group_threshold=0, friends_only=False, max_room_size=viewers + 10,
                                          rate=1e6, burst=1e6), random=lambda n: seeded.randbytes(n))
        self.now = 0.0
        self.seconds = seconds
        self.queue: list[tuple[float, int, str, tuple]] = []
        self._seq = 0
        self.linked = {e: True for e in EDGES}
        self.stalled_until = {e: 0.0 for e in EDGES}
        self.renewed = {e: 0.0 for e in EDGES}
        self.on_edge: dict[str, str | None] = {}  # viewer session -> the edge it is connected to
        self.deaths = 0
        self.died: list[tuple[float, str]] = []  # (when, edge) of each death
        self.moved: list[tuple[float, str, str | None]] = []  # (when, from, to) of each room.moved
        self.moves = 0
        self.peak = 0
        self.viewers = viewers

    def at(self, when: float, kind: str, *args) -> None:
        self._seq += 1
        heapq.heappush(self.queue, (when, self._seq, kind, args))

    def load(self, edge: str) -> int:
        return sum(1 for e in self.on_edge.values() if e == edge)

    # --- the adapter's part ---------------------------------------------------------------

    def drain(self) -> None:
        """What the core said: moves to the viewers, probes and deaths to the links."""
        while (out := self.core.poll_transmit()) is not None:
            message = json.loads(out.text)
            if message["type"] == "room.moved" and out.session_id in self.on_edge:  # a viewer (not the owner)
                self.moves += 1
                self.moved.append((self.now, message["payload"]["previous"], message["payload"]["call_server"]))
                self.on_edge[out.session_id] = None  # leaves its edge, offers to the new one
                self.at(self.now + RECONNECT, "connected", out.session_id, message["payload"]["call_server"])
        while (event := self.core.poll_event()) is not None:
            kind = type(event).__name__
            if kind == "CallServerSuspect":
                self.at(max(self.now, self.stalled_until[event.name]) + 0.01, "pong", event.name, event.probe)
            elif kind == "CallServerDown":
                self.deaths += 1
                self.died.append((self.now, event.name))
                if self.linked.get(event.name):
                    self.linked[event.name] = False
                    self.at(max(self.now, self.stalled_until[event.name]) + RELINK, "relink", event.name)

    def timeout(self) -> None:
        deadline = self.core.next_deadline()
        if deadline is not None and deadline <= self.now:
            self.core.handle_timeout(self.now)
        self.drain()

    # --- the run --------------------------------------------------------------------------

    def setup(self) -> None:
        for edge in EDGES:
            self.core.handle_call_server_linked(edge, 0.0)
            self.at(REPORT_EVERY, "report", edge)
        self.read_records()
        owner = self.core.handle_connect("owner", 0.0, friends=set(), blocked=set())
        self.send(owner, "room.create", {})
        room_id = [m for m in (json.loads(o.text) for o in self.transmits()) if m["type"] == "ack"][0]["payload"]["room_id"]
        for n in range(self.viewers):
            user = f"viewer{n}"
            sid = self.core.handle_connect(user, 0.0, friends=set(), blocked=set())
            self.send(owner, "room.invite", {"room_id": room_id, "to": user})
            self.send(sid, "room.join", {"room_id": room_id, "region": "eu"})
            ack = [json.loads(o.text) for o in self.transmits() if o.session_id == sid and '"ack"' in o.text][-1]
            self.on_edge[sid] = ack["payload"]["call_server"]
            self.read_records()
        while self.core.poll_event() is not None:
            pass
        for second in range(int(self.seconds)):
            self.at(second + 0.999, "starve")
        for stall in range(15, int(self.seconds), 15):
            self.at(float(stall), "own-stall", 2.5)
        self.at(1.0, "read-records")

    def transmits(self):
        while (out := self.core.poll_transmit()) is not None:
            yield out

    def send(self, sid: str, kind: str, payload: dict) -> None:
        self._seq += 1
        self.core.handle_text(sid, json.dumps({"v": 1, "type": kind, "id": f"m{self._seq}", "payload": payload}),
                              self.now)

    def read_records(self) -> None:
        self.core.handle_edges([ServerRecord(e, "edge", "eu", f"ws://{e}/", self.load(e), 120) for e in EDGES
                                if self.now - self.renewed[e] < RECORD_TTL])

    def run(self) -> dict:
        self.setup()
        while self.queue and self.queue[0][0] <= self.seconds:
            when, _, kind, args = heapq.heappop(self.queue)
            deadline = self.core.next_deadline()
            if deadline is not None and deadline < when:  # the core's own timer fires first
                self.now = deadline
                self.timeout()
            self.now = max(self.now, when)
            getattr(self, "on_" + kind.replace("-", "_"))(*args)
            self.timeout()
            self.peak = max(self.peak, max(self.load(e) for e in EDGES))
        return {"deaths": self.deaths, "viewer_moves": self.moves, "peak_viewers_on_one_edge": self.peak,
                "viewers_on_an_edge_at_end": sum(1 for e in self.on_edge.values() if e is not None),
                "edges_linked_at_end": sum(self.linked.values()), "slowest_emptying_s": self.slowest_emptying(),
                "most_moved_onto_one_edge_in_1s": self.most_moved_in_a_second()}

    def slowest_emptying(self) -> float:
        """The longest from an edge's death to the last viewer moved off it for that death."""
        emptied: dict[tuple[float, str], float] = {}
        for when, previous, _ in self.moved:
            death = max(((t, e) for t, e in self.died if e == previous and t <= when), default=None)
            if death is not None:
                emptied[death] = when - death[0]
        return round(max(emptied.values(), default=0.0), 2)

    def most_moved_in_a_second(self) -> int:
        """The most ``room.moved`` naming one edge within any second (from one move's time on)."""
        times = [(to, when) for when, _, to in self.moved if to is not None]
        return max((sum(1 for to2, t in times if to2 == to and start <= t < start + 1.0) for to, start in times),
                   default=0)

    # --- events ---------------------------------------------------------------------------

    def on_report(self, edge: str) -> None:
        self.at(self.now + REPORT_EVERY, "report", edge)
        if self.now < self.stalled_until[edge] or not self.linked[edge]:
            return
        self.renewed[edge] = self.now
        self.core.handle_call_server_load(edge, {"participants": self.load(edge), "rooms": 1, "tracks": 2,
                                                 "packets_per_second": 100.0 * self.load(edge)}, self.now)

    def on_read_records(self) -> None:
        self.read_records()
        self.at(self.now + REPORT_EVERY, "read-records")

    def on_starve(self) -> None:
        for edge in EDGES:
            chance = (self.load(edge) - 90) / 60
            if self.now >= self.stalled_until[edge] and self.rng.random() < chance:
                self.stalled_until[edge] = self.now + self.rng.uniform(2.0, 5.0)

    def on_pong(self, edge: str, probe: int) -> None:
        if self.linked[edge] and hasattr(self.core, "handle_call_server_pong"):
            self.core.handle_call_server_pong(edge, probe, self.now)

    def on_relink(self, edge: str) -> None:
        self.linked[edge] = True
        self.core.handle_call_server_linked(edge, self.now)

    def on_connected(self, sid: str, edge: str | None) -> None:
        self.on_edge[sid] = edge if edge is None or self.linked.get(edge) else None

    def on_own_stall(self, seconds: float) -> None:
        """Signaling's loop is held up: time passes with no input; then the timer runs first."""
        self.now += seconds
        if hasattr(self.core, "handle_loop_stall"):
            self.core.handle_loop_stall(seconds, self.now)
        self.timeout()
        for edge in EDGES:  # the reports that waited in the sockets, read after the check
            if self.now >= self.stalled_until[edge] and self.linked[edge]:
                self.renewed[edge] = self.now
                self.core.handle_call_server_load(edge, {"participants": self.load(edge), "rooms": 1, "tracks": 2,
                                                         "packets_per_second": 0.0}, self.now)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    for seed in range(args.seeds):
        print(json.dumps({"seed": seed, **Storm(args.viewers, args.seconds, seed).run()}))


if __name__ == "__main__":
    main()
