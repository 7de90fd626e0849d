"""Offer/answer cases as a table: codec mismatch, direction matrix, BUNDLE,
DTLS roles, re-offers, ICE restart, simulcast, capability minimums."""

from __future__ import annotations

import itertools
from dataclasses import replace
import random as pyrandom

import pytest

from netcore.errors import UsageError
from netcore.sdp import Candidate, Fingerprint, parse
from netcore.sdp.codecs import H264_BASELINE_PARAMETERS, Codec
from netcore.sdp.h264 import ProfileLevelId
from netcore.sdp.jsep import (
    LocalTransport,
    MediaIntent,
    NegotiationError,
    Negotiator,
    answer_direction,
)
from netcore.sdp.limits import Limits

from .samples import OUR_ANSWER_INTENTS, load

FP_A = Fingerprint("sha-256", ":".join(["A1"] * 32))
FP_B = Fingerprint("sha-256", ":".join(["B2"] * 32))

VP8 = Codec("VP8", 90000, feedback=(("nack", None), ("nack", "pli")))
H264 = Codec("H264", 90000, parameters=H264_BASELINE_PARAMETERS, feedback=(("nack", None), ("ccm", "fir")))
OPUS = Codec("opus", 48000, 2, (("useinbandfec", "1"),))
PCMU = Codec("PCMU", 8000, payload_type=0)


def seeded(seed: int):
    rng = pyrandom.Random(seed)
    return lambda n: bytes(rng.getrandbits(8) for _ in range(n))


def pair(transport_a: dict | None = None, transport_b: dict | None = None, **kw):
    a = Negotiator(
        LocalTransport((FP_A,), **(transport_a or {})),
        random=seeded(1),
        **kw.get("a", {}),
    )
    b = Negotiator(
        LocalTransport((FP_B,), **(transport_b or {})),
        random=seeded(2),
        **kw.get("b", {}),
    )
    return a, b


def exchange(a, b, offer_intents, answer_intents, **offer_kw):
    offer = a.create_offer(offer_intents, **offer_kw)
    answer, result_b = b.handle_offer(str(offer), answer_intents)
    result_a = a.handle_answer(str(answer))
    return parse(str(offer)), parse(str(answer)), result_a, result_b


# --------------------------------------------------------------- directions

SEND_RECV = {
    "sendrecv": (1, 1),
    "sendonly": (1, 0),
    "recvonly": (0, 1),
    "inactive": (0, 0),
}
NAME = {v: k for k, v in SEND_RECV.items()}


@pytest.mark.parametrize(
    "offered, wanted", list(itertools.product(SEND_RECV, SEND_RECV))
)
def test_direction_matrix(offered, wanted):
    # RFC 3264 section 6.1: answerer sends iff offerer receives and it wants to.
    expected = NAME[
        (
            SEND_RECV[offered][1] & SEND_RECV[wanted][0],
            SEND_RECV[offered][0] & SEND_RECV[wanted][1],
        )
    ]
    assert answer_direction(offered, wanted) == expected
    a, b = pair()
    offer, answer, ra, rb = exchange(
        a,
        b,
        [MediaIntent.audio(direction=offered)],
        [MediaIntent.audio(direction=wanted)],
    )
    assert answer.media[0].direction == expected
    assert rb.media[0].direction == expected
    # the offerer sees the mirror image
    mirror = NAME[(SEND_RECV[expected][1], SEND_RECV[expected][0])]
    assert ra.media[0].direction == mirror


@pytest.mark.parametrize(
    "table",
    [
        # (offer direction, answer wish, answer text)
        ("sendrecv", "recvonly", "recvonly"),
        ("sendrecv", "sendonly", "sendonly"),
        ("sendonly", "sendrecv", "recvonly"),
        ("recvonly", "sendrecv", "sendonly"),
        ("recvonly", "recvonly", "inactive"),
        ("inactive", "sendrecv", "inactive"),
    ],
)
def test_direction_examples(table):
    offered, wanted, answered = table
    assert answer_direction(offered, wanted) == answered


# ------------------------------------------------------------------ codecs


