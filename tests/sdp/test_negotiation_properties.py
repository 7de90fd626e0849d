"""Properties of offer/answer over generated intents, and every corpus
description answered without anything but our own errors escaping."""

from __future__ import annotations

import random as pyrandom

import pytest
from dataclasses import replace

from hypothesis import given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from netcore.errors import ParseError
from netcore.sdp import Fingerprint, parse
from netcore.sdp.codecs import AUDIO_CODECS, VIDEO_CODECS
from netcore.sdp.jsep import LocalTransport, MediaIntent, Negotiator
from netcore.sdp.limits import Limits

from .samples import CORPUS, load

MIRROR = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}
directions = st.sampled_from(list(MIRROR))
limits = st.builds(
    lambda bitrate, size, framerate: Limits(
        bitrate, *(size or (None, None)), framerate
    ),
    st.one_of(st.none(), st.integers(10_000, 10_000_000)),
    st.one_of(st.none(), st.tuples(st.integers(160, 3840), st.integers(120, 2160))),
    st.one_of(st.none(), st.integers(1, 60).map(float)),
)


def intent(kind, direction, codec_mask, simulcast, stopped):
    if kind == "application":
        return MediaIntent.data(stopped=stopped)
    pool = AUDIO_CODECS if kind == "audio" else VIDEO_CODECS
    codecs = tuple(c for i, c in enumerate(pool) if codec_mask >> i & 1) or pool[:1]
    return MediaIntent(
        kind,
        direction,
        codecs=codecs,
        simulcast=("q", "h", "f") if simulcast and kind == "video" else (),
        stopped=stopped,
    )


intents = st.builds(
    intent,
    st.sampled_from(["audio", "video", "application"]),
    directions,
    st.integers(0, 7),
    st.booleans(),
    st.booleans(),
)


def seeded(seed):
    rng = pyrandom.Random(seed)
    return lambda n: bytes(rng.getrandbits(8) for _ in range(n))


@settings(max_examples=60)
@given(
    st.lists(intents, min_size=1, max_size=4),
    st.lists(intents, max_size=4),
    limits,
    limits,
    st.sampled_from(["active", "passive"]),
)
def test_both_sides_agree(offer_intents, answer_intents, limits_a, limits_b, setup):
    a = Negotiator(
        LocalTransport((Fingerprint("sha-256", "AA:BB"),)),
        limits=limits_a,
        random=seeded(1),
    )
    b = Negotiator(
        LocalTransport((Fingerprint("sha-256", "CC:DD"),), answer_setup=setup),
        limits=limits_b,
        random=seeded(2),
    )
    offer = a.create_offer(offer_intents)
    assert str(parse(str(offer))) == str(offer)
    answer, rb = b.handle_offer(str(offer), answer_intents)
    assert str(parse(str(answer))) == str(answer)
    ra = a.handle_answer(str(answer))
    assert [m.mid for m in ra.media] == [m.mid for m in rb.media]
    assert {ra.dtls_role, rb.dtls_role} == {"client", "server"}
    assert ra.ice_controlling and not rb.ice_controlling
    assert ra.bundle == rb.bundle
    for ma, mb in zip(ra.media, rb.media):
        assert ma.rejected == mb.rejected
        if ma.rejected:
            assert ma.mid not in ra.bundle
            continue
        assert ma.direction == MIRROR[mb.direction]
        assert [c.payload_type for c in ma.send_codecs] == [
            c.payload_type for c in mb.recv_codecs
        ]
        assert [c.payload_type for c in ma.recv_codecs] == [
            c.payload_type for c in mb.send_codecs
        ]
        assert [c.rtx_payload_type for c in ma.send_codecs] == [
            c.rtx_payload_type for c in mb.recv_codecs
        ]
        assert ma.header_extensions == mb.header_extensions
        assert ma.send_rids == mb.recv_rids
        if ma.kind == "application":
            continue
        la, lb = ma.limits, mb.limits
        assert (la.max_bitrate, la.max_width, la.max_height, la.max_framerate) == (
            lb.max_bitrate,
            lb.max_width,
            lb.max_height,
            lb.max_framerate,
        )
        checks = [(la.max_bitrate, limits_a.max_bitrate, limits_b.max_bitrate)]
        if ma.kind == "video":
            checks.append((la.max_width, limits_a.max_width, limits_b.max_width))
            checks.append(
                (la.max_framerate, limits_a.max_framerate, limits_b.max_framerate)
            )
        else:
            assert la.max_width is None and la.max_framerate is None
        for value, x, y in checks:
            stated = [v for v in (x, y) if v is not None]
            assert value == (min(stated) if stated else None)


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.sdp")), ids=lambda p: p.stem)
def test_every_corpus_description_can_be_answered(path):
    n = Negotiator(LocalTransport((Fingerprint("sha-256", "AA:BB"),)))
    answer, result = n.handle_offer(
        path.read_bytes(), [MediaIntent.audio(), MediaIntent.video()]
    )
    assert len(result.media) == len(parse(path.read_bytes()).media)
    assert str(parse(str(answer))) == str(answer)


line_edits = st.sampled_from(
    [
        "a=setup:active",
        "a=setup:holdconn",
        "a=group:BUNDLE 9",
        "a=ice-lite",
        "a=simulcast:send x",
        "a=rid:x send pt=abc",
        "a=fmtp:96 apt=zz",
        "a=rtpmap:97 rtx/90000",
        "a=fmtp:102 profile-level-id=zz",
        "a=imageattr:96 recv [x=1,y=2]",
        "b=AS:0",
        "a=inactive",
        "a=mid:1",
        "a=extmap:1 urn:x",
        "m=video 0 UDP/TLS/RTP/SAVPF 96",
        "a=content:slides",
        "a=msid:-",
        "m=video 9 UDP/TLS/RTP/SAVPF \u00b2 96",
        "a=fmtp:96 max-fr=\u00b2;max-fs=\u0663",
        "a=rid:q send pt",
        "a=fmtp:97 apt=\u00b2",
        "a=rtpmap:96 VP8/90000",
        "a=simulcast:recv q;h",
        "a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
        "a=setup:passive",
        "a=rtcp-mux",
    ]
)


