"""``netcore-call join`` in a room on the call server: one peer connection to ``netcore-sfu``.

Once signaling says a room uses the call server (the join's answer, or
``room.topology`` when it moves), a session sends one offer with
``room.media`` (docs/signaling.md, "Media through the call server"): its
tracks (published) and ``slots`` receive-only sections of each kind, which
the call server fills with the others' tracks. The answer comes back as
``room.media`` (ICE-lite, the server's candidates in it: no trickle), and
``room.slots`` says which publisher each slot carries. What each slot
decodes is counted on its own, so frame numbers stay one publisher's.
"""

from __future__ import annotations

from typing import Any

from netcore.peer.connection import ConnectionState, Description, PeerConnection

from .media import LocalMedia, Received
from .report import totals

__all__ = ["CallServerLink"]


class CallServerLink:
    """Our session's connection to the call server, and what its slots received."""

    def __init__(self, pc: PeerConnection, media: LocalMedia | None, slots: int) -> None:
        self.pc = pc
        self.media = media
        self.received: dict[str, Received] = {}  # slot mid -> its counters
        self.publishers: dict[str, str | None] = {}  # slot mid -> the session it carries (room.slots)
        self.connected = False
        self.answered = False
        if media is not None:
            for track in (media.audio, media.video):
                if track is not None:
                    pc.add_track(track)
        for _ in range(slots):
            pc.add_transceiver("audio", "recvonly")
            pc.add_transceiver("video", "recvonly")
        pc.on("track", self._on_track)

    def _on_track(self, track) -> None:
        received = self.received.setdefault(track.mid, Received(keep=True))
        received.attach(track)

    async def offer(self) -> str:
        """Our offer's SDP, to send with ``room.media``."""
        await self.pc.set_local_description(self.pc.create_offer())
        assert self.pc.local_description is not None
        return self.pc.local_description.sdp

    async def answer(self, payload: dict[str, Any]) -> None:
        """The call server's ``room.media``: its answer and what the slots carry."""
        await self.pc.set_remote_description(Description(str(payload["sdp"]), "answer"))
        self.answered = True
        self.slots(payload.get("slots") or [])

    def slots(self, slots: list[dict[str, Any]]) -> None:
        for slot in slots:
            self.publishers[str(slot.get("mid"))] = slot.get("publisher")

    def check(self) -> bool:
        """True the first time the connection is up."""
        if not self.connected and self.pc.connection_state is ConnectionState.CONNECTED:
            self.connected = True
            return True
        return False

    async def close(self) -> dict[str, Any]:
        """Close it; its summary, as a mesh link's with ``peer`` "call-server" and one entry per slot."""
        t = totals(self.pc.get_stats())
        summary = {
            "peer": "call-server", "connected": self.connected,
            "slots": [{"mid": mid, "publisher": self.publishers.get(mid), "received": r.summary()}
                      for mid, r in sorted(self.received.items())],
            "sent": {"video_frames": t.video_frames_sent, "audio_frames": t.audio_frames_sent},
        }
        await self.pc.close()
        if self.media is not None:
            self.media.close()
        return summary
