"""Headless Chromium publishing simulcast to real netcore-signal and netcore-sfu processes.

The page (``tests/peer/browser_page.py``'s, driven over DevTools) sends its
fake camera at 1280x720 with three ``sendEncodings`` (q/4, h/2, f): a=rid
and a=simulcast, no SSRC signalled, RIDs on the wire, as the call server
meets browsers. The call server answers ``a=simulcast:recv q;h;f``, learns
all three layers' SSRCs from their RIDs (``sfu_simulcast_layers``, no
``unknown_rid`` drop) and reads VP8 TIDs on all three (Chromium sends each
as L1T3: ``sfu_temporal_layers``), and two of our PeerConnections subscribing (one
through the test's 300 kbit/s relay) decode the browser's video.

Chromium's own send-side estimate towards the call server holds (at least
1 Mbit/s, its three layers not "bandwidth"-limited): it acts on our
transport-wide feedback, now that the feedback names one of its SSRCs. The
unshaped subscriber climbs to the full layer (720 lines) with no SRTP
replay: the RTX copies Chromium probes with are not forwarded again. The
shaped one stays below the full layer (the fake camera's picture is simple:
its half layer fits in 300 kbit/s) until its limit is lifted, then climbs
to it. Around every layer switch either subscriber sees (the decoded
height changing), no two decoded frames are more than 500 ms apart.
"""

from __future__ import annotations

import asyncio

from netcore.peer.connection import Description, PeerConnection
from netcore.sfu import fastpath
from tests.conftest import require_program
from tests.peer.browser_page import serve_page
from tests.sdp.chromium import Browser, Page
from tests.sfu.live import metrics, offer_to_call_server, signal_and_sfu, users_in_a_room
from tests.sfu.test_simulcast_daemon import Shaper, until

MAX_FREEZE = 0.5  # seconds between two decoded frames near a layer switch
NEAR = 2.0  # seconds either side of a switch that count as near it
FULL = 720  # lines: the f layer of the 1280x720 camera

PUBLISH = """(async () => {
  const pc = window.pc = new RTCPeerConnection();
  const stream = await navigator.mediaDevices.getUserMedia({video: {width: 1280, height: 720, frameRate: 15}});
  pc.addTransceiver(stream.getVideoTracks()[0], {direction: 'sendonly', sendEncodings: [
    {rid: 'q', scaleResolutionDownBy: 4}, {rid: 'h', scaleResolutionDownBy: 2}, {rid: 'f'}]});
  await pc.setLocalDescription();
  return pc.localDescription.sdp;
})()"""


OUTBOUND = """(async () => { const out = [];
  (await pc.getStats()).forEach((s) => { if (s.type === 'outbound-rtp') out.push([s.rid, s.frameHeight, s.bytesSent,
    s.framesEncoded, s.qualityLimitationReason, s.targetBitrate, s.active]); });
  return out; })()"""

AVAILABLE = """(async () => { let out = 0;
  (await pc.getStats()).forEach((s) => { if (s.type === 'candidate-pair' && s.nominated) out = s.availableOutgoingBitrate || 0; });
  return out; })()"""


def freeze_near_switches(frames: list[tuple[float, int]]) -> tuple[float, list[tuple[float, int, int, float]]]:
    """The longest time between two decoded frames within NEAR of a layer switch (the decoded height
    changing), and the switches (time, from, to, the longest gap near that one)."""
    switches = [(b[0], a[1], b[1]) for a, b in zip(frames, frames[1:]) if a[1] != b[1]]
    near = [0.0] * len(switches)
    for (t0, _), (t1, _) in zip(frames, frames[1:]):
        for i, (t, _, _) in enumerate(switches):
            if t - NEAR <= t1 and t0 <= t + NEAR:
                near[i] = max(near[i], t1 - t0)
    return max(near, default=0.0), [(t, a, b, gap) for (t, a, b), gap in zip(switches, near)]


class Watcher:
    """A receive-only PeerConnection: (arrival time, height) of every video frame it decodes."""

    def __init__(self) -> None:
        self.pc = PeerConnection()
        self.frames: list[tuple[float, int]] = []
        self.pc.add_transceiver("video", "recvonly")
        loop = asyncio.get_running_loop()
        self.pc.on("track", lambda track: track.on_frame(
            lambda frame: self.frames.append((loop.time(), frame.height))))

    async def join(self, client, room_id: str, sfu_port: int, shaper: Shaper | None = None) -> None:
        await self.pc.set_local_description(self.pc.create_offer())
        answer = (await offer_to_call_server(client, room_id, self.pc.local_description.sdp))["sdp"]
        if shaper is not None:
            answer = answer.replace(f" {sfu_port} typ host", f" {await shaper.start()} typ host")
        await self.pc.set_remote_description(Description(answer, "answer"))


