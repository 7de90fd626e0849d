"""Negotiation against aiortc's RTCPeerConnection as the far side.

aiortc answers our offer, and we answer aiortc's offer; both sides must
agree on codecs, payload types, header extension ids, directions, DTLS and
ICE roles.  aiortc's own state after setRemoteDescription is the referee.
"""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from netcore.sdp import Fingerprint, parse
from netcore.sdp.jsep import LocalTransport, MediaIntent, Negotiator

FP = Fingerprint("sha-256", ":".join(["5A"] * 32))


def negotiator() -> Negotiator:
    return Negotiator(LocalTransport((FP,)))


def aiortc_codecs(transceiver) -> list[tuple[int, str]]:
    return [
        (c.payloadType, c.mimeType.split("/")[1].lower())
        for c in transceiver._codecs
        if not c.mimeType.lower().endswith("/rtx")
    ]


def aiortc_rtx(transceiver) -> dict[int, int]:
    return {
        c.parameters["apt"]: c.payloadType
        for c in transceiver._codecs
        if c.mimeType.lower().endswith("/rtx")
    }


def our_codecs(codecs) -> list[tuple[int, str]]:
    """Negotiated codecs in the form of :func:`aiortc_codecs`."""
    return [(c.payload_type, c.name.lower()) for c in codecs]


def our_rtx(codecs) -> dict[int, int]:
    """Negotiated RTX payload types in the form of :func:`aiortc_rtx`."""
    return {c.payload_type: c.rtx_payload_type for c in codecs}


@pytest.fixture
async def pc():
    peer = RTCPeerConnection()
    yield peer
    await peer.close()


async def test_aiortc_answers_our_offer(pc):
    ours = negotiator()
    offer = ours.create_offer(
        [
            MediaIntent.audio(),
            MediaIntent.video(direction="sendonly"),
            MediaIntent.data(),
        ]
    )
    await pc.setRemoteDescription(RTCSessionDescription(str(offer), "offer"))
    answer = await pc.createAnswer()
    await pc.setLocalDescription(answer)
    result = ours.handle_answer(pc.localDescription.sdp)

    audio_t, video_t = pc.getTransceivers()
    audio, video, data = result.media
    # Codecs and payload types: aiortc keeps the offer's PTs.
    assert our_codecs(audio.send_codecs) == aiortc_codecs(audio_t)
    assert our_codecs(video.send_codecs) == aiortc_codecs(video_t)
    assert our_rtx(video.send_codecs) == aiortc_rtx(video_t)
    # Directions: aiortc has no track, so it receives only.
    assert audio_t.currentDirection == "recvonly" and audio.direction == "sendonly"
    assert video_t.currentDirection == "recvonly" and video.direction == "sendonly"
    assert data.kind == "application" and not data.rejected and data.sctp_port == 5000
    # Header extensions: the ids we offered, for the URIs aiortc knows.
    ids = {uri: i for i, uri in audio.header_extensions}
    assert ids["urn:ietf:params:rtp-hdrext:sdes:mid"] == 1
    assert [(e.id, e.uri) for e in audio_t._headerExtensions] == list(
        audio.header_extensions
    )
    # BUNDLE, DTLS and ICE roles: aiortc answers actpass with active.
    assert result.bundle == ("0", "1", "2")
    assert result.dtls_role == "server"
    assert audio_t.receiver.transport._role == "client"
    assert result.ice_controlling is True
    assert audio_t.receiver.transport.transport.role == "controlled"
    # Its ICE credentials and candidates reach us.
    ice = audio_t.receiver.transport.transport.iceGatherer.getLocalParameters()
    assert (result.remote.ice_ufrag, result.remote.ice_pwd) == (
        ice.usernameFragment,
        ice.password,
    )
    assert result.remote.candidates and result.remote.end_of_candidates
    fps = {
        f.algorithm: f.value
        for f in audio_t.receiver.transport.getLocalParameters().fingerprints
    }
    assert {f.hash_function: f.value for f in result.remote.fingerprints} == fps


