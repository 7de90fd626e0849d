"""One :class:`~netcore.peer.connection.PeerConnection` negotiated over signaling, as the page's ``PeerLink``.

The page (``servers/signal/web/peer.js``) sends three kinds of message per
link: ``offer`` and ``answer`` (an SDP) and ``candidate`` (``{candidate,
sdpMid, sdpMLineIndex}``); a 1-to-1 call carries them as ``call.offer`` /
``call.answer`` / ``call.candidate``, a mesh room as ``room.signal`` with a
``kind``. :class:`PeerLink` does the same for our peer connection, whatever
carries the messages (``send(kind, data)`` is given), so the CLI, tests that
let the page call us, and load tests share it.

Order matters to a browser on the other side: it refuses a candidate that
arrives before the description it belongs to. Our peer connection emits its
first candidates while ``set_local_description`` runs, so they are held and
sent after the description, through one task that sends in order.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from netcore.errors import NetcoreError
from netcore.peer.connection import Description, IceCandidate, PeerConnection
from netcore.sdp.candidate import Candidate

__all__ = ["PeerLink", "call_link", "room_link"]

log = logging.getLogger(__name__)

Send = Callable[[str, Any], Awaitable[None]]


class PeerLink:
    """Signal ``pc`` through ``send(kind, data)`` ("offer"/"answer": SDP text, "candidate": a dict).

    ``on_error(exc)`` is told when a send fails (the signaling connection
    closed, the call ended meanwhile); the link itself keeps going.
    """

    def __init__(self, pc: PeerConnection, send: Send,
                 on_error: Callable[[Exception], None] | None = None) -> None:
        self.pc = pc
        self._send = send
        self._on_error = on_error or (lambda exc: log.debug("signaling send failed: %s", exc))
        self._described = False
        self._held: list[dict[str, Any]] = []
        self._queue: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue()
        self._sender = asyncio.get_running_loop().create_task(self._run())
        self.local_types: dict[str, str] = {}  # "ip:port" -> candidate type, ours
        self.remote_types: dict[str, str] = {}  # the peer's, as signalled
        self.bad_candidates = 0  # remote candidates that did not parse (dropped, counted)
        pc.on("icecandidate", self._on_candidate)

    # -- outgoing ----------------------------------------------------------------------

    def _on_candidate(self, candidate: IceCandidate | None) -> None:
        if candidate is None:
            data: dict[str, Any] = {"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0}  # end of candidates
        else:
            _remember(self.local_types, candidate.candidate)
            data = {"candidate": candidate.candidate}
            if candidate.sdp_mid is not None:
                data["sdpMid"] = candidate.sdp_mid
            if candidate.sdp_mline_index is not None:
                data["sdpMLineIndex"] = candidate.sdp_mline_index
        if self._described:
            self._queue.put_nowait(("candidate", data))
        else:
            self._held.append(data)

    def _described_now(self, kind: str, sdp: str) -> None:
        self._queue.put_nowait((kind, sdp))
        if not self._described:
            self._described = True
            for data in self._held:
                self._queue.put_nowait(("candidate", data))
            self._held.clear()

    async def _run(self) -> None:
        while (item := await self._queue.get()) is not None:
            try:
                await self._send(*item)
            except NetcoreError as exc:
                self._on_error(exc)

    async def offer(self) -> None:
        """Create our offer, set it and send it (the candidates gathered so far follow)."""
        await self.pc.set_local_description(self.pc.create_offer())
        self._described_now("offer", self.pc.local_description.sdp)  # type: ignore[union-attr]

    # -- incoming ----------------------------------------------------------------------

    async def handle_description(self, kind: str, sdp: str) -> None:
        """The peer's ``offer`` (we answer it) or ``answer``."""
        await self.pc.set_remote_description(Description(sdp, kind))
        for line in sdp.splitlines():
            if line.startswith("a=candidate:"):
                _remember(self.remote_types, line[2:])
        if kind == "offer":
            await self.pc.set_local_description(self.pc.create_answer())
            self._described_now("answer", self.pc.local_description.sdp)  # type: ignore[union-attr]

    async def handle_candidate(self, data: dict[str, Any]) -> None:
        """A trickled candidate as the page sends it; an empty one is end-of-candidates."""
        text = str(data.get("candidate", ""))
        try:
            if text:
                _remember(self.remote_types, text)
            await self.pc.add_ice_candidate(IceCandidate(text, data.get("sdpMid"), data.get("sdpMLineIndex")))
        except NetcoreError:
            self.bad_candidates += 1

    # -- path --------------------------------------------------------------------------

    def path(self, stats: dict[str, dict[str, Any]]) -> str | None:
        """"relay" or "direct" for the selected pair in ``stats`` (``get_stats()``); None before one."""
        pair = next((s for s in stats.values() if s.get("type") == "candidate-pair"), None)
        if pair is None:
            return None
        local = self.local_types.get(pair.get("localCandidateId", ""), "")
        remote = self.remote_types.get(pair.get("remoteCandidateId", ""), "")
        return "relay" if "relay" in (local, remote) else "direct"

    async def close(self) -> None:
        """Stop sending (what is queued is dropped) and close the peer connection."""
        self._queue.put_nowait(None)
        self._sender.cancel()
        try:
            await self._sender
        except asyncio.CancelledError:
            pass
        await self.pc.close()


def _remember(types: dict[str, str], text: str) -> None:
    try:
        candidate = Candidate.from_trickle(text)
    except NetcoreError:
        return
    types[f"{candidate.address}:{candidate.port}"] = candidate.type


def call_link(client, call_id: str, pc: PeerConnection, **kwargs: Any) -> PeerLink:
    """A :class:`PeerLink` for 1-to-1 call ``call_id`` on a :class:`~servers.signal.client.SignalingClient`."""
    async def send(kind: str, data: Any) -> None:
        if kind == "candidate":
            await client.send_candidate(call_id, data)
        elif kind == "offer":
            await client.send_offer(call_id, data)
        else:
            await client.send_answer(call_id, data)
    return PeerLink(pc, send, **kwargs)


def room_link(client, room_id: str, session_id: str, pc: PeerConnection, **kwargs: Any) -> PeerLink:
    """A :class:`PeerLink` to session ``session_id`` of mesh room ``room_id`` (``room.signal``)."""
    async def send(kind: str, data: Any) -> None:
        if kind == "candidate":
            await client.room_signal(room_id, session_id, kind, candidate=data)
        else:
            await client.room_signal(room_id, session_id, kind, sdp=data)
    return PeerLink(pc, send, **kwargs)
