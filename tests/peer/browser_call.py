"""One call between our PeerConnection and a browser page (``test_browsers.py``, both engines).

The page is ``tests/peer/browser_page.py``'s; ``page`` is anything with
``async eval(expression)`` in it (the DevTools or WebDriver BiDi driver).
Each side sends audio and video: ours ``SyntheticCamera`` (whose frame
numbers the page reads back from what the browser decodes) and
``SyntheticMicrophone``, the browser its fake camera and microphone.
Candidates are trickled both ways (the browser's loopback ones only).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

from netcore.ice.gathering import TurnServerConfig
from netcore.media.synthetic import SyntheticCamera, SyntheticMicrophone
from netcore.peer.connection import ConnectionState, Description, PeerConfiguration, PeerConnection
from netcore.peer.tracks import LocalAudioTrack, LocalVideoTrack
from tests.peer.browser_page import BrowserPeer
from tests.peers import netcore_turn_process
from tests.turn.live import free_port_range

FRAMES = 300  # 10 s at 30 fps: outlasts the connection and every check
WANTED = 40  # frames each side must decode


class Counted:
    """What our side decoded from the browser: frames per remote track, and picture sizes."""

    def __init__(self, pc: PeerConnection) -> None:
        self.frames: dict[str, int] = {}
        self.kinds: dict[str, str] = {}
        self.sizes: set[tuple[int, int]] = set()
        pc.on("track", self.on_track)

    def on_track(self, track) -> None:
        self.frames[track.mid] = 0
        self.kinds[track.mid] = track.kind
        track.on_frame(lambda frame, mid=track.mid: self.on_frame(mid, frame))

    def on_frame(self, mid: str, frame) -> None:
        self.frames[mid] += 1
        if self.kinds[mid] == "video":
            self.sizes.add((frame.width, frame.height))

    def of(self, kind: str) -> int:
        """Frames decoded on the remote tracks of ``kind``, the busiest one."""
        return max((n for mid, n in self.frames.items() if self.kinds[mid] == kind), default=0)


async def until(condition: Callable[[], Awaitable[bool]], timeout: float, step: float = 0.1) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await condition():
            return True
        await asyncio.sleep(step)
    return await condition()


def increasing(numbers: list[int]) -> bool:
    return all(b > a for a, b in zip(numbers, numbers[1:]))


@dataclass
class Call:
    """A connected call: both ends, and what the test may read from them."""

    ours: PeerConnection
    browser: BrowserPeer
    got: Counted
    offer: Description
    answer: Description
    log: list[str] = field(default_factory=list)

    async def inbound(self) -> dict[str, list[dict]]:
        """The browser's inbound-rtp stats by kind."""
        out: dict[str, list[dict]] = {"audio": [], "video": []}
        for s in await self.browser.inbound():
            out[s["kind"]].append(s)
        return out

    async def flowing(self, wanted: int = WANTED) -> bool:
        """Both sides decode: the browser ``wanted`` of our video frames, read back, and our audio; we its."""
        inbound = await self.inbound()
        numbers = await self.browser.numbers()
        return (self.got.of("video") >= wanted and self.got.of("audio") >= 50
                and any(s.get("framesDecoded", 0) >= wanted for s in inbound["video"])
                and any(s.get("packetsReceived", 0) >= 50 for s in inbound["audio"])
                and any(len(n) >= wanted for n in numbers.values()))

    def context(self) -> str:
        """What a failure message shows."""
        return "\n".join([self.offer.sdp, self.answer.sdp, str(self.ours.get_stats()),
                          str(self.ours.transport and self.ours.transport.stats), *self.log])