async def test_we_answer_aiortc_offer(pc):
    pc.addTransceiver("audio", direction="sendrecv")
    pc.addTransceiver("video", direction="sendonly")
    pc.createDataChannel("chat")
    await pc.setLocalDescription(await pc.createOffer())
    ours = negotiator()
    answer, result = ours.handle_offer(
        pc.localDescription.sdp, [MediaIntent.audio(), MediaIntent.video()]
    )
    await pc.setRemoteDescription(RTCSessionDescription(str(answer), "answer"))

    audio_t, video_t = pc.getTransceivers()
    audio, video, data = result.media
    # Codecs in our preference order with aiortc's payload types.
    assert our_codecs(audio.recv_codecs) == aiortc_codecs(audio_t)
    assert [c.name for c in video.recv_codecs] == ["VP8", "H264"]
    assert our_codecs(video.recv_codecs) == aiortc_codecs(video_t)
    assert our_rtx(video.recv_codecs) == aiortc_rtx(video_t)
    offered = {c.payload_type for c in _offered(pc, 1)}
    assert {c.payload_type for c in video.recv_codecs} <= offered
    # Directions: aiortc sendonly video -> we receive only.
    assert audio.direction == "sendrecv" and audio_t.currentDirection == "sendrecv"
    assert video.direction == "recvonly" and video_t.currentDirection == "sendonly"
    assert [(e.id, e.uri) for e in video_t._headerExtensions] == list(
        video.header_extensions
    )
    assert not data.rejected and pc.sctp is not None
    # DTLS: we answered active, so aiortc is the DTLS server; ICE: offerer controls.
    assert result.dtls_role == "client"
    assert audio_t.receiver.transport._role == "server"
    assert pc.sctp.transport._role == "server"
    assert result.ice_controlling is False
    assert audio_t.receiver.transport.transport.role == "controlling"
    assert result.bundle == ("0", "1", "2")
    remote_ice = audio_t.receiver.transport.transport.getRemoteCandidates
    assert remote_ice is not None


async def test_we_reject_what_aiortc_offers_and_we_cannot_take(pc):
    pc.addTransceiver("audio")
    pc.addTransceiver("video")
    await pc.setLocalDescription(await pc.createOffer())
    ours = negotiator()
    opus_only = MediaIntent.audio(codecs=MediaIntent.audio().all_codecs()[:1])
    answer, result = ours.handle_offer(
        pc.localDescription.sdp, [opus_only, MediaIntent.video(stopped=True)]
    )
    assert parse(str(answer)).media[1].port == 0
    assert result.media[1].rejected and result.bundle == ("0",)
    await pc.setRemoteDescription(RTCSessionDescription(str(answer), "answer"))
    audio_t, video_t = pc.getTransceivers()
    assert aiortc_codecs(audio_t) == [(96, "opus")]
    assert (
        video_t.currentDirection is None
        or video_t.stopped
        or video_t.currentDirection == "inactive"
    )


async def test_renegotiation_with_aiortc_keeps_payload_types(pc):
    ours = negotiator()
    intents = [MediaIntent.audio()]
    offer = ours.create_offer(intents)
    await pc.setRemoteDescription(RTCSessionDescription(str(offer), "offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    first = ours.handle_answer(pc.localDescription.sdp)
    # Re-offer adding video: audio keeps mid and PTs, video gets a new mid.
    intents.append(MediaIntent.video())
    offer2 = ours.create_offer(intents)
    assert offer2.origin.session_version == offer.origin.session_version + 1
    assert offer2.origin.session_id == offer.origin.session_id
    await pc.setRemoteDescription(RTCSessionDescription(str(offer2), "offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    second = ours.handle_answer(pc.localDescription.sdp)
    assert [m.mid for m in second.media] == ["0", "1"]
    assert [c.payload_type for c in second.media[0].send_codecs] == [
        c.payload_type for c in first.media[0].send_codecs
    ]
    audio_t, video_t = pc.getTransceivers()
    assert aiortc_codecs(video_t) == [
        (c.payload_type, c.name.lower()) for c in second.media[1].send_codecs
    ]
    assert second.ice_restart is False


def _offered(pc, index):
    from netcore.sdp.codecs import codecs_of

    return codecs_of(parse(pc.localDescription.sdp).media[index])
