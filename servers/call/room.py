"""Group calls from the command line: ``join ROOM``, as a publisher or as N subscribers.

A room on the call server (its join answer or a later ``room.topology``
says so) goes through :class:`~.sfu.CallServerSession`: one peer connection
to the call server, made again on ``room.moved``. In a mesh room, the
messages are the page's (``servers/signal/web/room.js``): a joiner
offers to every participant already in the room (``room.signal`` kind
``offer``), the others answer; candidates follow as ``room.signal`` kind
``candidate``. Each pair of sessions has its own peer connection.

``--subscribers N`` runs N receive-only sessions in this one process, each
logged in as its own user (``--user sub`` gives sub1..subN, all with the
same password): they join, offer to receive audio and video from everyone
who was there before them (never to each other: a receive-only pair has
nothing to say) and answer the offers of those who come later, decoding
what arrives. That is the client the call server's load tests drive.

``ROOM`` is a room id, ``new`` (create one, invite ``--invite`` users; its
id is printed as "room ID created") or ``invited`` (wait for an invitation
and join that room). ``join new --record-room`` records the room (it moves
to the call server); ``recording.ready`` is printed and kept in the
summary's ``recordings``, and ``--wait-recording S`` waits up to S seconds
for it after leaving.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from netcore.peer.connection import ConnectionState, PeerConnection
from servers.signal.client import ServerMessage, SignalingClient

from .call import CallOptions, Console, Failure, _off_signals, _on_signals, login, peer_configuration
from .media import LocalMedia, Received
from .report import totals
from .session import PeerLink, room_link
from .sfu import DEFAULT_SLOTS, CallServerSession

__all__ = ["RoomOptions", "run_room"]


@dataclass
class RoomOptions:
    room: str  # a room id, "new" or "invited"
    invite: tuple[str, ...] = ()
    subscribers: int = 0  # 0: one publishing session; N: N receive-only sessions
    slots: int = DEFAULT_SLOTS  # on the call server: receive sections of each kind
    record: bool = False  # with "new": record the room (it moves to the call server)
    wait_recording: float = 0.0  # after leaving: seconds to wait for the room's recording.ready
    watch: bool = False  # receive-only sessions of a broadcast's edge: publishers are not room members
    region: str | None = None  # a broadcast's viewer: signaling places each session on an edge of this region
    max_height: int | None = None  # on the call server: show no more than this many lines of any video (room.quality)
    max_fps: float | None = None  # ... and no more than this many frames a second of it (temporal layers)


@dataclass
class _Link:
    peer: str  # the other participant's user
    link: PeerLink
    received: Received
    media: LocalMedia | None
    connected: bool = False


@dataclass
class _Member:
    """One logged-in session in the room and its links, by the other session's id."""

    options: CallOptions
    client: SignalingClient
    console: Console
    publish: bool
    ours: set[str]  # the users of this process: subscribers do not link to each other
    slots: int = DEFAULT_SLOTS
    watch: bool = False
    max_height: int | None = None
    max_fps: float | None = None
    room_id: str = ""
    links: dict[str, _Link] = field(default_factory=dict)
    finished: list[dict[str, Any]] = field(default_factory=list)  # summaries of links that ended
    participants: dict[str, str] = field(default_factory=dict)  # the others: session id -> user
    sfu: CallServerSession | None = None  # once the room is on the call server
    call_server_summary: dict[str, Any] = field(default_factory=dict)
    mesh_links: list[dict[str, Any]] = field(default_factory=list)  # before the room went to the call server
    recordings: list[dict[str, Any]] = field(default_factory=list)  # recording.ready payloads

    @property
    def user(self) -> str:
        return self.options.user

    def _new_link(self, session_id: str, peer: str) -> _Link:
        pc = PeerConnection(peer_configuration(self.client, self.options))
        received = Received(keep=True)
        pc.on("track", received.attach)
        media = LocalMedia(self.options.media) if self.publish else None
        entry = _Link(peer, room_link(self.client, self.room_id, session_id, pc), received, media)
        self.links[session_id] = entry
        return entry

    async def offer_to(self, session_id: str, peer: str) -> None:
        entry = self._new_link(session_id, peer)
        if entry.media is not None:
            entry.media.add_to(entry.link.pc)
        else:
            for kind in ("audio", "video"):
                entry.link.pc.add_transceiver(kind, "recvonly")
        await entry.link.offer()

    async def to_call_server(self, call_server: str | None) -> None:
        """The room is (now) on the call server: close the mesh links (their summaries kept apart),
        offer to it."""
        while self.links:
            await self._close(self.links.pop(next(iter(self.links))))
        self.mesh_links, self.finished = self.finished, []
        self.console.progress(f"{self.user}: room {self.room_id} is on the call server {call_server}")
        self.sfu = CallServerSession(self.client, self.options, self.console, self.room_id, call_server,
                                     self.participants, self.publish, self.slots, self.ours, self.watch,
                                     max_height=self.max_height, max_fps=self.max_fps)
        if call_server is not None:
            await self.sfu.start()

    async def handle(self, message: ServerMessage) -> None:
        p = message.payload
        if message.type == "recording.ready":  # of any room this user took part in
            self.recordings.append(dict(p))
            self.console.progress(f"{self.user}: recording of room {p.get('room_id')} ready: {p.get('location')}")
            return
        if p.get("room_id") != self.room_id:
            return
        if message.type == "room.joined":
            self.participants[str(p["session_id"])] = str(p["user"])
        elif message.type == "room.left":
            self.participants.pop(str(p.get("session_id")), None)
        if self.sfu is not None:
            await self.sfu.handle(message)
            return
        if message.type == "room.signal":
            sender = str(p.get("from"))
            entry = self.links.get(sender)
            if p.get("kind") == "offer":
                if entry is None:
                    entry = self._new_link(sender, str(p.get("from_user")))
                    if entry.media is not None:
                        entry.media.add_for_offer(entry.link.pc, p["sdp"])
                await entry.link.handle_description("offer", p["sdp"])
            elif entry is not None and p.get("kind") == "answer":
                await entry.link.handle_description("answer", p["sdp"])
            elif entry is not None and p.get("kind") == "candidate":
                await entry.link.handle_candidate(p.get("candidate") or {})
        elif message.type == "room.left":
            entry = self.links.pop(str(p.get("session_id")), None)
            if entry is not None:
                self.console.progress(f"{self.user}: {entry.peer} left")
                await self._close(entry)
        elif message.type == "room.topology":
            await self.to_call_server(p.get("call_server"))

    async def check(self) -> None:
        if self.sfu is not None:
            await self.sfu.tick()
        for entry in self.links.values():
            if not entry.connected and entry.link.pc.connection_state is ConnectionState.CONNECTED:
                entry.connected = True
                self.console.progress(f"{self.user}: connected to {entry.peer}")

    async def _close(self, entry: _Link) -> None:
        """Close one link, keeping its summary."""
        t = totals(entry.link.pc.get_stats())
        self.finished.append({"peer": entry.peer, "connected": entry.connected,
                              "received": entry.received.summary(),
                              "sent": {"video_frames": t.video_frames_sent, "audio_frames": t.audio_frames_sent}})
        await entry.link.close()
        if entry.media is not None:
            entry.media.close()

    async def close(self) -> list[dict[str, Any]]:
        """Close every link; the summaries of all links this session had."""
        while self.links:
            await self._close(self.links.pop(next(iter(self.links))))
        if self.sfu is not None:
            self.call_server_summary = await self.sfu.close()
            self.finished.extend(self.call_server_summary["links"])
        return self.finished

    async def wait_recording(self, seconds: float) -> None:
        """After leaving: wait up to ``seconds`` for this room's recording.ready."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not any(r.get("room_id") == self.room_id for r in self.recordings) and loop.time() < deadline:
            try:
                message = await self.client.receive(timeout=min(0.5, max(0.01, deadline - loop.time())))
            except asyncio.TimeoutError:
                continue
            await self.handle(message)


async def _enter(member: _Member, room: RoomOptions) -> dict[str, Any]:
    client, console = member.client, member.console
    if room.room == "new":
        ack = await client.create_room(member.options.media.kinds or None)
        console.progress(f"room {ack['room_id']} created")
        for user in room.invite:
            await client.invite_to_room(ack["room_id"], user)
        if room.record:
            await client.request("room.record", {"room_id": ack["room_id"], "action": "start"})
            console.progress(f"recording room {ack['room_id']}")
        return ack
    room_id = room.room
    if room_id == "invited":
        console.progress(f"{member.user}: waiting for an invitation")
        try:
            room_id = (await client.wait_for("room.invited", timeout=member.options.wait)).payload["room_id"]
        except asyncio.TimeoutError:
            raise Failure(f"{member.user} was not invited to a room within {member.options.wait:.0f} s") from None
    return await client.join_room(room_id, room.region)


async def _run_member(member: _Member, room: RoomOptions, stop: asyncio.Event) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    ack = await _enter(member, room)
    member.room_id = ack["room_id"]
    member.console.progress(f"{member.user}: joined room {member.room_id} "
                            f"({len(ack['participants'])} participants)")
    mine = member.client.welcome.session_id if member.client.welcome else ""
    member.participants = {p["session_id"]: p["user"] for p in ack["participants"] if p["session_id"] != mine}
    if ack.get("topology") != "mesh":
        await member.to_call_server(ack.get("call_server"))
    else:
        for participant in ack["participants"]:
            if participant["session_id"] != mine and participant["user"] not in member.ours:
                await member.offer_to(participant["session_id"], participant["user"])
    started = loop.time()
    duration = member.options.duration
    try:
        while not stop.is_set() and (duration is None or loop.time() - started < duration):
            try:
                message = await member.client.receive(timeout=0.2)
            except asyncio.TimeoutError:
                message = None
            if message is not None:
                await member.handle(message)
            await member.check()
        try:
            await member.client.leave_room(member.room_id)
        except Exception:  # noqa: BLE001 - leaving is best effort, the summary matters
            pass
    finally:
        links = await member.close()
    if room.wait_recording > 0:
        await member.wait_recording(room.wait_recording)
    summary = {"user": member.user, "room_id": member.room_id, "links": links, "recordings": member.recordings}
    if member.sfu is not None:
        summary.update(call_server=member.call_server_summary["call_server"],
                       moves=member.call_server_summary["moves"], mesh_links=member.mesh_links)
    return summary


async def run_room(options: CallOptions, room: RoomOptions, console: Console) -> dict[str, Any]:
    """Run the publisher, or the subscribers, until ``options.duration`` or a signal; the summary."""
    if room.subscribers:
        users = [f"{options.user}{i}" for i in range(1, room.subscribers + 1)]
    else:
        users = [options.user]
    if room.subscribers and room.room == "new":
        raise Failure("subscribers join an existing room: give its id, or 'invited'")
    LocalMedia(options.media).close()  # a display or file that cannot be opened fails here, once
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    _on_signals(loop, stop)  # SIGINT/SIGTERM: every session hangs up and the summary is written
    members = []
    try:
        for user in users:
            each = CallOptions(**{**options.__dict__, "user": user})
            members.append(_Member(each, await login(each, console), console, publish=not room.subscribers,
                                   ours=set(users) if room.subscribers else set(), slots=room.slots,
                                   watch=room.watch, max_height=room.max_height, max_fps=room.max_fps))
        sessions = await asyncio.gather(*(_run_member(m, room, stop) for m in members))
    finally:
        _off_signals(loop)
        for member in members:
            await member.client.close()
    connected = all(link["connected"] for s in sessions for link in s["links"]) and \
        all(s["links"] for s in sessions)
    for s in sessions:
        for link in s["links"]:
            video = link["received"]["video"]
            console.result(f"{s['user']} <- {link['peer']}: {video['frames']} video frames, "
                           f"{link['received']['audio']['frames']} audio frames; "
                           f"sent {link['sent']['video_frames']} video frames")
    return {"room_id": sessions[0]["room_id"] if sessions else "", "connected": connected, "sessions": sessions}