async def scenario(tmp_path, chromium: Browser) -> None:
    async with signal_and_sfu(tmp_path) as env, serve_page() as url, Page(chromium) as page:
        await page.navigate(url)
        room_id, clients = await users_in_a_room(env["signal_port"], ["cr_pub", "cr_wide", "cr_narrow"])
        assert (await clients[0].expect("room.topology", timeout=5))["mode"] == "sfu"
        wide, narrow = Watcher(), Watcher()
        shaper = Shaper(("127.0.0.1", env["sfu_media"]), 300_000)
        try:
            offer = await page.eval(PUBLISH)
            assert "a=simulcast:send q;h;f" in offer
            answer = await offer_to_call_server(clients[0], room_id, offer)
            assert "a=simulcast:recv q;h;f" in answer["sdp"]
            await page.eval(f"pc.setRemoteDescription({{type: 'answer', sdp: {answer['sdp']!r}}})"
                            ".then(() => true)")
            await wide.join(clients[1], room_id, env["sfu_media"])
            await narrow.join(clients[2], room_id, env["sfu_media"], shaper)
            # the browser's three layers reach the call server and are learnt by their RIDs
            async def layers() -> float:
                return (await asyncio.to_thread(metrics, env["sfu_http"]))["sfu_simulcast_layers"]
            deadline = asyncio.get_running_loop().time() + 30
            while await layers() < 3 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.5)
            assert await layers() == 3, await page.eval(OUTBOUND)
            # both subscribers decode the browser's video
            assert await until(lambda: len(wide.frames) > 60 and len(narrow.frames) > 60, 60), (
                len(wide.frames), len(narrow.frames), await page.eval(OUTBOUND))
            figures = await asyncio.to_thread(metrics, env["sfu_http"])
            assert figures.get('sfu_dropped_total{reason="unknown_rid"}', 0) == 0
            # Chromium sends each VP8 layer as L1T3: the call server reads TIDs on all three
            assert figures["sfu_temporal_layers"] == 3, await page.eval(OUTBOUND)
            # Chromium acts on our transport-wide feedback: its estimate holds and no layer is cut
            # for bandwidth (before, it fell to about 60 kbit/s and stopped h and f)
            assert await page.eval(AVAILABLE) >= 1_000_000, await page.eval(OUTBOUND)
            # the unshaped subscriber climbs to the full layer: the call server forwards none of the
            # RTX copies Chromium probes with (each was an SRTP replay to it, its estimate fell to 30 kbit/s)
            assert await until(lambda: any(h == 720 for _, h in wide.frames[-30:]), 40), (
                sorted({h for _, h in wide.frames}), wide.pc.transport.srtp.stats,
                await asyncio.to_thread(metrics, env["sfu_http"]))
            assert wide.pc.transport.srtp.stats.replayed == 0
            if fastpath.wanted():  # the compiled path forwarded Chromium's layers (NETCORE_SFU_FORWARD=python: not)
                forwarded = await asyncio.to_thread(metrics, env["sfu_http"])
                assert forwarded["sfu_fast_forwarded_packets_total"] > 0, forwarded
            assert all(layer[4] != "bandwidth" for layer in await page.eval(OUTBOUND)), await page.eval(OUTBOUND)
            # the shaped subscriber is below the full layer; lifted, it climbs to it
            assert await until(lambda: all(h < FULL for _, h in narrow.frames[-20:]), 30), (
                freeze_near_switches(narrow.frames)[1], narrow.frames[0][0])
            shaper.bottleneck.capacity = 1e9
            assert await until(lambda: all(h == FULL for _, h in narrow.frames[-20:]), 60), (
                freeze_near_switches(narrow.frames)[1], narrow.frames[0][0])
            await asyncio.sleep(NEAR)  # the frames after the last switch
            for name, watcher in (("wide", wide), ("narrow", narrow)):
                freeze, switches = freeze_near_switches(watcher.frames)
                start = watcher.frames[0][0]
                seen = (f"{name}: switches (s from its first frame, lines from, to, longest gap near it) "
                        f"{[(round(t - start, 1), a, b, round(gap, 3)) for t, a, b, gap in switches]}")
                if watcher is narrow:
                    seen += f"; its link dropped {shaper.bottleneck.dropped} of {shaper.bottleneck.sent} datagrams"
                print(seen)
                assert switches, name
                assert freeze <= MAX_FREEZE, seen
        finally:
            shaper.close()
            for pc in (wide.pc, narrow.pc):
                await pc.close()
            await page.eval("pc.close(), true")


def test_chromium_publishes_three_layers_learnt_by_rid_and_both_subscribers_decode_it(tmp_path):
    chromium = Browser(require_program("chromium"))
    try:
        asyncio.run(scenario(tmp_path, chromium))
    finally:
        chromium.close()
