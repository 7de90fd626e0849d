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
