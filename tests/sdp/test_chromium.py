"""Negotiation against a real Chromium: it offers (audio, simulcast video,
data channel) and takes our answer; it answers our offer.  Chromium's own
RTCRtpSender/Receiver parameters are the referee."""

from __future__ import annotations

import asyncio
import json

import pytest

from netcore.sdp import Fingerprint, parse
from netcore.sdp.jsep import LocalTransport, MediaIntent, Negotiator
from tests.conftest import require_program

from .capture import STATE_JS
from .chromium import Browser, Page
from .samples import OUR_ANSWER_INTENTS

FP = Fingerprint("sha-256", ":".join(["5A"] * 32))

OFFER_JS = """
(async () => {
  const pc = new RTCPeerConnection();
  window.pc = pc;
  // about:blank is no secure context, so no getUserMedia: a canvas and an
  // oscillator stand in for the camera and microphone.
  const canvas = document.createElement('canvas');
  canvas.width = 640; canvas.height = 480;
  canvas.getContext('2d').fillRect(0, 0, 640, 480);
  const video = canvas.captureStream(20).getVideoTracks()[0];
  const audioContext = new AudioContext();
  const destination = audioContext.createMediaStreamDestination();
  audioContext.createOscillator().connect(destination);
  const audio = destination.stream.getAudioTracks()[0];
  const stream = new MediaStream([audio, video]);
  pc.addTransceiver(audio, {direction: 'sendrecv', streams: [stream]});
  pc.addTransceiver(video, {direction: 'sendonly', streams: [stream],
    sendEncodings: [{rid: 'q', scaleResolutionDownBy: 4}, {rid: 'h', scaleResolutionDownBy: 2}, {rid: 'f'}]});
  pc.createDataChannel('chat');
  await pc.setLocalDescription();
  await new Promise(r => { if (pc.iceGatheringState === 'complete') r();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r(); });
  return pc.localDescription.sdp;
})()
"""



@pytest.fixture(scope="module")
def browser():
    b = Browser(require_program("chromium"))
    yield b
    b.close()


def plain(codecs):
    return [[c.payload_type, c.name.lower()] for c in codecs]


def without_rtx(pairs):
    return [
        [pt, mime.split("/")[1].lower()]
        for pt, mime in pairs
        if not mime.lower().endswith("/rtx")
    ]


async def test_we_answer_chromium_simulcast_offer(browser):
    async with Page(browser) as page:
        text = await asyncio.wait_for(page.eval(OFFER_JS), 20)
        offer = parse(text)
        assert str(offer) == text  # a live Chrome offer round trips byte for byte
        assert offer.media[1].get("simulcast").rids("send") == ["q", "h", "f"]
        assert offer.media[0].candidates  # loopback host candidates

        ours = Negotiator(LocalTransport((FP,)))
        answer, result = ours.handle_offer(text, OUR_ANSWER_INTENTS)
        await page.eval(
            f"pc.setRemoteDescription({{type: 'answer', sdp: {json.dumps(str(answer))}}}).then(() => 0)"
        )
        state = await page.eval(STATE_JS)
        audio, video = state
        assert (
            audio["direction"] == "sendrecv" and result.media[0].direction == "sendrecv"
        )
        assert (
            video["direction"] == "sendonly" and result.media[1].direction == "recvonly"
        )
        assert without_rtx(audio["send"]) == plain(result.media[0].recv_codecs)
        assert without_rtx(video["send"]) == plain(result.media[1].recv_codecs)
        assert video["rids"] == ["q", "h", "f"] and result.media[1].recv_rids == (
            "q",
            "h",
            "f",
        )
        assert sorted(map(tuple, video["sendExtensions"])) == sorted(
            result.media[1].header_extensions
        )
        assert result.bundle == ("0", "1", "2")
        assert result.ice_controlling is False and result.dtls_role == "client"


async def test_chromium_answers_our_offer(browser):
    async with Page(browser) as page:
        ours = Negotiator(LocalTransport((FP,)))
        offer = ours.create_offer(
            [
                MediaIntent.audio(),
                MediaIntent.video(simulcast=("q", "h", "f")),
                MediaIntent.screen(),
                MediaIntent.data(),
            ]
        )
        js = f"""
        (async () => {{
          const pc = new RTCPeerConnection();
          window.pc = pc;
          await pc.setRemoteDescription({{type: 'offer', sdp: {json.dumps(str(offer))}}});
          await pc.setLocalDescription();
          return pc.localDescription.sdp;
        }})()
        """
        text = await asyncio.wait_for(page.eval(js), 20)
        answer = parse(text)
        assert str(answer) == text
        result = ours.handle_answer(text)
        state = await page.eval(STATE_JS)
        assert [s["mid"] for s in state] == ["0", "1", "2"]
        for s, m in zip(state, result.media):
            # Chrome has no tracks: it receives only, we send only.
            assert s["direction"] == "recvonly" and m.direction == "sendonly"
            assert without_rtx(s["recv"]) == plain(m.send_codecs)
        # Chrome does not take simulcast it would receive: one stream then.
        simulcast = answer.media[1].get("simulcast")
        assert result.media[1].send_rids == (
            tuple(simulcast.rids("recv")) if simulcast else ()
        )
        # the screen share section keeps its content
        assert result.media[2].content == ("slides",)
        assert result.dtls_role == "server" and answer.media[0].setup == "active"
        assert result.ice_controlling is True
        assert result.bundle == ("0", "1", "2", "3")