def test_codec_intersection_answerer_order_offer_payload_types():
    a, b = pair()
    offer, answer, ra, rb = exchange(
        a,
        b,
        [MediaIntent.video(codecs=(VP8, H264))],
        [MediaIntent.video(codecs=(H264, VP8))],
    )
    offered = {
        c: pt
        for pt, c in (
            (r.payload_type, r.encoding_name) for r in offer.media[0].get_all("rtpmap")
        )
    }
    # answer formats: H.264 first (our preference), PTs as offered
    assert [r.encoding_name for r in answer.media[0].get_all("rtpmap")][0] == "H264"
    assert [c.name for c in rb.media[0].recv_codecs] == ["H264", "VP8"]
    for codec in rb.media[0].recv_codecs:
        assert codec.payload_type == offered[codec.name]
    assert [c.name for c in ra.media[0].send_codecs] == ["H264", "VP8"]
    assert [c.payload_type for c in ra.media[0].send_codecs] == [
        c.payload_type for c in rb.media[0].recv_codecs
    ]
    # RTX follows its codec with the offer's PT
    rtx_offered = {
        f.to_dict()["apt"]: f.format
        for f in offer.media[0].get_all("fmtp")
        if "apt" in f.to_dict()
    }
    for codec in rb.media[0].recv_codecs:
        assert str(codec.rtx_payload_type) == rtx_offered[str(codec.payload_type)]


def test_rtcp_fb_and_extensions_intersected():
    a, b = pair()
    mid_uri = "urn:ietf:params:rtp-hdrext:sdes:mid"
    tcc = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
    offer, answer, ra, rb = exchange(
        a,
        b,
        [MediaIntent.video(codecs=(VP8,), header_extensions=(mid_uri, tcc))],
        [
            MediaIntent.video(
                codecs=(
                    Codec(
                        "VP8", 90000, feedback=(("nack", "pli"), ("goog-remb", None))
                    ),
                ),
                header_extensions=(tcc, "urn:3gpp:video-orientation"),
            )
        ],
    )
    assert rb.media[0].recv_codecs[0].feedback == (("nack", "pli"),)
    assert ra.media[0].send_codecs[0].feedback == (("nack", "pli"),)
    assert [e.uri for e in answer.media[0].get_all("extmap")] == [tcc]
    offered_id = next(e.id for e in offer.media[0].get_all("extmap") if e.uri == tcc)
    assert rb.media[0].header_extensions == ((offered_id, tcc),)
    assert ra.media[0].header_extensions == ((offered_id, tcc),)


def test_no_common_codec_rejects_the_section():
    a, b = pair()
    offer, answer, ra, rb = exchange(
        a,
        b,
        [MediaIntent.audio(codecs=(OPUS,)), MediaIntent.video(codecs=(VP8,))],
        [MediaIntent.audio(codecs=(OPUS,)), MediaIntent.video(codecs=(H264,))],
    )
    assert answer.media[1].port == 0 and answer.media[1].rejected
    assert answer.media[1].mid == "1"
    assert rb.media[1].rejected and ra.media[1].rejected
    assert answer.bundle_groups() == [("0",)]
    assert ra.bundle == ("0",) and rb.bundle == ("0",)
    assert not ra.media[0].rejected


def test_h264_needs_same_profile_and_packetization_mode():
    baseline_pm0 = Codec("H264", 90000, parameters=(("profile-level-id", "42001f"),))
    a, b = pair()
    _, answer, ra, rb = exchange(
        a,
        b,
        [MediaIntent.video(codecs=(baseline_pm0,))],
        [MediaIntent.video(codecs=(H264,))],
    )
    assert rb.media[0].rejected
    # Constrained Baseline written two ways is the same profile.
    other_cb = Codec(
        "H264",
        90000,
        parameters=(("packetization-mode", "1"), ("profile-level-id", "42c01f")),
    )
    a, b = pair()
    _, _, ra, rb = exchange(
        a,
        b,
        [MediaIntent.video(codecs=(other_cb,))],
        [MediaIntent.video(codecs=(H264,))],
    )
    assert not rb.media[0].rejected


