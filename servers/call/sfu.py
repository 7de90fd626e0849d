"""A room on the call server from the command line: one peer connection to it, renegotiated when the room moves.

The messages are docs/signaling.md's "Media through the call server": the
session sends one offer with ``room.media`` (its tracks, and ``slots``
receive-only sections of each kind), the call server's answer comes back
as ``room.media`` with what each slot carries, later changes as
``room.slots``. When signaling moves the room to another call server (its
server died: ``room.moved``), the old peer connection is dropped and a new
one offers to the new server: publishing again, subscribing again through
the new slots. Each move is logged with how long media took to come back
from every other participant.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from netcore.media.synthetic import read_frame_number
from netcore.peer.connection import ConnectionState, Description, PeerConnection
from netcore.peer.tracks import RemoteTrack
from servers.signal.client import ServerMessage, SignalingClient, SignalingError

from .call import CallOptions, Console, peer_configuration
from .media import LocalMedia
from .report import totals

__all__ = ["DEFAULT_SLOTS", "CallServerSession"]

DEFAULT_SLOTS = 4  # receive sections of each kind: the others of a room of five
RETRY_OFFER = 0.5  # seconds between offers while the room's call server is not linked


@dataclass
class _Publisher:
    """What arrived from one other participant (over every peer connection of the session)."""

    user: str
    video_frames: int = 0
    audio_frames: int = 0
    numbers: list[int] = field(default_factory=list)  # video frame numbers of the current connection
    in_order: bool = True
    since_move: int = 0  # video frames on the current connection
    heights: dict[int, int] = field(default_factory=dict)  # decoded video frames by height (the layer shown)


@dataclass
class _Move:
    previous: str | None
    call_server: str | None
    reason: str
    at: float
    resumed_after: float | None = None  # seconds until video from every other participant again


class CallServerSession:
    """One logged-in session's media through the room's call server."""

    def __init__(self, client: SignalingClient, options: CallOptions, console: Console, room_id: str,
                 call_server: str | None, participants: dict[str, str], publish: bool, slots: int,
                 ours: set[str] | frozenset[str] = frozenset(), watch: bool = False,
                 max_height: int | None = None, max_fps: float | None = None) -> None:
        self.client = client
        # a viewer of a broadcast (--watch): the publishers are on another call server of the tree, not in
        # this room's signaling; what a slot carries counts under the publisher's session id
        self.watch = watch
        self.options = options
        self.console = console
        self.room_id = room_id
        self.call_server = call_server
        self.participants = dict(participants)  # session id -> user, ourselves excluded
        self.publish = publish
        self.ours = ours  # users of this process that only receive: nothing to wait for from them
        self.slot_count = slots
        self.pc: PeerConnection | None = None
        self.media: LocalMedia | None = None
        self.slots: dict[str, str | None] = {}  # mid -> publisher session id
        self.publishers: dict[str, _Publisher] = {}
        self.moves: list[_Move] = []
        self.connected = False
        self.frames_sent = 0
        self._awaiting_answer = False
        self._retry_at: float | None = None
        self._closing: set[asyncio.Task] = set()
        # --max-height: each video track we are given is asked for at most this many lines (room.quality),
        # as a page showing it small would; once per (publisher, track)
        self.max_height = max_height
        self.max_fps = max_fps  # --max-fps: and at most this many frames a second (the same request)
        self._quality_asked: set[tuple[str, str]] = set()

    @property
    def user(self) -> str:
        return self.options.user

    # -- the peer connection -----------------------------------------------------------

    async def start(self) -> None:
        """Make a peer connection and offer it to the room's call server."""
        self.pc = PeerConnection(peer_configuration(self.client, self.options))
        self.pc.on("track", self._on_track)
        if self.publish:
            self.media = LocalMedia(self.options.media)
            self.media.add_to(self.pc)
        for _ in range(self.slot_count):
            self.pc.add_transceiver("video", "recvonly")
            self.pc.add_transceiver("audio", "recvonly")
        self.slots = {}
        await self.pc.set_local_description(self.pc.create_offer())
        await self._offer()

    async def _offer(self) -> None:
        assert self.pc is not None and self.pc.local_description is not None
        self._awaiting_answer = True
        try:
            await self.client.request("room.media", {"room_id": self.room_id, "sdp": self.pc.local_description.sdp})
            self._retry_at = None
        except SignalingError as exc:  # its call server is not linked (yet): offer again shortly
            self._awaiting_answer = False
            self._retry_at = asyncio.get_running_loop().time() + RETRY_OFFER
            self.console.progress(f"{self.user}: the call server did not take our offer ({exc.reason}); retrying")

    def _drop(self) -> None:
        """Let go of the current peer connection (closed in the background: its server may be gone)."""
        pc, media = self.pc, self.media
        self.pc, self.media = None, None
        self._awaiting_answer = False
        self._retry_at = None
        if pc is not None:
            self.frames_sent += _video_frames_sent(pc)
            task = asyncio.ensure_future(pc.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        if media is not None:
            media.close()

    # -- what arrives --------------------------------------------------------------------

    def _on_track(self, track: RemoteTrack) -> None:
        pc = self.pc

        def sink(frame) -> None:
            if self.pc is not pc:
                return  # a frame of a connection already dropped
            publisher = self._publisher(self.slots.get(track.mid))
            if publisher is None:
                return
            if track.kind == "audio":
                publisher.audio_frames += 1
                return
            publisher.video_frames += 1
            publisher.since_move += 1
            publisher.heights[frame.height] = publisher.heights.get(frame.height, 0) + 1
            number = read_frame_number(frame)
            if number is not None:
                if publisher.numbers and number <= publisher.numbers[-1]:
                    publisher.in_order = False
                if len(publisher.numbers) < 100_000:
                    publisher.numbers.append(number)
            if publisher.since_move == 1:
                self.console.progress(f"{self.user}: receiving {publisher.user} through {self.call_server}"
                                      f" (frame {number})")
                self._check_resumed()

        track.on_frame(sink)

    def _publisher(self, session_id: str | None) -> _Publisher | None:
        if session_id is None or (session_id not in self.participants and not self.watch):
            return None
        publisher = self.publishers.get(session_id)
        if publisher is None:
            publisher = self.publishers[session_id] = _Publisher(self.participants.get(session_id, session_id))
        return publisher

    def _check_resumed(self) -> None:
        if not self.moves or self.moves[-1].resumed_after is not None:
            return
        expected = [sid for sid, user in self.participants.items() if user not in self.ours]
        if self.watch:  # a broadcast's viewer: the publishers it was receiving (not members of this room)
            expected = list(self.publishers)
        if all(self._publisher(sid).since_move > 0 for sid in expected):  # type: ignore[union-attr]
            move = self.moves[-1]
            move.resumed_after = asyncio.get_running_loop().time() - move.at
            self.console.progress(f"{self.user}: media resumed from all {len(expected)} others "
                                  f"through {self.call_server} {move.resumed_after:.2f} s after the move")

    async def handle(self, message: ServerMessage) -> None:
        """A room message for this session (the caller filtered the room id)."""
        p = message.payload
        if message.type == "room.media":
            if "error" in p:
                self.console.progress(f"{self.user}: the call server refused our offer: {p['error']}")
                self._awaiting_answer = False
            elif self.pc is not None and self._awaiting_answer:
                self._awaiting_answer = False
                self._set_slots(p.get("slots") or [])
                await self.pc.set_remote_description(Description(str(p["sdp"]), "answer"))
                await self._ask_quality(p.get("slots") or [])
        elif message.type == "room.slots":
            self._set_slots(p.get("slots") or [])
            await self._ask_quality(p.get("slots") or [])
        elif message.type == "room.joined":
            self.participants[str(p["session_id"])] = str(p["user"])
        elif message.type == "room.left":
            self.participants.pop(str(p.get("session_id")), None)
        elif message.type == "room.moved":
            await self.moved(p.get("call_server"), p.get("previous"), str(p.get("reason", "")))

    def _set_slots(self, slots: list[dict[str, Any]]) -> None:
        self.slots = {str(s["mid"]): (None if s.get("publisher") is None else str(s["publisher"])) for s in slots}

    async def _ask_quality(self, slots: list[dict[str, Any]]) -> None:
        """With ``max_height`` or ``max_fps``: ``room.quality`` for each video track in ``slots`` not asked for
        yet."""
        if self.max_height is None and self.max_fps is None:
            return
        limits = {k: v for k, v in (("max_height", self.max_height), ("max_fps", self.max_fps)) if v is not None}
        for slot in slots:
            key = (str(slot.get("publisher")), str(slot.get("track")))
            if slot.get("kind") != "video" or slot.get("publisher") is None or key in self._quality_asked:
                continue
            self._quality_asked.add(key)
            try:
                await self.client.request("room.quality", {"room_id": self.room_id, "publisher": key[0],
                                                           "track": key[1], **limits})
            except SignalingError as exc:
                self.console.progress(f"{self.user}: room.quality refused ({exc.reason})")

    async def moved(self, call_server: str | None, previous: str | None, reason: str) -> None:
        """The room is on another call server now: a new peer connection there (none: wait for one)."""
        loop = asyncio.get_running_loop()
        self.moves.append(_Move(previous, call_server, reason, loop.time()))
        self.console.progress(f"{self.user}: room moved from call server {previous} to {call_server} ({reason})")
        self._drop()
        for publisher in self.publishers.values():  # what counts now is what comes through the new server
            publisher.numbers = []
            publisher.in_order = True
            publisher.since_move = 0
        self.call_server = call_server
        if call_server is not None:
            await self.start()

    async def tick(self) -> None:
        """Called about every 0.2 s: connection progress, and offers to retry."""
        pc = self.pc
        if pc is not None and not self.connected and pc.connection_state is ConnectionState.CONNECTED:
            self.connected = True
            self.console.progress(f"{self.user}: connected to the call server {self.call_server}")
        if self._retry_at is not None and asyncio.get_running_loop().time() >= self._retry_at:
            await self._offer()

    async def close(self) -> dict[str, Any]:
        """Close the peer connection; the summary of this session."""
        self._drop()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        links = [{"peer": p.user, "connected": self.connected,
                  "received": {"video": {"frames": p.video_frames, "numbers": p.numbers, "in_order": p.in_order,
                                         "heights": p.heights},
                               "audio": {"frames": p.audio_frames}},
                  "sent": {"video_frames": self.frames_sent if self.publish else 0, "audio_frames": 0}}
                 for p in self.publishers.values()]
        moves = [{"previous": m.previous, "call_server": m.call_server, "reason": m.reason,
                  "resumed_after": m.resumed_after} for m in self.moves]
        return {"call_server": self.call_server, "moves": moves, "links": links}


def _video_frames_sent(pc: PeerConnection) -> int:
    try:
        return totals(pc.get_stats()).video_frames_sent
    except Exception:  # noqa: BLE001 - a summary figure only
        return 0
