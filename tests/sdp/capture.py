"""Capture real browser descriptions into ``tests/sdp/corpus/``.

    PYTHONPATH=. python3 -m tests.sdp.capture

Starts headless Chromium and Firefox ESR on loopback with fake camera and
microphone, and for each browser writes:

* ``<browser>_offer_av_simulcast_data.sdp``: its offer of audio, video sent
  as three simulcast layers and a data channel (our answer to it must be
  accepted by the browser, which this script checks);
* ``netcore_offer_to_<browser>.sdp`` and ``<browser>_answer_to_netcore.sdp``:
  our offer (audio, simulcast video, data) made by ``corpus_negotiator`` and
  the browser's answer to it, sending its own audio and video.

The corpus tests replay these files without the browsers; the live tests in
``test_browsers.py`` run the same steps against the browsers themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import pathlib
import random
import re
import shutil
import threading
from typing import AsyncIterator, Protocol

from netcore.sdp import Fingerprint
from netcore.sdp.jsep import LocalTransport, NegotiatedSession, Negotiator

from .chromium import Browser, Page
from .firefox import Firefox
from .samples import CORPUS, OUR_ANSWER_INTENTS, OUR_OFFER_INTENTS

FP = Fingerprint("sha-256", ":".join(["5A"] * 32))


def corpus_negotiator(extmap_allow_mixed: bool = True) -> Negotiator:
    """The negotiator the corpus offers were made with (seeded: same output)."""
    seeded = random.Random(5506)
    return Negotiator(
        LocalTransport((FP,)),
        random=seeded.randbytes,
        extmap_allow_mixed=extmap_allow_mixed,
    )


class BrowserPage(Protocol):
    async def navigate(self, url: str) -> None: ...

    async def eval(self, expression: str) -> object: ...


_GATHERED = """
  await new Promise(r => {
    if (pc.iceGatheringState === 'complete') r();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r();
    setTimeout(r, 5000);
  });
"""

OFFER_JS = (
    """
(async () => {
  const pc = new RTCPeerConnection();
  window.pc = pc;
  const stream = await navigator.mediaDevices.getUserMedia({audio: true, video: true});
  pc.addTransceiver(stream.getAudioTracks()[0], {direction: 'sendrecv', streams: [stream]});
  pc.addTransceiver(stream.getVideoTracks()[0], {direction: 'sendrecv', streams: [stream],
    sendEncodings: [{rid: 'q', scaleResolutionDownBy: 4},
                    {rid: 'h', scaleResolutionDownBy: 2}, {rid: 'f'}]});
  pc.createDataChannel('chat');
  await pc.setLocalDescription();
"""
    + _GATHERED
    + """
  return pc.localDescription.sdp;
})()
"""
)

STATE_JS = """
(() => pc.getTransceivers().map(t => ({
  mid: t.mid,
  direction: t.currentDirection,
  send: t.sender.getParameters().codecs.map(c => [c.payloadType, c.mimeType]),
  sendExtensions: t.sender.getParameters().headerExtensions.map(e => [e.id, e.uri]),
  rids: t.sender.getParameters().encodings.map(e => e.rid || null),
  recv: t.receiver.getParameters().codecs.map(c => [c.payloadType, c.mimeType]),
})))()
"""


def answer_js(offer: str) -> str:
    return (
        f"""
(async () => {{
  const pc = new RTCPeerConnection();
  window.pc = pc;
  await pc.setRemoteDescription({{type: 'offer', sdp: {json.dumps(offer)}}});
  const stream = await navigator.mediaDevices.getUserMedia({{audio: true, video: true}});
  for (const t of pc.getTransceivers()) {{
    const track = t.receiver.track.kind === 'audio'
      ? stream.getAudioTracks()[0] : stream.getVideoTracks()[0];
    await t.sender.replaceTrack(track);
    t.sender.setStreams(stream);
    t.direction = 'sendrecv';
  }}
  await pc.setLocalDescription();
"""
        + _GATHERED
        + """
  return pc.localDescription.sdp;
})()
"""
    )


def accept_js(description: str, kind: str) -> str:
    return (
        f"pc.setRemoteDescription({{type: {json.dumps(kind)}, "
        f"sdp: {json.dumps(description)}}}).then(() => {STATE_JS.strip()})"
    )


@contextlib.contextmanager
def served_page() -> object:
    """An empty page on http://127.0.0.1 (a secure context: getUserMedia works)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = b"<!doctype html><title>sdp</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


async def browser_offer(page: BrowserPage) -> tuple[str, NegotiatedSession, list]:
    """The browser's offer, our answer's result, and the browser's state once
    it accepted our answer."""
    offer = await asyncio.wait_for(page.eval(OFFER_JS), 30)
    assert isinstance(offer, str)
    ours = corpus_negotiator()
    answer, result = ours.handle_offer(offer, OUR_ANSWER_INTENTS)
    state = await asyncio.wait_for(page.eval(accept_js(str(answer), "answer")), 30)
    return offer, result, state  # type: ignore[return-value]


async def browser_answer(page: BrowserPage) -> tuple[str, str, NegotiatedSession]:
    """Our offer, the browser's answer to it, and what we made of the answer."""
    ours = corpus_negotiator()
    offer = str(ours.create_offer(OUR_OFFER_INTENTS))
    answer = await asyncio.wait_for(page.eval(answer_js(offer)), 30)
    assert isinstance(answer, str)
    return offer, answer, ours.handle_answer(answer)


@contextlib.asynccontextmanager
async def open_page(name: str, url: str) -> AsyncIterator[BrowserPage]:
    """A fresh page of ``name`` ("chromium" or "firefox") loaded at ``url``."""
    if name == "chromium":
        browser = Browser(shutil.which("chromium") or "chromium")
        try:
            async with Page(browser) as page:
                await page.navigate(url)
                yield page
        finally:
            browser.close()
    else:
        firefox = Firefox(shutil.which("firefox-esr") or "firefox-esr")
        try:
            async with firefox.page() as page:
                await page.navigate(url)
                yield page
        finally:
            firefox.close()


async def version(page: BrowserPage, name: str) -> str:
    agent = str(await page.eval("navigator.userAgent"))
    token = "Chrome" if name == "chromium" else "Firefox"
    found = re.search(token + r"/(\d+)", agent)
    return f"{name}{found.group(1) if found else ''}"


async def capture(name: str) -> list[pathlib.Path]:
    written = []
    with served_page() as url:
        async with open_page(name, url) as page:
            tag = await version(page, name)
            offer, _, _ = await browser_offer(page)
            path = CORPUS / f"{tag}_offer_av_simulcast_data.sdp"
            path.write_bytes(offer.encode())
            written.append(path)
        async with open_page(name, url) as page:
            ours, answer, _ = await browser_answer(page)
            for path, text in (
                (CORPUS / f"netcore_offer_to_{tag}.sdp", ours),
                (CORPUS / f"{tag}_answer_to_netcore.sdp", answer),
            ):
                path.write_bytes(text.encode())
                written.append(path)
    return written


def main() -> None:
    for name in ("chromium", "firefox"):
        for path in asyncio.run(capture(name)):
            print(path)


if __name__ == "__main__":
    main()