@pytest.mark.parametrize(
    "offer_plid, offer_asym, answer_plid, answer_asym, answer_text, a_send, a_recv",
    [
        # both allow asymmetry: each side sends at the level the other takes
        ("42e01f", True, "42e00d", True, "42e00d", 13, 31),
        # one side does not: both use the lower level, answer states it
        ("42e01f", False, "42e028", True, "42e01f", 31, 31),
        ("42e015", True, "42e01f", False, "42e015", 21, 21),
    ],
)
def test_h264_level_asymmetry(
    offer_plid, offer_asym, answer_plid, answer_asym, answer_text, a_send, a_recv
):
    def h264(plid, asym):
        params = (("packetization-mode", "1"), ("profile-level-id", plid))
        if asym:
            params = (("level-asymmetry-allowed", "1"),) + params
        return Codec("H264", 90000, parameters=params)

    a, b = pair()
    _, answer, ra, rb = exchange(
        a,
        b,
        [MediaIntent.video(codecs=(h264(offer_plid, offer_asym),))],
        [MediaIntent.video(codecs=(h264(answer_plid, answer_asym),))],
    )
    fmtp = answer.media[0].get_all("fmtp")[0].to_dict()
    assert fmtp["profile-level-id"] == answer_text
    pt = ra.media[0].send_codecs[0].payload_type
    assert ra.media[0].h264_levels == ((pt, a_send, a_recv),)
    assert rb.media[0].h264_levels == ((pt, a_recv, a_send),)
    # the H.264 level caps the frame size the offerer may send
    assert ra.media[0].limits.max_fs == {13: 396, 31: 3600, 21: 792}[a_send]


def test_profile_level_id_parsing():
    assert ProfileLevelId.parse("42e01f").profile == "constrained-baseline"
    assert ProfileLevelId.parse("42001f").profile == "baseline"
    assert ProfileLevelId.parse("4d001f").profile == "main"
    assert ProfileLevelId.parse("640c1f").profile == "constrained-high"
    assert ProfileLevelId.parse("640032").profile == "high"
    assert ProfileLevelId.parse(None) == ProfileLevelId.parse("42000a")
    one_b = ProfileLevelId.parse("42f00b")
    assert one_b.level == 9 and str(one_b) == "42f00b"
    assert ProfileLevelId.parse("42e01f").level > one_b.level
    for bad in ("42e0", "zzzzzz", "42e0ff", "ff001f"):
        with pytest.raises(ValueError):
            ProfileLevelId.parse(bad)


# ------------------------------------------------------ BUNDLE and transport


def test_bundle_transport_and_rtcp_mux():
    cand = Candidate("1", 1, "udp", 2130706431, "127.0.0.1", 50000, "host")
    tcp = Candidate(
        "2",
        1,
        "tcp",
        1518280447,
        "127.0.0.1",
        9,
        "host",
        extensions=(("tcptype", "active"),),
    )
    a, b = pair({"candidates": (cand, tcp), "end_of_candidates": True})
    offer, answer, ra, rb = exchange(
        a,
        b,
        [MediaIntent.audio(), MediaIntent.video(), MediaIntent.data()],
        [MediaIntent.audio(), MediaIntent.video()],
    )
    assert offer.bundle_groups() == [("0", "1", "2")]
    assert answer.bundle_groups() == [("0", "1", "2")]
    # the default candidate goes in m= and c=
    assert (
        offer.media[0].port == 50000
        and offer.media[0].connection.address == "127.0.0.1"
    )
    assert answer.media[0].port == 9 and answer.media[0].connection.address == "0.0.0.0"
    assert all(m.rtcp_mux for m in answer.media[:2])
    assert rb.remote.candidates == (cand, tcp) and rb.remote.end_of_candidates
    assert (rb.remote.ice_ufrag, rb.remote.ice_pwd) == (a.ice_ufrag, a.ice_pwd)
    assert (ra.remote.ice_ufrag, ra.remote.ice_pwd) == (b.ice_ufrag, b.ice_pwd)
    assert len(a.ice_ufrag) >= 4 and len(a.ice_pwd) >= 22
    assert ra.remote.fingerprints == (FP_B,) and rb.remote.fingerprints == (FP_A,)
    assert rb.media[2].sctp_port == 5000 and rb.media[2].max_message_size == 262144


def test_rtcp_mux_required():
    text = load("aiortc_offer.sdp").replace("a=rtcp-mux\r\n", "", 1)
    b = Negotiator(LocalTransport((FP_B,)))
    answer, result = b.handle_offer(text, [MediaIntent.audio(), MediaIntent.video()])
    assert result.media[0].rejected and not result.media[1].rejected
    assert parse(str(answer)).bundle_groups() == [("1", "2")]