@settings(max_examples=150)
@given(st.lists(st.tuples(st.integers(0, 170), line_edits), max_size=6))
def test_edited_offers_give_an_answer_or_our_error(edits):
    lines = load("chrome_offer_simulcast.sdp").split("\r\n")
    for at, text in edits:
        lines.insert(min(at, len(lines) - 1) or 1, text)
    n = Negotiator(LocalTransport((Fingerprint("sha-256", "AA:BB"),)))
    try:
        n.handle_offer(
            "\r\n".join(lines),
            [MediaIntent.audio(), MediaIntent.video(simulcast=("x",))],
        )
    except ParseError:
        pass


@settings(max_examples=150)
@given(
    st.lists(st.tuples(st.integers(0, 120), line_edits), max_size=6), st.integers(0, 3)
)
def test_edited_answers_give_a_result_or_our_error(edits, drop):
    a = Negotiator(LocalTransport((Fingerprint("sha-256", "AA:BB"),)), random=seeded(5))
    b = Negotiator(LocalTransport((Fingerprint("sha-256", "CC:DD"),)), random=seeded(6))
    offer = a.create_offer(
        [
            MediaIntent.audio(),
            MediaIntent.video(simulcast=("q", "h")),
            MediaIntent.data(),
        ]
    )
    answer, _ = b.handle_offer(str(offer), [MediaIntent.audio(), MediaIntent.video()])
    lines = str(answer).split("\r\n")
    for at, text in edits:
        lines.insert(min(at, len(lines) - 1) or 1, text)
    if drop:
        lines = [line for i, line in enumerate(lines) if i % 17 != drop or i < 4]
    try:
        result = a.handle_answer("\r\n".join(lines))
    except ParseError:
        return
    assert len(result.media) == 3


def check_agreement(offerer, answerer):
    """Both results of the last exchange describe the same session."""
    assert [m.mid for m in offerer.media] == [m.mid for m in answerer.media]
    assert offerer.bundle == answerer.bundle
    assert {offerer.dtls_role, answerer.dtls_role} == {"client", "server"}
    assert offerer.ice_controlling != answerer.ice_controlling
    assert offerer.ice_restart == answerer.ice_restart
    assert (offerer.remote.ice_ufrag, answerer.remote.ice_ufrag) == (
        answerer.local_ice_ufrag,
        offerer.local_ice_ufrag,
    )
    for mo, ma in zip(offerer.media, answerer.media, strict=True):
        assert mo.rejected == ma.rejected
        if mo.rejected:
            continue
        assert mo.direction == MIRROR[ma.direction]
        assert [c.payload_type for c in mo.send_codecs] == [
            c.payload_type for c in ma.recv_codecs
        ]
        assert mo.header_extensions == ma.header_extensions


class Renegotiation(RuleBasedStateMachine):
    """Either side re-offers, adds and stops sections and restarts ICE; every
    exchange must leave both sides agreeing and keep mids, PTs and ids."""

    def __init__(self) -> None:
        super().__init__()
        self.sides = [
            Negotiator(
                LocalTransport((Fingerprint("sha-256", "AA:BB"),)), random=seeded(7)
            ),
            Negotiator(
                LocalTransport((Fingerprint("sha-256", "CC:DD"),)), random=seeded(8)
            ),
        ]
        self.intents: list[MediaIntent] = [MediaIntent.audio()]
        self.payload_types: dict[str, list[int]] = {}
        self.extension_ids: dict[str, int] = {}
        self.exchanged = False

    @rule(kind=st.sampled_from(["audio", "video", "application"]), direction=directions)
    def add_section(self, kind, direction):
        if len(self.intents) < 6:
            if kind == "application":
                self.intents.append(MediaIntent.data())
            else:
                self.intents.append(MediaIntent(kind, direction))

    @rule(index=st.integers(0, 5))
    def stop_section(self, index):
        if index < len(self.intents):
            self.intents[index] = replace(self.intents[index], stopped=True)

    @rule(which=st.integers(0, 1), restart=st.booleans())
    def exchange(self, which, restart):
        if not self.intents:
            return
        offerer, answerer = self.sides[which], self.sides[1 - which]
        intents = list(self.intents)
        if len(intents) < len(offerer._mids):  # the other side added sections
            return
        offer = offerer.create_offer(intents, ice_restart=restart)
        answer, result_b = answerer.handle_offer(str(offer), intents)
        result_a = offerer.handle_answer(str(answer))
        check_agreement(result_a, result_b)
        if restart and self.exchanged:
            assert result_a.ice_restart and result_b.ice_restart
        self.exchanged = True
        for media in result_a.media:
            if media.rejected or media.kind == "application":
                continue
            pts = [c.payload_type for c in media.send_codecs]
            # RFC 8829 section 5.2.2: a PT once agreed keeps its codec
            before = self.payload_types.setdefault(media.mid, pts)
            assert [p for p in pts if p in before] == [p for p in before if p in pts]
            for ext_id, uri in media.header_extensions:
                assert self.extension_ids.setdefault(uri, ext_id) == ext_id


TestRenegotiation = Renegotiation.TestCase
TestRenegotiation.settings = settings(max_examples=120, stateful_step_count=15)
