"""Group calls in the signaling core (sans-IO, a part the core owns).

A room is owned by its creator; invited users join; the server decides the
topology: a mesh while the room has at most ``group_threshold`` participants
and is not recorded, the call server after that (one-way, announced with
``room.topology``).  Recording is controlled by the owner and forwarded to
the call server as ``RecordingRequested`` events.

Several call servers may be linked: a room that moves to the call server is
placed on the least loaded live one (:class:`~.placement.Placement`); when
that server dies its rooms are placed on another and every participant gets
``room.moved`` to offer again there. A broadcast's viewer that says its
region is placed on an edge of its own (:class:`~.edges.ViewerEdges`), per
viewer rather than per room, and moved alone when that edge dies.

:class:`Rooms` owns the rooms; it reads sessions and relations from the
:class:`~.directory.Directory`, writes through the :class:`~.outbox.Outbox`,
and asks its :class:`RoomHost` (the core) for the few things that are the
core's: presence, ids, and foreign sessions.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from typing import TYPE_CHECKING, Callable, Protocol

from netcore.sfu.topology import ServerRecord

from .directory import Directory
from .edges import ViewerEdges
from .events import (CallEnded, CallServerDown, CallServerSuspect, CallStarted, MediaLeft, MediaOffered, MediaQualityRequested,
                     RecordingRequested, RoomChanged, RoomMoved, StudioCommanded)
from .outbox import Outbox
from .part import CorePart
from .placement import Load, MoveBudgets, Placement, below_level
from .protocol import ErrorCode, Message
from .session import Session
from .state import Room, Topology

if TYPE_CHECKING:
    from .core import CoreConfig

__all__ = ["RoomHost", "Rooms"]

ENDED_ROOMS_KEPT = 1000  # for a late recording.ready
STUDIO_STARTS_ON_AIR = {"video": {"card": True}, "audio": None}  # the card, no audio (docs/broadcast.md)


def on_air_change(kind: str, payload: dict) -> dict:
    """What a studio command changes of :attr:`Room.on_air` (the call server's own state may lag: a cut
    takes effect at the new source's key frame)."""
    if kind == "studio.cut":
        return {"video": payload["source"]}
    if kind == "studio.card":
        return {"video": {"card": True}}
    if kind == "studio.audio":
        return {"audio": payload.get("source")}
    return {}


class RoomHost(Protocol):
    """What the rooms need from the core that owns them."""

    def update_presence(self, user: str) -> None: ...
    def new_id(self) -> str: ...
    def notify_user(self, user: str, kind: str, payload: dict) -> int: ...
    def add_foreign_session(self, session_id: str, user: str, node: str) -> None: ...
    def drop_foreign(self, session: Session) -> None: ...


class Rooms(CorePart[RoomHost]):
    """Group calls: the rooms owned by this node and the handlers of ``room.*`` messages."""

    def __init__(self, config: CoreConfig, node_id: str, directory: Directory, out: Outbox, host: RoomHost) -> None:
        super().__init__(config, node_id, directory, out, host)
        self._rooms: dict[str, Room] = {}
        self._ended: OrderedDict[str, Room] = OrderedDict()
        self.placement = Placement()
        self.edges = ViewerEdges()
        self.moves = MoveBudgets()  # per server that receives moves
        # Off dead servers, oldest first: ("room", room id, dead server) and ("viewer", session id, dead edge).
        self._moving: deque[tuple[str, str, str]] = deque()
        self._queued: Counter[tuple[str, str]] = Counter()  # (kind, dead server) -> its moves in the queue

    def handlers(self) -> dict[str, Callable[[Session, Message, float], None]]:
        return {
            "room.create": self._on_room_create,
            "room.invite": self._on_room_invite,
            "room.join": self._on_room_join,
            "room.leave": self._on_room_leave,
            "room.signal": self._on_room_signal,
            "room.record": self._on_room_record,
            "room.media": self._on_room_media,
            "room.quality": self._on_room_quality,
            "studio.start": self._on_studio,
            "studio.stop": self._on_studio,
            "studio.cut": self._on_studio,
            "studio.audio": self._on_studio,
            "studio.card": self._on_studio,
        }

    def __len__(self) -> int:
        return len(self._rooms)

    def get(self, room_id: str) -> Room | None:
        return self._rooms.get(room_id)

    def all(self):
        """The open rooms owned here (a view)."""
        return self._rooms.values()

    def leave_all(self, session: Session, now: float, reason: str) -> None:
        """The session leaves every room owned here that it is in."""
        for room_id in list(session.rooms):
            room = self._rooms.get(room_id)
            if room is not None:
                self._leave_room(room, session, now, reason)

    def handle_recording_ready(self, room_id: str, location: str, now: float, users: tuple[str, ...] = (),
                               extra: dict | None = None) -> dict[str, int]:
        """A recording of the room is ready: tell everyone who took part (the room's users if this node
        knows the room, and ``users``, the recorder's list) on their local sessions.

        Returns each user and how many of their sessions here were told (0: none here)."""
        room = self._rooms.get(room_id) or self._ended.get(room_id)
        everyone = set(users) | (room.everyone if room is not None else set())
        payload = {"room_id": room_id, "location": location, **(extra or {})}
        return {user: self._host.notify_user(user, "recording.ready", payload) for user in sorted(everyone)}

    def _member_room(self, session: Session, message: Message) -> Room | None:
        room = self._rooms.get(message.payload["room_id"])
        if room is None or room.room_id not in session.rooms:
            self._out.error(session, message, ErrorCode.NOT_FOUND, "no such room")
            return None
        return room

    def _sfu_room(self, session: Session, message: Message, refusal: str) -> Room | None:
        """The sender's room if it runs through a call server; else answer CONFLICT with ``refusal``."""
        room = self._member_room(session, message)
        if room is not None and room.topology is not Topology.SFU:
            self._out.error(session, message, ErrorCode.CONFLICT, refusal)
            return None
        return room

    def _on_room_create(self, session: Session, message: Message, now: float) -> None:
        if session.rooms:
            return self._out.error(session, message, ErrorCode.CONFLICT, "this session is already in a room")
        media = tuple(message.payload.get("media", ["audio", "video"]))
        room = Room(self._host.new_id(), session.user, media, now, invited={session.user})
        self._rooms[room.room_id] = room
        self._out.emit(CallStarted(room.room_id, "group", session.user, None, media))
        self._join(room, session, message, now)

    def _on_room_invite(self, session: Session, message: Message, now: float) -> None:
        room = self._member_room(session, message)
        if room is None:
            return
        to = message.payload["to"]
        if self.config.friends_only and to not in self._directory.friends_of(session.user):
            return self._out.error(session, message, ErrorCode.FORBIDDEN, "only friends may be invited")
        self._out.ack(session, message, {"room_id": room.room_id})
        if self._directory.blocks(to, session.user) or self._directory.blocks(session.user, to) or to in room.invited:
            return  # silently: a blocked user never reaches the invitee
        room.invited.add(to)
        self._room_changed(room, now)
        invited = {"room_id": room.room_id, "from": session.user, "media": list(room.media)}
        for sid in self._directory.sessions_of(to):  # foreign sessions too: they join through us
            self._out.send(self._directory[sid], "room.invited", invited)

    def _on_room_join(self, session: Session, message: Message, now: float) -> None:
        room = self._rooms.get(message.payload["room_id"])
        if room is None or session.user not in room.invited:
            return self._out.error(session, message, ErrorCode.NOT_FOUND, "no such room")
        if room.room_id in session.rooms:
            return self._out.error(session, message, ErrorCode.CONFLICT, "already in this room")
        if session.rooms:
            return self._out.error(session, message, ErrorCode.CONFLICT, "this session is already in a room")
        if len(room.participants) >= self.config.max_room_size:
            return self._out.error(session, message, ErrorCode.FORBIDDEN, "room is full")
        if len(room.participants) >= self.config.group_threshold and not self._call_server_available():
            return self._out.error(session, message, ErrorCode.FORBIDDEN,
                               "room is full for a mesh and no call server is configured")
        self._join(room, session, message, now)

    def _join(self, room: Room, session: Session, message: Message, now: float) -> None:
        room.participants[session.session_id] = session.user
        room.everyone.add(session.user)
        session.rooms.add(room.room_id)
        # Decide first, so the joiner's answer already names the topology.
        switched = self._update_topology(room, now)
        edge = self._place_viewer(room, session.session_id, message.payload.get("region"), now)
        self._out.ack(session, message, {
            "room_id": room.room_id,
            "owner": room.owner,
            "participants": self._participant_list(room),
            "topology": room.topology,
            "call_server": (edge.name if edge is not None else self._server_name(room))
                           if room.topology is Topology.SFU else None,
            "recording": room.recording,
            **({"edge": {"name": edge.name, "region": edge.region}} if edge is not None else {}),
        })
        joined = {"room_id": room.room_id, "session_id": session.session_id, "user": session.user}
        self._room_broadcast(room, "room.joined", joined, skip=session.session_id)
        if switched:
            self._announce_topology(room, "threshold", skip=session.session_id)
        self._host.update_presence(session.user)
        self._room_changed(room, now)

    def _on_room_leave(self, session: Session, message: Message, now: float) -> None:
        room = self._member_room(session, message)
        if room is None:
            return
        self._out.ack(session, message, {"room_id": room.room_id})
        self._leave_room(room, session, now, "left")

    def _leave_room(self, room: Room, session: Session, now: float, reason: str) -> None:
        del room.participants[session.session_id]
        if room.topology is Topology.SFU:
            self._out.emit(MediaLeft(room.room_id, session.session_id,
                                     call_server=self._media_server(room, session.session_id)))
        self.edges.leave(session.session_id)
        session.rooms.discard(room.room_id)
        left = {"room_id": room.room_id, "session_id": session.session_id, "user": session.user, "reason": reason}
        self._room_broadcast(room, "room.left", left)
        if session.node is not None:  # so its node stops forwarding to us
            self._out.route(session.node, session.session_id, "_left", {"room_id": room.room_id})
            self._host.drop_foreign(session)
        self._host.update_presence(session.user)
        if room.participants:
            self._room_changed(room, now)
        else:
            del self._rooms[room.room_id]
            self.placement.release(room.room_id)
            if self._out.journaling:
                self._out.emit(RoomChanged(room.room_id, None))
            self._ended[room.room_id] = room
            while len(self._ended) > ENDED_ROOMS_KEPT:
                self._ended.popitem(last=False)
            self._out.emit(CallEnded(room.room_id, "group", tuple(sorted(room.everyone)),
                                          room.topology, "empty", now - room.created_at, True))
            if room.recording:
                self._out.emit(RecordingRequested(room.room_id, "stop", session.user, room.call_server))

    def _on_room_signal(self, session: Session, message: Message, now: float) -> None:
        """Mesh signaling between two participants of the same room."""
        room = self._member_room(session, message)
        if room is None:
            return
        kind = message.payload["kind"]
        needed = "candidate" if kind == "candidate" else "sdp"
        if needed not in message.payload:
            return self._out.error(session, message, ErrorCode.BAD_REQUEST, f"a {kind} needs field {needed!r}")
        target = message.payload["to"]
        if target not in room.participants or target == session.session_id:
            return self._out.error(session, message, ErrorCode.NOT_FOUND, "no such participant")
        if room.topology is not Topology.MESH:
            return self._out.error(session, message, ErrorCode.CONFLICT, "room uses the call server")
        payload = dict(message.payload)
        payload["to"] = target
        payload["from"] = session.session_id
        payload["from_user"] = session.user
        self._out.send(self._directory[target], "room.signal", payload)
        self._out.ack(session, message)

    def _on_room_media(self, session: Session, message: Message, now: float) -> None:
        """A participant's offer for the call server; the adapter relays it over the service link and acks."""
        room = self._sfu_room(session, message, "room is a mesh: use room.signal")
        if room is None:
            return
        if room.call_server is None:  # switched before any call server linked
            room.call_server = self.placement.place(room.room_id, self._weight, now)
        self._out.emit(MediaOffered(room.room_id, session.session_id, session.user, message.payload["sdp"],
                                    message.id, call_server=self._media_server(room, session.session_id)))

    def _on_room_quality(self, session: Session, message: Message, now: float) -> None:
        """What a participant displays of one track (docs/sfu.md: the layer allocator's maximum height)."""
        room = self._sfu_room(session, message, "room is a mesh: no call server")
        if room is None:
            return
        payload = message.payload
        self._out.emit(MediaQualityRequested(room.room_id, session.session_id, payload["publisher"],
                                             payload["track"], payload.get("max_height"), payload.get("max_fps"),
                                             call_server=self._media_server(room, session.session_id)))
        self._out.ack(session, message, {"room_id": room.room_id})

    def _on_room_record(self, session: Session, message: Message, now: float) -> None:
        room = self._member_room(session, message)
        if room is None:
            return
        if session.user != room.owner:
            return self._out.error(session, message, ErrorCode.FORBIDDEN, "only the room owner controls recording")
        action = message.payload["action"]
        if not self._call_server_available():
            return self._out.error(session, message, ErrorCode.CONFLICT, "no call server to record on")
        if room.recording == (action == "start"):
            return self._out.error(session, message, ErrorCode.CONFLICT, f"recording already {action}ed")
        room.recording = action == "start"
        self._out.ack(session, message, {"room_id": room.room_id, "recording": room.recording})
        if self._update_topology(room, now):
            self._announce_topology(room, "recording")
        self._room_changed(room, now)
        self._out.emit(RecordingRequested(room.room_id, action, session.user, room.call_server))
        self._room_broadcast(room, "room.recording", {"room_id": room.room_id,
                                                      "state": "started" if room.recording else "stopped",
                                                      "by": session.user})

    def _on_studio(self, session: Session, message: Message, now: float) -> None:
        """The operator's ``studio.*`` (docs/broadcast.md, "Input manager"): only the room's owner may; the
        start puts the room on the call server; every command goes to the room's call server; the stop
        takes the program off air (the room stays on the call server) and tells everyone in the room."""
        room = self._member_room(session, message)
        if room is None:
            return
        if session.user != room.owner:
            return self._out.error(session, message, ErrorCode.FORBIDDEN, "only the room's operator (its owner) "
                                   "controls the studio")
        if not self._call_server_available():
            return self._out.error(session, message, ErrorCode.CONFLICT, "no call server for a studio")
        if message.type == "studio.start":
            if not room.studio:
                room.on_air = dict(STUDIO_STARTS_ON_AIR)
            room.studio = True
            if self._update_topology(room, now):
                self._announce_topology(room, "studio")
        elif not room.studio:
            return self._out.error(session, message, ErrorCode.CONFLICT, "the room is no studio: studio.start first")
        if room.call_server is None:
            room.call_server = self.placement.place(room.room_id, self._weight, now)
        payload = {k: v for k, v in message.payload.items() if k != "room_id"}
        self._out.emit(StudioCommanded(room.room_id, message.type, payload, session.user, room.call_server))
        self._out.ack(session, message, {"room_id": room.room_id})
        if message.type == "studio.stop":
            room.studio, room.on_air = False, {}
            self._room_broadcast(room, "studio.stopped", {"room_id": room.room_id, "by": session.user})
        else:
            room.on_air.update(on_air_change(message.type, message.payload))
        self._room_changed(room, now)

    def _room_changed(self, room: Room, now: float) -> None:
        if not self._out.journaling:
            return  # single node: nobody to hand the room to
        participants = {sid: (user, self._directory[sid].node or self.node_id)
                        for sid, user in room.participants.items()}
        self._out.emit(RoomChanged(room.room_id, {
            "room_id": room.room_id, "owner": room.owner, "media": list(room.media), "age": now - room.created_at,
            "invited": sorted(room.invited), "participants": participants, "everyone": sorted(room.everyone),
            "topology": room.topology, "recording": room.recording, "owner_node": self.node_id,
            "call_server": room.call_server, "studio": dict(room.on_air) if room.studio else None,
            "edges": {sid: [self.edges.region_of(sid), edge] for sid in room.participants
                      if (edge := self.edges.edge_of(sid)) is not None},  # viewers on edges: [region, edge]
        }))

    def adopt(self, snapshot: dict, now: float) -> None:
        """Take over a room from a dead node (see :meth:`_room_changed`)."""
        room_id = snapshot["room_id"]
        if room_id in self._rooms:
            return
        room = Room(room_id, snapshot["owner"], tuple(snapshot["media"]), now - snapshot["age"],
                    set(snapshot["invited"]), {}, set(snapshot["everyone"]), Topology(snapshot["topology"]),
                    snapshot["recording"])
        studio = snapshot.get("studio")  # what is on air stays: the call server goes on making the program
        room.studio, room.on_air = studio is not None, dict(studio or {})
        self._rooms[room_id] = room
        # Its call server stays if it is linked here too; else the first offer places it here.
        server = snapshot.get("call_server")
        if server is not None and self.placement.assign(room_id, server):
            room.call_server = server
        for sid, (region, edge) in snapshot.get("edges", {}).items():  # each viewer stays on its edge
            self.edges.assign(sid, region, edge)
        for sid, (user, node) in snapshot["participants"].items():
            if sid not in self._directory:
                self._host.add_foreign_session(sid, user, node)
            session = self._directory[sid]
            room.participants[sid] = user
            session.rooms.add(room_id)
            session.remote_owned.pop(room_id, None)
            if session.node is not None:
                self._out.route(session.node, sid, "_owner", {"room_id": room_id})
        self._room_changed(room, now)

    def _update_topology(self, room: Room, now: float) -> bool:
        """Mesh up to the threshold and unrecorded; the call server after that.

        The switch is one-way for the life of the room, so that a group
        hovering at the threshold does not renegotiate back and forth.
        Returns whether it switched now.
        """
        if room.topology is Topology.SFU or not self._call_server_available():
            return False
        if len(room.participants) > self.config.group_threshold or room.recording or room.studio:
            room.topology = Topology.SFU
            room.call_server = self.placement.place(room.room_id, self._weight, now)
            return True
        return False

    def _announce_topology(self, room: Room, reason: str, skip: str | None = None) -> None:
        self._room_broadcast(room, "room.topology", {"room_id": room.room_id, "mode": room.topology,
                                                     "call_server": self._server_name(room),
                                                     "reason": reason}, skip=skip)

    # --- call servers: placement and failover ----------------------------------------

    def _call_server_available(self) -> bool:
        """A call server is configured, or at least one is linked."""
        return self.config.call_server is not None or bool(self.placement.servers)

    def _server_name(self, room: Room) -> str | None:
        """What clients are told: the room's call server, else the configured address."""
        return room.call_server or self.config.call_server

    def _media_server(self, room: Room, session_id: str) -> str | None:
        """Where a participant's media goes: its own edge (a placed viewer), else the room's call server."""
        return self.edges.edge_of(session_id) or room.call_server

    def _place_viewer(self, room: Room, session_id: str, region: str | None, now: float,
                      avoid: frozenset[str] = frozenset(), moved: bool = False,
                      among: list[str] | None = None) -> ServerRecord | None:
        """A viewer of a room on the call server that said its region: its edge (None: it uses the room's).
        Only trusted edges are candidates (:meth:`Placement.trusted`), or those of ``among``."""
        if region is None or room.topology is not Topology.SFU:
            return None
        return self.edges.place(session_id, region, self.placement.trusted(now) if among is None else among,
                                now, avoid, moved)

    def _viewer_room(self, session_id: str) -> Room | None:
        """The room owned here that a viewer's session is in."""
        session = self._directory.get(session_id)
        return next((self._rooms[r] for r in session.rooms if r in self._rooms), None) if session else None

    def _move_viewer(self, session_id: str, dead: str, now: float, among: list[str]) -> str | None:
        """A viewer of edge ``dead`` to another edge of its region among ``among`` (or the room's call
        server): where it went (None: nowhere, or it had left)."""
        region = self.edges.region_of(session_id)
        if self.edges.edge_of(session_id) != dead or region is None:
            return None  # it left, or was placed again meanwhile
        self.edges.leave(session_id)
        session, room = self._directory.get(session_id), self._viewer_room(session_id)
        if session is None or room is None:
            return None
        avoid = frozenset({dead})
        edges = self.edges.candidates(region, self.placement.trusted(now), avoid)  # else: the room's server
        self._place_viewer(room, session_id, region, now, avoid, True, [name for name in among if name in edges])
        new = self._media_server(room, session_id)
        self._out.send(session, "room.moved", {"room_id": room.room_id, "call_server": new,
                                               "previous": dead, "reason": "failover"})
        self._out.emit(RoomMoved(room.room_id, dead, new, "failover"))
        self._room_changed(room, now)  # its new edge in the snapshot
        return new

    def _weight(self, room_id: str) -> int:
        room = self._rooms.get(room_id)
        return len(room.participants) if room is not None else 0

    def call_server_linked(self, name: str, now: float) -> None:
        """A call server's link opened: rooms that had none are placed (on it or a less loaded one)."""
        self.placement.link(name, now)
        for room in list(self._rooms.values()):
            if room.topology is Topology.SFU and room.call_server is None:
                self._move(room, "placed", now)

    def call_server_load(self, name: str, load: Load, now: float) -> bool:
        return self.placement.report(name, load, now)

    def call_server_down(self, name: str, reason: str, now: float) -> None:
        """A call server died (``unlinked``: its link closed; ``silent``: no reports through the grace;
        ``unanswered``: silent and its link's ping unanswered): its rooms, then its viewers, join the
        queue of moves, which goes at the :class:`~.placement.MoveBudget`'s pace."""
        if name not in self.placement:
            return
        rooms = self.placement.unlink(name, now)
        self._out.emit(CallServerDown(name, reason, len(rooms)))
        viewers = self.edges.on(name)
        self._moving.extend(("room", room_id, name) for room_id in rooms)
        # after the rooms: a viewer with no edge left goes to its room's new server
        self._moving.extend(("viewer", session_id, name) for session_id in viewers)
        self._queued += Counter({("room", name): len(rooms), ("viewer", name): len(viewers)})  # drops zeros
        self._run_moves(now)

    def _move_weight(self, kind: str, key: str, dead: str) -> int:
        """Participants a queued move sends elsewhere (0: nothing to move any more)."""
        if kind == "viewer":
            return 1 if self.edges.edge_of(key) == dead else 0
        room = self._rooms.get(key)
        if room is None or room.call_server != dead:
            return 0
        return max(1, sum(1 for sid in room.participants if self.edges.edge_of(sid) is None))

    def _move_targets(self, kind: str, key: str, dead: str, now: float) -> list[str]:
        """The servers a queued move may go to: a room, the trusted ones; a viewer, its region's trusted
        edges (any region's when it has none), else its room's call server."""
        trusted = self.placement.trusted(now)
        if kind == "room":
            return trusted
        region = self.edges.region_of(key)
        edges = self.edges.candidates(region, trusted, frozenset({dead})) if region is not None else []
        room = self._viewer_room(key)
        return edges or ([room.call_server] if room is not None and room.call_server is not None else [])

    def _fair_targets(self, kind: str, key: str, dead: str, weight: int, now: float) -> list[str]:
        """Of the servers the queued move may go to, those below the level to which the dead server's queued
        moves of its kind would fill the least loaded of them (:func:`~.placement.below_level`): sending it
        to any of them ends as even as sending each to the least loaded in turn would."""
        targets = self._move_targets(kind, key, dead, now)
        if len(targets) <= 1:
            return targets
        if kind == "room":
            loads = {name: (float(self.placement.projected(self.placement.servers[name], self._weight, now)), 1.0)
                     for name in targets}
        else:
            loads = {r.name: (float(r.load), float(max(1, r.capacity))) for r in self.edges.projected(targets, now)}
        return below_level(loads, weight * self._queued[(kind, dead)])

    def _run_moves(self, now: float) -> None:
        """Make the queued moves the survivors' budgets allow now, each onto the least loaded of the servers
        it may go to, below the level the queue fills them to, whose budget takes it; the rest wait for
        :meth:`next_deadline`."""
        self.moves.keep(self.placement.servers)
        while self._moving:
            kind, key, dead = self._moving[0]
            weight = self._move_weight(kind, key, dead)
            fair = self._fair_targets(kind, key, dead, weight, now) if weight else []
            ready = self.moves.ready(fair, weight, now)
            if fair and not ready:
                return
            self._moving.popleft()
            self._queued[(kind, dead)] -= 1
            if self._queued[(kind, dead)] <= 0:
                del self._queued[(kind, dead)]
            if not weight:
                continue
            if kind == "room":
                to = self._move(self._rooms[key], "failover", now, among=ready)
            else:
                to = self._move_viewer(key, dead, now, among=ready)
            if to is not None and to in ready:
                self.moves.take(to, weight, now)

    @property
    def moves_pending(self) -> int:
        """Moves waiting for the budget (rooms and viewers)."""
        return len(self._moving)

    def check_call_servers(self, now: float) -> None:
        """At :meth:`next_deadline`: the dead are moved off (at the budget's pace); a new suspect's link is
        to be pinged (:class:`~.events.CallServerSuspect`)."""
        probes, dead = self.placement.check(now)
        for name, probe in probes:
            self._out.emit(CallServerSuspect(name, probe))
        for name, reason in dead:
            self.call_server_down(name, reason, now)
        self._run_moves(now)

    def next_deadline(self) -> float | None:
        deadlines = [self.placement.next_deadline()]
        if self._moving:
            kind, key, dead = self._moving[0]
            weight = max(1, self._move_weight(kind, key, dead))
            fair = self._fair_targets(kind, key, dead, weight, self.moves.latest)  # as when it was refused
            deadlines.append(self.moves.ready_at(fair, weight))
        return min((d for d in deadlines if d is not None), default=None)

    def _move(self, room: Room, reason: str, now: float, among: list[str] | None = None) -> str | None:
        """Place the room again (on one of ``among`` if given) and tell every participant to offer to its
        new call server; that server (None: none)."""
        previous = room.call_server
        self.placement.release(room.room_id)
        room.call_server = self.placement.place(room.room_id, self._weight, now, moved=reason == "failover",
                                                among=among)
        if room.call_server is None and previous is None:
            return None  # still nowhere: nothing to tell
        moved = {"room_id": room.room_id, "call_server": room.call_server, "previous": previous, "reason": reason}
        for sid in room.participants:  # a viewer on an edge of its own stays there
            if self.edges.edge_of(sid) is None:
                self._out.send(self._directory[sid], "room.moved", moved)
        self._out.emit(RoomMoved(room.room_id, previous, room.call_server, reason))
        if room.recording and room.call_server is not None:  # the new server records from here on
            self._out.emit(RecordingRequested(room.room_id, "start", room.owner, room.call_server))
        if room.studio and room.call_server is not None:  # and makes the program (the card, until a cut)
            self._out.emit(StudioCommanded(room.room_id, "studio.start", {}, room.owner, room.call_server))
        self._room_changed(room, now)
        return room.call_server

    def _participant_list(self, room: Room) -> list[dict]:
        return [{"session_id": sid, "user": user} for sid, user in room.participants.items()]

    def _room_broadcast(self, room: Room, kind: str, payload: dict, skip: str | None = None) -> None:
        for sid in room.participants:
            if sid != skip:
                self._out.send(self._directory[sid], kind, payload)