def test_offer_without_bundle_gets_no_group():
    text = load("aiortc_offer.sdp").replace("a=group:BUNDLE 0 1 2\r\n", "")
    answer, result = Negotiator(LocalTransport((FP_B,))).handle_offer(text)
    assert parse(str(answer)).bundle_groups() == [] and result.bundle == ()


@pytest.mark.parametrize(
    "offer_setup, preference, answered, offerer_role, answerer_role",
    [
        ("actpass", "active", "active", "server", "client"),
        ("actpass", "passive", "passive", "client", "server"),
        ("active", "active", "passive", "client", "server"),
        ("passive", "passive", "active", "server", "client"),
    ],
)
def test_dtls_roles(offer_setup, preference, answered, offerer_role, answerer_role):
    a, b = pair(transport_b={"answer_setup": preference})
    offer = a.create_offer([MediaIntent.audio()])
    text = str(offer).replace("a=setup:actpass", f"a=setup:{offer_setup}")
    answer, rb = b.handle_offer(text, [MediaIntent.audio()])
    assert parse(str(answer)).media[0].setup == answered
    ra = a.handle_answer(str(answer))
    assert (ra.dtls_role, rb.dtls_role) == (offerer_role, answerer_role)


def test_dtls_role_kept_in_later_answers():
    a, b = pair(transport_b={"answer_setup": "passive"})
    exchange(a, b, [MediaIntent.audio()], [MediaIntent.audio()])
    _, answer, ra, rb = exchange(
        a, b, [MediaIntent.audio(), MediaIntent.video()], [MediaIntent.audio()]
    )
    assert {m.setup for m in answer.media} == {"passive"}
    assert rb.dtls_role == "server" and ra.dtls_role == "client"


@pytest.mark.parametrize(
    "a_mixed, b_mixed", list(itertools.product([False, True], repeat=2))
)
def test_extmap_allow_mixed(a_mixed, b_mixed):
    a, b = pair(a={"extmap_allow_mixed": a_mixed}, b={"extmap_allow_mixed": b_mixed})
    offer, answer, ra, rb = exchange(a, b, [MediaIntent.audio()], [MediaIntent.audio()])
    assert offer.has("extmap-allow-mixed") == a_mixed
    assert answer.has("extmap-allow-mixed") == (a_mixed and b_mixed)
    assert ra.extmap_allow_mixed == rb.extmap_allow_mixed == (a_mixed and b_mixed)


def test_ice_lite():
    a, b = pair(transport_b={"ice_lite": True})
    offer, answer, ra, rb = exchange(a, b, [MediaIntent.audio()], [MediaIntent.audio()])
    assert answer.has("ice-lite") and not offer.has("ice-lite")
    assert ra.remote.ice_lite and ra.ice_controlling and not rb.ice_controlling
    # a lite offerer facing a full answerer: the answerer controls
    a, b = pair(transport_a={"ice_lite": True})
    _, _, ra, rb = exchange(a, b, [MediaIntent.audio()], [MediaIntent.audio()])
    assert not ra.ice_controlling and rb.ice_controlling


# ----------------------------------------------------- re-offers and restart


def test_reoffer_adds_and_stops_tracks():
    a, b = pair()
    intents = [MediaIntent.audio(), MediaIntent.video()]
    offer1, _, ra1, _ = exchange(
        a, b, intents, [MediaIntent.audio(), MediaIntent.video()]
    )
    # add a screen share and a data channel
    intents += [MediaIntent.screen(), MediaIntent.data()]
    offer2, answer2, ra2, rb2 = exchange(
        a, b, intents, [MediaIntent.audio(), MediaIntent.video(), MediaIntent.screen()]
    )
    assert [m.mid for m in offer2.media] == ["0", "1", "2", "3"]
    assert offer2.origin.session_version == offer1.origin.session_version + 1
    assert offer2.media[2].get("content") == ("slides",)
    assert ra2.media[2].content == ("slides",) and rb2.media[2].content == ("slides",)
    for before, after in zip(ra1.media, ra2.media):
        assert [c.payload_type for c in before.send_codecs] == [
            c.payload_type for c in after.send_codecs
        ]
    assert dict((u, i) for i, u in ra1.media[1].header_extensions) == dict(
        (u, i) for i, u in ra2.media[1].header_extensions
    )
    # stop the camera: port 0, out of BUNDLE, place kept
    intents[1] = MediaIntent.video(stopped=True)
    offer3, answer3, ra3, rb3 = exchange(
        a, b, intents, [MediaIntent.audio(), MediaIntent.screen()]
    )
    assert offer3.media[1].port == 0 and answer3.media[1].port == 0
    assert offer3.bundle_groups() == [("0", "2", "3")]
    assert ra3.media[1].rejected and rb3.media[1].rejected
    assert ra3.bundle == ("0", "2", "3")
    assert ra3.ice_restart is False and rb3.ice_restart is False
    with pytest.raises(UsageError):
        a.create_offer(intents[:2])


