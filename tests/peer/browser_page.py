"""The browser side of the browser interop tests: one small page and the server that serves it.

``getUserMedia`` needs a secure context, which ``about:blank`` is not and
``http://127.0.0.1`` is, so the test serves the page itself (plain asyncio,
any path gives the page). The page keeps one ``RTCPeerConnection`` in
``window.pc`` with the browser's fake camera and microphone; the test
drives it with the functions below through the browser's protocol
(``Page.eval``): SDP and candidates go back and forth as JSON values.

For each remote video track the page draws the decoded pictures into a
canvas (``requestVideoFrameCallback``) and reads the frame number that
``netcore.media.synthetic.SyntheticCamera`` draws (``read_frame_number``'s
rule: 24 blocks of a fortieth of the width, 20 bits of number and 4 check
bits), so the test sees which of our frames the browser shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import AsyncIterator

from netcore.peer.connection import Description, IceCandidate, PeerConnection

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>netcore interop</title></head><body>
<script>
window.candidates = []; window.numbers = {}; window.media = [];
function check(n) { let c = 0; for (let s = 0; s < 20; s += 4) c ^= (n >> s) & 15; return c ^ 15; }
function readNumber(canvas, video) {
  const w = video.videoWidth, h = video.videoHeight;
  if (!w || !h) return null;
  canvas.width = w; canvas.height = h;
  const g = canvas.getContext('2d', {willReadFrequently: true});
  g.drawImage(video, 0, 0);
  const block = w / 40, y = Math.floor(1.5 * block);
  const row = g.getImageData(0, y, w, 1).data;
  let word = 0;
  for (let i = 0; i < 24; i++) {
    const x = Math.floor((i + 1.5) * block) * 4;
    word = (word << 1) | (0.299 * row[x] + 0.587 * row[x + 1] + 0.114 * row[x + 2] > 128 ? 1 : 0);
  }
  const number = word >> 4;
  return check(number) === (word & 15) ? number : null;
}
function watch(mid, track) {
  const video = document.createElement('video');
  video.muted = true; video.autoplay = true; video.playsInline = true;
  video.srcObject = new MediaStream([track]);
  document.body.appendChild(video); window.media.push(video);
  const canvas = document.createElement('canvas'), seen = window.numbers[mid] = [];
  const frame = () => { const n = readNumber(canvas, video);
    if (n !== null && n !== seen[seen.length - 1]) seen.push(n);
    video.requestVideoFrameCallback(frame); };
  video.requestVideoFrameCallback(frame);
  video.play().catch(() => {});
}
function play(track) {
  const audio = document.createElement('audio');
  audio.autoplay = true; audio.srcObject = new MediaStream([track]);
  document.body.appendChild(audio); window.media.push(audio);
  audio.play().catch(() => {});
}
async function start(config) {
  const pc = window.pc = new RTCPeerConnection(config);
  pc.onicecandidate = (e) => window.candidates.push(e.candidate ? e.candidate.toJSON() : null);
  pc.ontrack = (e) => e.track.kind === 'video' ? watch(e.transceiver.mid, e.track) : play(e.track);
  const stream = await navigator.mediaDevices.getUserMedia({audio: true, video: true});
  for (const track of stream.getTracks()) pc.addTrack(track, stream);
  return true;
}
async function selectedPair() {
  const stats = await pc.getStats(); let pair = null;
  stats.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId); });
  if (!pair) stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
  return pair && [stats.get(pair.localCandidateId).candidateType, stats.get(pair.remoteCandidateId).candidateType];
}
function share() {
  // a screen share stand-in that needs no capture permission: a canvas that changes every frame
  const canvas = document.createElement('canvas'); canvas.width = 640; canvas.height = 360;
  const g = canvas.getContext('2d'); let n = 0;
  setInterval(() => { g.fillStyle = `hsl(${(n * 7) % 360}, 60%, 50%)`; g.fillRect(0, 0, 640, 360);
    g.fillStyle = '#fff'; g.fillRect((n * 8) % 640, 100, 40, 160); n++; }, 33);
  const stream = canvas.captureStream(30);
  pc.addTrack(stream.getVideoTracks()[0], stream);
  return true;
}
function takeCandidates() { const c = window.candidates; window.candidates = []; return c; }
async function inbound() {
  const out = [];
  (await pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp') out.push(s); });
  return out;
}
</script></body></html>
"""


@contextlib.asynccontextmanager
async def serve_page() -> AsyncIterator[str]:
    """Serve :data:`PAGE` on 127.0.0.1 (a port the OS chose); yields its URL."""

    writers: set[asyncio.StreamWriter] = set()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)  # the browser keeps idle connections open: closed with the server
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            body = PAGE.encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


def on_loopback(candidate: str) -> bool:
    """Is the ``candidate:...`` string's connection address a loopback one (RFC 8839 section 5.1)?"""
    address = candidate.split()[4]
    return address.startswith("127.") or address == "::1"


class BrowserPeer:
    """The page's ``RTCPeerConnection`` seen from the test; ``page`` has ``async eval(expression)``."""

    def __init__(self, page) -> None:
        self.page = page
        self._lock = asyncio.Lock()  # one command at a time on the protocol socket

    async def eval(self, expression: str) -> object:
        async with self._lock:
            return await self.page.eval(expression)

    async def start(self, configuration: dict | None = None) -> None:
        """A new ``RTCPeerConnection(configuration)`` with the fake camera and microphone."""
        await self.eval(f"start({json.dumps(configuration or {})})")

    async def create_offer(self) -> Description:
        sdp = await self.eval("pc.setLocalDescription().then(() => pc.localDescription.sdp)")
        return Description(sdp, "offer")

    async def answer(self, offer: Description) -> Description:
        sdp = await self.eval(
            f"pc.setRemoteDescription({json.dumps({'type': 'offer', 'sdp': offer.sdp})})"
            ".then(() => pc.setLocalDescription()).then(() => pc.localDescription.sdp)")
        return Description(sdp, "answer")

    async def share(self) -> None:
        """Add a second video track (a canvas, standing in for a screen); the caller renegotiates."""
        await self.eval("share()")

    async def accept(self, answer: Description) -> None:
        await self.eval(f"pc.setRemoteDescription({json.dumps({'type': 'answer', 'sdp': answer.sdp})})")

    async def add_candidate(self, candidate: IceCandidate | None) -> None:
        init = {} if candidate is None else {
            "candidate": candidate.candidate, "sdpMid": candidate.sdp_mid, "sdpMLineIndex": candidate.sdp_mline_index}
        await self.eval(f"pc.addIceCandidate({json.dumps(init)})")

    async def candidates_to(self, ours: PeerConnection) -> None:
        """Hand the page's candidates gathered since the last call to ``ours``: loopback ones only
        (the browser gathers on every interface; the tests send to loopback and nowhere else)."""
        for c in await self.eval("takeCandidates()"):
            if c is None or not c.get("candidate"):
                await ours.add_ice_candidate(None)
            elif on_loopback(c["candidate"]):
                await ours.add_ice_candidate(IceCandidate(c["candidate"], c.get("sdpMid"), c.get("sdpMLineIndex")))

    async def inbound(self) -> list[dict]:
        return await self.eval("inbound()")

    async def selected_pair(self) -> list[str] | None:
        """The candidate types (local, remote) of the pair the browser uses, or None."""
        return await self.eval("selectedPair()")

    async def numbers(self) -> dict[str, list[int]]:
        """Frame numbers read from each remote video track (by MID), in the order shown."""
        return await self.eval("window.numbers")
