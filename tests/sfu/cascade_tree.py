"""Call servers linked into a broadcast tree on the simulated network, in virtual time.

Each server is a :class:`~tests.sfu.harness.Room` whose node runs a
:class:`~netcore.sfu.cascade.CascadeCore`; the control channel (the
daemon's WebSocket) is played by :class:`Tree`: what one server's core asks
for reaches the other's after :data:`CONTROL_DELAY`, as the daemon's
messages would (link.open/opened, link.pull/release, link.tracks).
"""

from __future__ import annotations

from netcore.sfu.cascade import (CascadeCore, LoopRefused, PullChanged, TracksChanged, UplinkIdle,
                                 UplinkWanted)
from netcore.testing.nodes import counter_random
from netcore.testing.simnet import Link, Network
from tests.sfu.harness import Room

CONTROL_DELAY = 0.01  # seconds a control message takes between two servers
LINK_PORT = 41000


class Tree:
    """Servers by name; ``upstream[name]``: whom each pulls its rooms from."""

    def __init__(self, seed: int = 1) -> None:
        self.net = Network(seed)
        self.servers: dict[str, Room] = {}
        self.upstream: dict[str, str] = {}
        self.links: dict[tuple[str, str], tuple[str, str]] = {}  # (downstream, room) -> (upstream, link id)
        self.refused: list[tuple[str, str, str]] = []  # (downstream, upstream, reason)
        self.events: list[tuple[str, object]] = []
        self._ports = 0

    def server(self, name: str, ip: str, upstream: str | None = None, first_client: int = 0,
               link: Link | None = None) -> Room:
        room = Room(net=self.net, server=(ip, 40000), first_client=first_client,
                    wrap=lambda core: CascadeCore(core, name, (ip, LINK_PORT), random=counter_random(first_client + 7)))
        if link is not None:
            self.net._links[ip] = link
        self.net.bind((ip, LINK_PORT), room.server)
        room.server.on_event = lambda event, n=name: self._on_event(n, event)
        self.servers[name] = room
        if upstream is not None:
            self.upstream[name] = upstream
        return room

    def cascade(self, name: str) -> CascadeCore:
        return self.servers[name].node_core  # type: ignore[return-value]

    def run(self, seconds: float) -> None:
        self.net.run(until=self.net.now + seconds)

    def later(self, call, *args) -> None:
        self.net.call_at(self.net.now + CONTROL_DELAY, call, *args)

    # -- the control channel ----------------------------------------------------------

    def _on_event(self, name: str, event: object) -> None:
        self.events.append((name, event))
        if isinstance(event, UplinkWanted) and name in self.upstream:
            self.later(self.open, name, self.upstream[name], event.room_id)
        elif isinstance(event, PullChanged) and (name, event.room_id) in self.links:
            up, link_id = self.links[(name, event.room_id)]
            self.later(self._pull, up, link_id, event.track, event.pulled)
        elif isinstance(event, TracksChanged):
            self.later(self._tracks, name, event.room_id)
        elif isinstance(event, UplinkIdle) and (name, event.room_id) in self.links:
            self.later(self.close, name, event.room_id)

    def open(self, down: str, up: str, room_id: str) -> None:
        """``down`` asks ``up`` for the room (link.open) and takes its answer (link.opened)."""
        now = self.net.now
        upstream, downstream = self.servers[up], self.servers[down]
        try:
            payload = self.cascade(up).open_downlink(room_id, down, now)
        except LoopRefused as exc:
            self.refused.append((down, up, str(exc)))
            return
        self.cascade(up).announced(room_id)
        upstream.server.flush()
        self._ports += 1
        local = (downstream.server.addresses[0][0], LINK_PORT + self._ports)
        self.net.bind(local, downstream.server)
        try:
            self.cascade(down).open_uplink(room_id, payload, local, (upstream.server.addresses[0][0], LINK_PORT), now)
        except LoopRefused as exc:
            self.refused.append((down, up, str(exc)))
            self.cascade(up).close_downlink(payload["link"], now)
            upstream.server.flush()
            return
        self.links[(down, room_id)] = (up, payload["link"])
        downstream.server.flush()

    def close(self, down: str, room_id: str) -> None:
        up, link_id = self.links.pop((down, room_id))
        now = self.net.now
        self.cascade(up).close_downlink(link_id, now)
        self.servers[up].server.flush()
        self.cascade(down).close_uplink(room_id, now)
        self.servers[down].server.flush()

    def _pull(self, up: str, link_id: str, track: str, pulled: bool) -> None:
        cascade = self.cascade(up)
        if pulled:
            cascade.pull(link_id, track, self.net.now)
        else:
            cascade.release(link_id, track, self.net.now)
        self.servers[up].server.flush()

    def _tracks(self, up: str, room_id: str) -> None:
        cascade = self.cascade(up)
        description = cascade.description(room_id)
        cascade.announced(room_id)
        for (down, room), (upstream, _) in list(self.links.items()):
            if upstream == up and room == room_id:
                try:
                    self.cascade(down).uplink_tracks(room_id, description, self.net.now)
                except LoopRefused as exc:
                    self.refused.append((down, up, str(exc)))
                    del self.links[(down, room)]
                self.servers[down].server.flush()
