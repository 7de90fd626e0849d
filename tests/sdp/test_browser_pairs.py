"""Every browser offer in the corpus answered by us, and every browser answer
to our offer negotiated by us, replayed from the captured files.

The answers we write are checked against the rules a browser's offer puts on
them: rtcp-rsize only where offered (RFC 5506 section 5), extmap-allow-mixed
answered where offered (RFC 8285 section 6), header extension directions
complementary to the offer's (RFC 8285 section 7), ids only those offered and
usable.
"""

from __future__ import annotations

import pytest

from netcore.sdp import MediaSection, SessionDescription, parse
from netcore.sdp.jsep import NegotiatedSession

from .capture import corpus_negotiator
from .samples import OUR_ANSWER_INTENTS, OUR_OFFER_INTENTS, load

BROWSER_OFFERS = [
    "chromium156_offer_av_simulcast_data.sdp",
    "firefox153_offer_av_simulcast_data.sdp",
    "chromium156_offer_live.sdp",
    "chrome_offer_simulcast.sdp",
    "firefox_offer_simulcast.sdp",
    "safari_offer.sdp",
    "aiortc_offer.sdp",
]
BROWSER_ANSWERS = [
    ("netcore_offer_to_chromium156.sdp", "chromium156_answer_to_netcore.sdp"),
    ("netcore_offer_to_firefox153.sdp", "firefox153_answer_to_netcore.sdp"),
]

# RFC 8285 section 7: the answer's direction for an offered one.
COMPLEMENT = {
    "sendonly": {"recvonly", "inactive"},
    "recvonly": {"sendonly", "inactive"},
    "sendrecv": {"sendrecv", "sendonly", "recvonly", "inactive"},
    "inactive": {"inactive"},
}


def mixed_allowed(desc: SessionDescription, section: MediaSection) -> bool:
    return desc.has("extmap-allow-mixed") or section.has("extmap-allow-mixed")


def check_answer(offer: SessionDescription, answer: SessionDescription) -> None:
    """What any answer to ``offer`` must respect."""
    assert len(answer.media) == len(offer.media)
    for offered, answered in zip(offer.media, answer.media):
        assert answered.mid == offered.mid
        if answered.port == 0:
            continue
        # RFC 5506 section 5
        if answered.has("rtcp-rsize"):
            assert offered.has("rtcp-rsize"), f"rtcp-rsize not offered in {offered.mid}"
        offered_ext = {e.id: e for e in offered.get_all("extmap")}
        mixed = mixed_allowed(answer, answered)
        for ext in answered.get_all("extmap"):
            theirs = offered_ext.get(ext.id)
            assert theirs is not None and theirs.uri == ext.uri
            # RFC 8285 section 7
            assert (ext.direction or "sendrecv") in COMPLEMENT[
                theirs.direction or "sendrecv"
            ], f"{ext} answers {theirs}"
            # RFC 8285 section 6: 1-14 one-byte; 1-255 with mixed headers
            assert 1 <= ext.id <= (255 if mixed else 14) and ext.id != 15
        if mixed:
            assert mixed_allowed(offer, offered)


@pytest.mark.parametrize("name", BROWSER_OFFERS)
def test_we_answer_browser_offer(name):
    text = load(name)
    offer = parse(text)
    answer, result = corpus_negotiator().handle_offer(text, OUR_ANSWER_INTENTS)
    check_answer(offer, answer)
    again = parse(str(answer))
    assert str(again) == str(answer)
    accepted = [m for m in result.media if not m.rejected]
    assert accepted and result.bundle
    for media in accepted:
        if media.kind in ("audio", "video"):
            assert media.recv_codecs and media.send_codecs
            assert [c.payload_type for c in media.recv_codecs] == [
                c.payload_type for c in media.send_codecs
            ]


def test_we_answer_firefox_offer_live_capture():
    text = load("firefox153_offer_av_simulcast_data.sdp")
    answer, result = corpus_negotiator().handle_offer(text, OUR_ANSWER_INTENTS)
    audio, video, data = result.media
    assert audio.direction == "sendrecv" and [c.name for c in audio.recv_codecs] == [
        "opus",
        "PCMU",
        "PCMA",
    ]
    assert audio.recv_codecs[0].payload_type == 109
    assert video.direction == "recvonly" and video.recv_codecs[0].payload_type == 120
    assert video.recv_codecs[0].rtx_payload_type == 124
    assert video.recv_rids == ("q", "h", "f")
    assert not data.rejected and data.max_message_size == 1073741823
    assert result.bundle == ("0", "1", "2")
    # Firefox states extmap-allow-mixed in each media section only.
    assert not parse(text).has("extmap-allow-mixed")
    assert audio.extmap_allow_mixed and video.extmap_allow_mixed
    assert answer.media[0].has("extmap-allow-mixed")


def test_we_answer_chromium_offer_live_capture():
    text = load("chromium156_offer_av_simulcast_data.sdp")
    answer, result = corpus_negotiator().handle_offer(text, OUR_ANSWER_INTENTS)
    audio, video, data = result.media
    assert audio.direction == "sendrecv" and audio.recv_codecs[0].name == "opus"
    assert video.direction == "recvonly" and video.recv_rids == ("q", "h", "f")
    assert {c.name for c in video.recv_codecs} == {"VP8", "H264"}
    assert not data.rejected
    assert result.extmap_allow_mixed and answer.has("extmap-allow-mixed")


def negotiate_captured(offer_name: str, answer_name: str) -> NegotiatedSession:
    ours = corpus_negotiator()
    offer = ours.create_offer(OUR_OFFER_INTENTS)
    captured = parse(load(offer_name))
    # The answer was made for the captured offer: ours today must agree on
    # what it negotiates (mids, kinds, payload types, extension ids).
    for now, then in zip(offer.media, captured.media):
        assert (now.mid, now.kind, now.formats) == (then.mid, then.kind, then.formats)
        assert now.get_all("extmap") == then.get_all("extmap")
    return ours.handle_answer(load(answer_name))


@pytest.mark.parametrize("names", BROWSER_ANSWERS, ids=lambda n: n[1])
def test_browser_answer_to_our_offer_negotiates(names):
    result = negotiate_captured(*names)
    audio, video, data = result.media
    assert not audio.rejected and not video.rejected and not data.rejected
    assert audio.direction == "sendrecv" and video.direction == "sendrecv"
    assert (
        audio.send_codecs[0].name == "opus" and audio.send_codecs[0].payload_type == 111
    )
    assert video.send_codecs[0].name == "VP8" and video.send_codecs[0].rtx_payload_type
    assert audio.remote_ssrcs and video.remote_ssrcs
    assert result.bundle == ("0", "1", "2")
    assert result.dtls_role == "server" and result.ice_controlling
    answer = parse(load(names[1]))
    for media, section in zip(result.media, answer.media):
        ids = {e.id for e in section.get_all("extmap")}
        assert {i for i, _ in media.header_extensions} == ids
        assert media.rtcp_rsize == section.has("rtcp-rsize")
    assert result.extmap_allow_mixed
