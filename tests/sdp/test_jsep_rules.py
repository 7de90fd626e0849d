"""Rules an answer owes the offer it answers, and offers that are refused:
rtcp-rsize (RFC 5506), extmap-allow-mixed, extmap directions and ids
(RFC 8285), malformed offers, H.264 profiles (RFC 6184 section 8.2.2)."""

from __future__ import annotations

import random as pyrandom

import pytest

from netcore.sdp import Fingerprint, parse
from netcore.sdp.jsep import LocalTransport, MediaIntent, NegotiationError, Negotiator

FP_A = Fingerprint("sha-256", ":".join(["A1"] * 32))
FP_B = Fingerprint("sha-256", ":".join(["B2"] * 32))


def negotiator(fp=FP_A, seed=1, **kw) -> Negotiator:
    rng = pyrandom.Random(seed)
    return Negotiator(LocalTransport((fp,)), random=rng.randbytes, **kw)


def offer_text(intents=(MediaIntent.audio(), MediaIntent.video()), **kw) -> str:
    return str(negotiator(**kw).create_offer(list(intents)))


def edit(text: str, old: str, new: str, count: int = -1) -> str:
    assert old in text, old
    return text.replace(old, new, count)


# ------------------------------------------------------------- rtcp-rsize


def test_rtcp_rsize_answered_only_where_offered():
    text = offer_text()
    audio_end = text.index("m=video")
    text = text[:audio_end].replace("a=rtcp-rsize\r\n", "") + text[audio_end:]
    answer, result = negotiator(FP_B, 2).handle_offer(text, [MediaIntent.audio(), MediaIntent.video()])
    assert not answer.media[0].has("rtcp-rsize")
    assert answer.media[1].has("rtcp-rsize")
    assert [m.rtcp_rsize for m in result.media] == [False, True]


# ---------------------------------------------------- extmap-allow-mixed


def media_level_mixed(text: str) -> str:
    """Move a=extmap-allow-mixed from session level into every RTP section,
    as Firefox writes it."""
    text = edit(text, "a=extmap-allow-mixed\r\n", "", 1)
    return text.replace("a=rtcp-mux\r\n", "a=extmap-allow-mixed\r\na=rtcp-mux\r\n")


@pytest.mark.parametrize("we_mix", [True, False])
def test_extmap_allow_mixed_offered_at_media_level(we_mix):
    text = media_level_mixed(offer_text(extmap_allow_mixed=True))
    assert not parse(text).has("extmap-allow-mixed")
    answer, result = negotiator(FP_B, 2, extmap_allow_mixed=we_mix).handle_offer(
        text, [MediaIntent.audio(), MediaIntent.video()]
    )
    assert not answer.has("extmap-allow-mixed")  # answered where it was offered
    assert [m.has("extmap-allow-mixed") for m in answer.media] == [we_mix, we_mix]
    assert [m.extmap_allow_mixed for m in result.media] == [we_mix, we_mix]
    assert result.extmap_allow_mixed is we_mix


def test_extmap_allow_mixed_answered_at_media_level_negotiates_for_offerer():
    offerer = negotiator(extmap_allow_mixed=True)
    offer = offerer.create_offer([MediaIntent.audio(), MediaIntent.video()])
    answer, _ = negotiator(FP_B, 2, extmap_allow_mixed=True).handle_offer(
        str(offer), [MediaIntent.audio(), MediaIntent.video()]
    )
    result = offerer.handle_answer(media_level_mixed(str(answer)))
    assert [m.extmap_allow_mixed for m in result.media] == [True, True]
    assert result.extmap_allow_mixed


# ----------------------------------------------- header extension direction

RID = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
MID = "urn:ietf:params:rtp-hdrext:sdes:mid"


@pytest.mark.parametrize(
    "offered, wanted, answered",
    [
        ("sendonly", "sendrecv", "recvonly"),
        ("sendonly", "recvonly", "recvonly"),
        ("sendonly", "sendonly", None),  # we would only send: left out
        ("recvonly", "sendrecv", "sendonly"),
        ("recvonly", "recvonly", None),
        ("inactive", "sendrecv", None),
        ("sendrecv", "sendrecv", "sendrecv"),  # kept as the offer wrote it
    ],
)
def test_extmap_direction_answered_with_its_complement(offered, wanted, answered):
    text = offer_text([MediaIntent.video()])
    ext_id = parse(text).media[0].get_all("extmap")[0].id
    assert parse(text).media[0].get_all("extmap")[0].uri == MID
    text = edit(text, f"a=extmap:{ext_id} {MID}", f"a=extmap:{ext_id}/{offered} {MID}")
    answer, result = negotiator(FP_B, 2).handle_offer(
        text, [MediaIntent.video(direction=wanted)]
    )
    found = [e for e in answer.media[0].get_all("extmap") if e.uri == MID]
    directions = dict(result.media[0].extension_directions)
    if answered is None:
        assert found == [] and result.media[0].extension_id(MID) is None
    else:
        assert [e.direction for e in found] == [answered]
        assert directions[ext_id] == answered


def test_answered_extmap_direction_read_by_the_offerer():
    offerer = negotiator()
    offer = offerer.create_offer([MediaIntent.video()])
    answer, _ = negotiator(FP_B, 2).handle_offer(str(offer), [MediaIntent.video()])
    ext_id = answer.media[0].get_all("extmap")[0].id
    uri = answer.media[0].get_all("extmap")[0].uri
    text = edit(str(answer), f"a=extmap:{ext_id} ", f"a=extmap:{ext_id}/recvonly ")
    result = offerer.handle_answer(text)
    assert dict(result.media[0].extension_directions)[ext_id] == "sendonly"
    assert result.media[0].extension_id(uri) == ext_id