def test_answerer_reoffers_with_agreed_mids_and_payload_types():
    a, b = pair()
    _, answer, ra, rb = exchange(
        a,
        b,
        [MediaIntent.audio(), MediaIntent.video()],
        [MediaIntent.audio(), MediaIntent.video()],
    )
    # now b offers: same mids in the same order, the PTs and extension ids agreed
    offer2 = b.create_offer(
        [MediaIntent.audio(), MediaIntent.video(), MediaIntent.data()]
    )
    assert [m.mid for m in offer2.media] == ["0", "1", "2"]
    for before, section in zip(rb.media, offer2.media):
        pts = [int(f) for f in section.formats]
        assert [c.payload_type for c in before.recv_codecs] == [
            p for p in pts if p in {c.payload_type for c in before.recv_codecs}
        ]
        assert {(e.id, e.uri) for e in section.get_all("extmap")} >= set(
            before.header_extensions
        )
    answer2, ra2 = a.handle_offer(
        str(offer2), [MediaIntent.audio(), MediaIntent.video()]
    )
    rb2 = b.handle_answer(str(answer2))
    assert [c.payload_type for c in rb2.media[1].send_codecs] == [
        c.payload_type for c in rb.media[1].send_codecs
    ]
    assert rb2.ice_controlling and not ra2.ice_controlling


def test_preferred_payload_type_never_collides_with_an_agreed_one():
    a, b = pair()
    vp8 = Codec("VP8", 90000)
    h264 = replace(H264, payload_type=None)
    # b answers H.264 with the offer's PT 96
    offer = a.create_offer(
        [MediaIntent.video(codecs=(replace(h264, payload_type=96),))]
    )
    answer, _ = b.handle_offer(str(offer), [MediaIntent.video(codecs=(h264,))])
    a.handle_answer(str(answer))
    # b re-offers, preferring PT 96 for VP8 which comes first: 96 stays H.264's
    offer2 = b.create_offer(
        [MediaIntent.video(codecs=(replace(vp8, payload_type=96), h264))]
    )
    names = {r.payload_type: r.encoding_name for r in offer2.media[0].get_all("rtpmap")}
    assert names[96] == "H264"
    assert len(offer2.media[0].formats) == len(set(offer2.media[0].formats))


def test_ice_restart():
    a, b = pair()
    _, _, ra1, rb1 = exchange(a, b, [MediaIntent.audio()], [MediaIntent.audio()])
    old_a, old_b = (a.ice_ufrag, a.ice_pwd), (b.ice_ufrag, b.ice_pwd)
    offer, answer, ra2, rb2 = exchange(
        a, b, [MediaIntent.audio()], [MediaIntent.audio()], ice_restart=True
    )
    assert (offer.media[0].ice_ufrag, offer.media[0].ice_pwd) != old_a
    # RFC 8839 4.4.1.1.1: the answer to a restart carries new credentials too
    assert (answer.media[0].ice_ufrag, answer.media[0].ice_pwd) != old_b
    assert ra2.ice_restart and rb2.ice_restart
    assert (rb2.remote.ice_ufrag, rb2.remote.ice_pwd) == (a.ice_ufrag, a.ice_pwd)
    # no restart next time
    _, _, ra3, rb3 = exchange(a, b, [MediaIntent.audio()], [MediaIntent.audio()])
    assert not ra3.ice_restart and not rb3.ice_restart


def test_fixed_credentials_cannot_restart():
    n = Negotiator(LocalTransport((FP_A,), ice_ufrag="abcd", ice_pwd="x" * 22))
    with pytest.raises(UsageError):
        n.create_offer([MediaIntent.audio()], ice_restart=True)


