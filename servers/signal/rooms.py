"""Group calls in the signaling core (sans-IO, mixed into SignalCore).

A room is owned by its creator; invited users join; the server decides the
topology: a mesh while the room has at most ``group_threshold`` participants
and is not recorded, the call server after that (one-way, announced with
``room.topology``).  Recording is controlled by the owner and forwarded to
the call server as ``RecordingRequested`` events.
"""

from __future__ import annotations

from .events import CallEnded, CallStarted, RecordingRequested, RoomChanged
from .protocol import ErrorCode, Message
from .session import Session
from .state import Room

__all__ = ["RoomsMixin"]


class RoomsMixin:
    """Room handlers; the state they use lives on SignalCore."""

    def handle_recording_ready(self, room_id: str, location: str, now: float) -> bool:
        """The call server says a recording file exists: tell the room's users."""
        room = self._rooms.get(room_id) or self._ended_rooms.get(room_id)
        if room is None:
            return False
        for user in sorted(room.everyone):
            self.notify_user(user, "recording.ready", {"room_id": room_id, "location": location})
        return True

    def _member_room(self, session: Session, message: Message) -> Room | None:
        room = self._rooms.get(message.payload["room_id"])
        if room is None or room.room_id not in session.rooms:
            self._error(session, message, ErrorCode.NOT_FOUND, "no such room")
            return None
        return room

    def _on_room_create(self, session: Session, message: Message, now: float) -> None:
        if session.rooms:
            return self._error(session, message, ErrorCode.CONFLICT, "this session is already in a room")
        media = tuple(message.payload.get("media", ["audio", "video"]))
        room = Room(self._new_id(), session.user, media, now, invited={session.user})
        self._rooms[room.room_id] = room
        self._events.append(CallStarted(room.room_id, "group", session.user, None, media))
        self._join(room, session, message, now)

    def _on_room_invite(self, session: Session, message: Message, now: float) -> None:
        room = self._member_room(session, message)
        if room is None:
            return
        to = message.payload["to"]
        if self.config.friends_only and to not in self._friends.get(session.user, ()):
            return self._error(session, message, ErrorCode.FORBIDDEN, "only friends may be invited")
        self._ack(session, message, {"room_id": room.room_id})
        if self.blocks(to, session.user) or self.blocks(session.user, to) or to in room.invited:
            return  # silently: a blocked user never reaches the invitee
        room.invited.add(to)
        self._room_changed(room, now)
        invited = {"room_id": room.room_id, "from": session.user, "media": list(room.media)}
        for sid in self._user_sessions.get(to, ()):  # foreign sessions too: they join through us
            self._send(self._sessions[sid], "room.invited", invited)

    def _on_room_join(self, session: Session, message: Message, now: float) -> None:
        room = self._rooms.get(message.payload["room_id"])
        if room is None or session.user not in room.invited:
            return self._error(session, message, ErrorCode.NOT_FOUND, "no such room")
        if room.room_id in session.rooms:
            return self._error(session, message, ErrorCode.CONFLICT, "already in this room")
        if session.rooms:
            return self._error(session, message, ErrorCode.CONFLICT, "this session is already in a room")
        if len(room.participants) >= self.config.max_room_size:
            return self._error(session, message, ErrorCode.FORBIDDEN, "room is full")
        if len(room.participants) >= self.config.group_threshold and self.config.call_server is None:
            return self._error(session, message, ErrorCode.FORBIDDEN,
                               "room is full for a mesh and no call server is configured")
        self._join(room, session, message, now)

    def _join(self, room: Room, session: Session, message: Message, now: float) -> None:
        room.participants[session.session_id] = session.user
        room.everyone.add(session.user)
        session.rooms.add(room.room_id)
        # Decide first, so the joiner's answer already names the topology.
        switched = self._update_topology(room)
        self._ack(session, message, {
            "room_id": room.room_id,
            "owner": room.owner,
            "participants": self._participant_list(room),
            "topology": room.topology,
            "call_server": self.config.call_server if room.topology == "sfu" else None,
            "recording": room.recording,
        })
        joined = {"room_id": room.room_id, "session_id": session.session_id, "user": session.user}
        self._room_broadcast(room, "room.joined", joined, skip=session.session_id)
        if switched:
            self._announce_topology(room, "threshold", skip=session.session_id)
        self._update_presence(session.user)
        self._room_changed(room, now)

    def _on_room_leave(self, session: Session, message: Message, now: float) -> None:
        room = self._member_room(session, message)
        if room is None:
            return
        self._ack(session, message, {"room_id": room.room_id})
        self._leave_room(room, session, now, "left")

    def _leave_room(self, room: Room, session: Session, now: float, reason: str) -> None:
        del room.participants[session.session_id]
        session.rooms.discard(room.room_id)
        left = {"room_id": room.room_id, "session_id": session.session_id, "user": session.user, "reason": reason}
        self._room_broadcast(room, "room.left", left)
        if session.node is not None:  # so its node stops forwarding to us
            self._routes.append((session.node, session.session_id, "_left", {"room_id": room.room_id}, None))
            self._drop_foreign(session)
        self._update_presence(session.user)
        if room.participants:
            self._room_changed(room, now)
        else:
            del self._rooms[room.room_id]
            if self._journal is not None:
                self._events.append(RoomChanged(room.room_id, None))
            self._ended_rooms[room.room_id] = room
            while len(self._ended_rooms) > 1000:
                self._ended_rooms.popitem(last=False)
            self._events.append(CallEnded(room.room_id, "group", tuple(sorted(room.everyone)),
                                          room.topology, "empty", now - room.created_at, True))
            if room.recording:
                self._events.append(RecordingRequested(room.room_id, "stop", session.user))

    def _on_room_signal(self, session: Session, message: Message, now: float) -> None:
        """Mesh signaling between two participants of the same room."""
        room = self._member_room(session, message)
        if room is None:
            return
        target = message.payload["to"]
        if target not in room.participants or target == session.session_id:
            return self._error(session, message, ErrorCode.NOT_FOUND, "no such participant")
        if room.topology != "mesh":
            return self._error(session, message, ErrorCode.CONFLICT, "room uses the call server")
        payload = dict(message.payload)
        payload["to"] = target
        payload["from"] = session.session_id
        payload["from_user"] = session.user
        self._send(self._sessions[target], "room.signal", payload)
        self._ack(session, message)

    def _on_room_record(self, session: Session, message: Message, now: float) -> None:
        room = self._member_room(session, message)
        if room is None:
            return
        if session.user != room.owner:
            return self._error(session, message, ErrorCode.FORBIDDEN, "only the room owner controls recording")
        action = message.payload["action"]
        if self.config.call_server is None:
            return self._error(session, message, ErrorCode.CONFLICT, "no call server to record on")
        if room.recording == (action == "start"):
            return self._error(session, message, ErrorCode.CONFLICT, f"recording already {action}ed")
        room.recording = action == "start"
        self._ack(session, message, {"room_id": room.room_id, "recording": room.recording})
        if self._update_topology(room):
            self._announce_topology(room, "recording")
        self._room_changed(room, now)
        self._events.append(RecordingRequested(room.room_id, action, session.user))
        self._room_broadcast(room, "room.recording", {"room_id": room.room_id,
                                                      "state": "started" if room.recording else "stopped",
                                                      "by": session.user})

    def _room_changed(self, room: Room, now: float) -> None:
        if self._journal is None:
            return  # single node: nobody to hand the room to
        participants = {sid: (user, self._sessions[sid].node or self.node_id)
                        for sid, user in room.participants.items()}
        self._events.append(RoomChanged(room.room_id, {
            "room_id": room.room_id, "owner": room.owner, "media": list(room.media), "age": now - room.created_at,
            "invited": sorted(room.invited), "participants": participants, "everyone": sorted(room.everyone),
            "topology": room.topology, "recording": room.recording, "owner_node": self.node_id,
        }))

    def adopt_room(self, snapshot: dict, now: float) -> None:
        """Take over a room from a dead node (see :meth:`_room_changed`)."""
        room_id = snapshot["room_id"]
        if room_id in self._rooms:
            return
        room = Room(room_id, snapshot["owner"], tuple(snapshot["media"]), now - snapshot["age"],
                    set(snapshot["invited"]), {}, set(snapshot["everyone"]), snapshot["topology"],
                    snapshot["recording"])
        self._rooms[room_id] = room
        for sid, (user, node) in snapshot["participants"].items():
            if sid not in self._sessions:
                self.add_foreign_session(sid, user, node)
            session = self._sessions[sid]
            room.participants[sid] = user
            session.rooms.add(room_id)
            session.remote_owned.pop(room_id, None)
            if session.node is not None:
                self._routes.append((session.node, sid, "_owner", {"room_id": room_id}, None))
        self._room_changed(room, now)

    def _update_topology(self, room: Room) -> bool:
        """Mesh up to the threshold and unrecorded; the call server after that.

        The switch is one-way for the life of the room, so that a group
        hovering at the threshold does not renegotiate back and forth.
        Returns whether it switched now.
        """
        if room.topology == "sfu" or self.config.call_server is None:
            return False
        if len(room.participants) > self.config.group_threshold or room.recording:
            room.topology = "sfu"
            return True
        return False

    def _announce_topology(self, room: Room, reason: str, skip: str | None = None) -> None:
        self._room_broadcast(room, "room.topology", {"room_id": room.room_id, "mode": room.topology,
                                                     "call_server": self.config.call_server,
                                                     "reason": reason}, skip=skip)

    def _participant_list(self, room: Room) -> list[dict]:
        return [{"session_id": sid, "user": user} for sid, user in room.participants.items()]

    def _room_broadcast(self, room: Room, kind: str, payload: dict, skip: str | None = None) -> None:
        for sid in room.participants:
            if sid != skip:
                self._send(self._sessions[sid], kind, payload)