async def connect(page, we_offer: bool, configuration: PeerConfiguration | None = None,
                  browser_configuration: dict[str, Any] | None = None) -> Call:
    """Open the page's peer, make ours, offer from one side, trickle, and wait until we are connected."""
    browser = BrowserPeer(page)
    await browser.start(browser_configuration)
    ours = PeerConnection(configuration)
    got = Counted(ours)
    ours.add_track(LocalAudioTrack(SyntheticMicrophone(), count=FRAMES * 5 // 3))
    ours.add_track(LocalVideoTrack(SyntheticCamera(320, 240, fps=30), count=FRAMES))
    ours.on("icecandidate", lambda c: asyncio.get_running_loop().create_task(browser.add_candidate(c)))
    try:
        offer, answer = await negotiate(ours, browser, we_offer)
        call = Call(ours, browser, got, offer, answer)

        async def connected() -> bool:
            await browser.candidates_to(ours)
            return ours.connection_state is ConnectionState.CONNECTED
        assert await until(connected, 20), call.context()
        return call
    except BaseException:
        await ours.close()
        raise


async def negotiate(ours: PeerConnection, browser: BrowserPeer, we_offer: bool) -> tuple[Description, Description]:
    """One offer/answer exchange between our side and the browser, whichever offers: (offer, answer)."""
    if we_offer:
        offer = ours.create_offer()
        await ours.set_local_description(offer)
        answer = await browser.answer(offer)
        await ours.set_remote_description(answer)
    else:
        offer = await browser.create_offer()
        await ours.set_remote_description(offer)
        answer = ours.create_answer()
        await ours.set_local_description(answer)
        await browser.accept(answer)
    return offer, answer


async def check_media_both_ways(call: Call) -> None:
    """The browser decodes our VP8 and Opus and shows our frames in order; we decode its video and audio;
    audio keeps arriving on both sides; nothing the browser sent is left without a stream."""
    assert await until(call.flowing, 30, 0.25), call.context()
    before = await call.inbound()
    ours_before = call.got.of("audio")
    await asyncio.sleep(1.0)
    after = await call.inbound()
    numbers = await call.browser.numbers()
    context = call.context() + f"\n{after}\n{numbers}"
    assert max(s["framesDecoded"] for s in after["video"]) >= WANTED, context
    (audio_before,), (audio_after,) = before["audio"], after["audio"]
    assert audio_after["packetsReceived"] > audio_before["packetsReceived"], context
    assert audio_after["totalSamplesReceived"] > audio_before["totalSamplesReceived"] > 0, context
    assert call.got.of("audio") > ours_before, context
    shown = max(numbers.values(), key=len)
    assert len(shown) >= WANTED and increasing(shown) and shown[-1] < FRAMES, context
    assert call.got.of("video") >= WANTED, context
    inbound = [s for s in call.ours.get_stats().values() if s["type"] == "inbound-rtp"]
    assert {s["kind"] for s in inbound} == {"audio", "video"}, context
    assert all(s["packetsReceived"] > 0 for s in inbound), context
    # every packet the browser sent found its stream: probe padding and retransmissions on its RTX SSRC too
    assert call.ours.transport.stats.unroutable == 0, context


@contextlib.contextmanager
def turn_server(tmp_path: Path) -> Iterator[tuple[PeerConfiguration, dict[str, Any]]]:
    """``netcore-turn`` on 127.0.0.1 (loopback peers allowed); yields relay-only configurations
    for our side and for the browser's ``RTCPeerConnection``."""
    low, high = free_port_range(40)
    with netcore_turn_process(tmp_path, "--user", "u:p", "--allow-loopback-peers",
                              "--min-port", str(low), "--max-port", str(high)) as (_, port):
        ours = PeerConfiguration(turn_servers=(TurnServerConfig(("127.0.0.1", port), "u", "p"),), relay_only=True)
        theirs = {"iceServers": [{"urls": f"turn:127.0.0.1:{port}", "username": "u", "credential": "p"}],
                  "iceTransportPolicy": "relay"}
        yield ours, theirs


async def check_relayed(call: Call) -> None:
    """Both sides send through the TURN server: their selected pairs are relay to relay."""
    pair = call.ours.transport.ice.sending_pair()
    assert pair is not None and pair.local.candidate.type == "relay", call.context()
    assert await call.browser.selected_pair() == ["relay", "relay"], call.context()


async def check_share_midcall(call: Call, browser_shares: bool) -> None:
    """One side adds a second video track and offers again (JSEP renegotiation on the same transport):
    the other side decodes it while the camera and audio keep flowing."""
    ours, browser = call.ours, call.browser
    camera_before, audio_before = call.got.of("video"), call.got.of("audio")
    inbound_before = await call.inbound()
    if browser_shares:
        await browser.share()
        offer, _ = await negotiate(ours, browser, we_offer=False)

        async def shown() -> bool:
            return call.got.frames.get("2", 0) >= WANTED
    else:
        ours.add_track(LocalVideoTrack(SyntheticCamera(320, 240, fps=30), count=FRAMES))
        offer, _ = await negotiate(ours, browser, we_offer=True)

        async def shown() -> bool:
            return len((await browser.numbers()).get("2", [])) >= WANTED
    call.log.append(f"re-offer:\n{offer.sdp}")
    assert await until(shown, 30, 0.25), call.context() + f"\n{call.got.frames}\n{await browser.numbers()}"
    assert [t.mid for t in ours.transceivers] == ["0", "1", "2"], call.context()
    assert ours.connection_state is ConnectionState.CONNECTED, call.context()
    assert call.got.of("audio") > audio_before and call.got.frames["1"] > camera_before, call.context()
    inbound = await call.inbound()
    camera = {s["trackIdentifier"]: s["framesDecoded"] for s in inbound_before["video"]}
    assert any(s["framesDecoded"] > camera.get(s["trackIdentifier"], 0) for s in inbound["video"]), call.context()
    if not browser_shares:
        shared = (await browser.numbers())["2"]
        assert increasing(shared) and len(shared) >= WANTED, call.context()


SEND_ESTIMATE = """(async () => { const stats = await pc.getStats(); const out = {};
  stats.forEach((s) => {
    if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') out.available = s.availableOutgoingBitrate;
    if (s.type === 'outbound-rtp' && s.kind === 'video') { out.limitation = s.qualityLimitationReason; out.sent = s.bytesSent; }
  });
  return out; })()"""


async def browser_send_estimate(call: Call, seconds: float) -> list[tuple[float, dict]]:
    """The browser's send-side estimate (``availableOutgoingBitrate``) and its video's limitation,
    sampled about once a second for ``seconds`` after its video starts: ``(seconds in, sample)``."""
    loop = asyncio.get_running_loop()

    async def sending() -> bool:
        return (await call.browser.eval(SEND_ESTIMATE)).get("sent", 0) > 0
    assert await until(sending, 20), call.context()
    start = loop.time()
    samples = []
    while (t := loop.time() - start) < seconds:
        samples.append((t, await call.browser.eval(SEND_ESTIMATE)))
        await asyncio.sleep(1.0)
    samples.append((loop.time() - start, await call.browser.eval(SEND_ESTIMATE)))
    return samples