def test_answer_must_match_offer():
    a, b = pair()
    offer = a.create_offer([MediaIntent.audio(), MediaIntent.video()])
    answer, _ = b.handle_offer(str(offer), [MediaIntent.audio()])
    broken = parse(str(answer))
    broken.media.pop()
    with pytest.raises(NegotiationError):
        a.handle_answer(str(broken))
    with pytest.raises(UsageError):
        pair()[0].handle_answer(str(answer))


# ---------------------------------------------------------------- simulcast


def test_simulcast_offer_and_answer():
    a, b = pair()
    offer, answer, ra, rb = exchange(
        a,
        b,
        [MediaIntent.video(simulcast=("q", "h", "f"))],
        [MediaIntent.video(direction="recvonly")],
    )
    assert [r.id for r in offer.media[0].get_all("rid")] == ["q", "h", "f"]
    assert offer.media[0].get("simulcast").rids("send") == ["q", "h", "f"]
    assert [(r.id, r.direction) for r in answer.media[0].get_all("rid")] == [
        ("q", "recv"),
        ("h", "recv"),
        ("f", "recv"),
    ]
    assert answer.media[0].get("simulcast").rids("recv") == ["q", "h", "f"]
    assert ra.media[0].send_rids == ("q", "h", "f") and rb.media[0].recv_rids == (
        "q",
        "h",
        "f",
    )
    rid_uri = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
    assert ra.media[0].extension_id(rid_uri) is not None


def test_simulcast_rid_restrictions_echoed():
    from netcore.sdp import Rid

    q = Rid("q", "send", (("max-width", "320"), ("max-height", "180")))
    a, b = pair()
    offer, answer, ra, rb = exchange(
        a, b, [MediaIntent.video(simulcast=(q, "f"))], [MediaIntent.video()]
    )
    assert offer.media[0].get("rid") == q
    assert answer.media[0].get("rid") == Rid("q", "recv", q.parameters)
    assert ra.media[0].send_rids == ("q", "f")
    assert ra.media[0].send_codec.name == "VP8"
    assert rb.media[0].send_codec is not None  # b sends too (sendrecv)


def test_simulcast_refused_without_rid_extension():
    a, b = pair()
    _, answer, ra, rb = exchange(
        a,
        b,
        [MediaIntent.video(simulcast=("q", "h"))],
        [MediaIntent.video(header_extensions=("urn:ietf:params:rtp-hdrext:sdes:mid",))],
    )
    assert answer.media[0].get("simulcast") is None
    assert ra.media[0].send_rids == () and rb.media[0].recv_rids == ()


def test_we_answer_chrome_simulcast_offer():
    text = load("chrome_offer_simulcast.sdp")
    n = Negotiator(LocalTransport((FP_B,)))
    answer, result = n.handle_offer(text, OUR_ANSWER_INTENTS)
    audio, video, data = result.media
    assert [(c.name, c.payload_type) for c in audio.recv_codecs] == [
        ("opus", 111),
        ("PCMU", 0),
        ("PCMA", 8),
    ]
    # Constrained Baseline packetization-mode 1 is Chrome's PT 106, not 102 (Baseline)
    assert [
        (c.name, c.payload_type, c.rtx_payload_type) for c in video.recv_codecs
    ] == [("VP8", 96, 97), ("H264", 106, 107)]
    assert video.recv_rids == ("q", "h", "f") and video.direction == "recvonly"
    assert video.extension_id("urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id") == 10
    assert not data.rejected and data.max_message_size == 262144
    assert result.remote.ice_ufrag == "Xk3p" and len(result.remote.candidates) == 3
    desc = parse(str(answer))
    assert desc.media[1].get("simulcast").rids("recv") == ["q", "h", "f"]
    assert str(desc) == str(answer)


def test_we_answer_firefox_offer():
    text = load("firefox_offer_simulcast.sdp")
    n = Negotiator(LocalTransport((FP_B,)))
    answer, result = n.handle_offer(text, [MediaIntent.audio(), MediaIntent.video()])
    audio, video, data = result.media
    assert audio.recv_codecs[0].payload_type == 109
    assert [c.payload_type for c in video.recv_codecs] == [120, 126]
    assert result.remote.fingerprints[0].hash_function == "sha-256"  # session level
    assert video.recv_rids == ("q", "h", "f")
    # Firefox's VP8 limits: max-fs 12288, max-fr 60
    assert video.limits.max_fs == 12288 and video.limits.max_framerate == 60


# ------------------------------------------------------ capability minimums


def test_capability_minimums():
    a_limits = Limits(
        max_bitrate=2_000_000, max_width=1280, max_height=720, max_framerate=30
    )
    b_limits = Limits(
        max_bitrate=1_000_000, max_width=1920, max_height=1080, max_framerate=15
    )
    a = Negotiator(LocalTransport((FP_A,)), limits=a_limits, random=seeded(3))
    b = Negotiator(LocalTransport((FP_B,)), limits=b_limits, random=seeded(4))
    offer, answer, ra, rb = exchange(
        a, b, [MediaIntent.video(codecs=(VP8,))], [MediaIntent.video(codecs=(VP8,))]
    )
    video = offer.media[0]
    # carried in standard SDP
    assert video.bandwidths == {"AS": 2000, "TIAS": 2000000}
    assert video.get("imageattr").max_resolution("recv") == (1280, 720)
    assert video.get("framerate") == 30
    assert video.get("fmtp").to_dict() == {"max-fs": "3600", "max-fr": "30"}
    assert answer.media[0].bandwidths == {"AS": 1000, "TIAS": 1000000}
    want = Limits(
        max_bitrate=1_000_000, max_width=1280, max_height=720, max_framerate=15
    )
    for result in (ra, rb):
        got = result.media[0].limits
        assert (got.max_bitrate, got.max_width, got.max_height, got.max_framerate) == (
            want.max_bitrate,
            want.max_width,
            want.max_height,
            want.max_framerate,
        )
        assert (
            got.max_fs == 3600
        )  # the smaller of 1280x720 and 1920x1080 in macroblocks


def test_capability_unstated_side_takes_the_other():
    a = Negotiator(LocalTransport((FP_A,)), limits=Limits(max_bitrate=500_000))
    b = Negotiator(LocalTransport((FP_B,)))
    _, _, ra, rb = exchange(a, b, [MediaIntent.audio()], [MediaIntent.audio()])
    assert ra.media[0].limits.max_bitrate == 500_000 == rb.media[0].limits.max_bitrate
    assert ra.media[0].limits.max_width is None


def test_per_section_limits_and_as_only():
    text = load("icelite_server_answer.sdp")
    desc = parse(text)
    from netcore.sdp.limits import limits_of

    got = limits_of(desc.media[0], desc, 96, desc.media[0].get("fmtp").to_dict())
    assert got == Limits(2_000_000, 1280, 720, 30.0, 3600)
    only_as = parse(text.replace("b=TIAS:2000000\r\n", ""))
    assert limits_of(only_as.media[0], only_as, 96).max_bitrate == 2_000_000


def test_screen_share_matched_to_screen_intent():
    a, b = pair()
    offer, answer, ra, rb = exchange(
        a,
        b,
        [MediaIntent.video(), MediaIntent.screen()],
        [
            MediaIntent.screen(direction="recvonly"),
            MediaIntent.video(direction="sendonly"),
        ],
    )
    assert rb.media[0].direction == "sendonly"  # camera section took the camera intent
    assert rb.media[1].direction == "recvonly" and rb.media[1].content == ("slides",)


def test_rejected_offer_section_leaves_the_intent_for_the_next():
    a, b = pair()
    offer, answer, ra, rb = exchange(
        a,
        b,
        [MediaIntent.video(stopped=True), MediaIntent.video()],
        [MediaIntent.video(direction="sendonly")],
    )
    assert rb.media[0].rejected and answer.media[0].port == 0
    assert rb.media[1].direction == "sendonly"


def test_unknown_kind_rejected():
    text = load("aiortc_offer.sdp").replace("m=audio", "m=text", 1)
    answer, result = Negotiator(LocalTransport((FP_B,))).handle_offer(text)
    assert result.media[0].rejected and parse(str(answer)).media[0].port == 0


def test_intent_validation():
    with pytest.raises(UsageError):
        MediaIntent.audio(direction="sideways")
    with pytest.raises(UsageError):
        MediaIntent("text")
    with pytest.raises(UsageError):
        LocalTransport(())
