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
    answer, result = negotiator(FP_B, 2).handle_offer(
        text, [MediaIntent.audio(), MediaIntent.video()]
    )
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


# ------------------------------------------------------- refused offers

SIMULCAST = [MediaIntent.audio(), MediaIntent.video(simulcast=("q", "h"))]


def drop_lines(text: str, prefix: str) -> str:
    return "".join(
        line for line in text.splitlines(True) if not line.startswith(prefix)
    )


@pytest.mark.parametrize(
    "name, broken, named",
    [
        ("no ice-ufrag", lambda t: drop_lines(t, "a=ice-ufrag"), "a=ice-ufrag"),
        ("no ice-pwd", lambda t: drop_lines(t, "a=ice-pwd"), "a=ice-pwd"),
        ("no fingerprint", lambda t: drop_lines(t, "a=fingerprint"), "a=fingerprint"),
        ("same mid twice", lambda t: edit(t, "a=mid:1", "a=mid:0"), "a=mid:0"),
        (
            "extmap id twice",
            lambda t: edit(t, "a=extmap:4 http", "a=extmap:1 http"),
            "a=extmap:1 http://www.webrtc.org",
        ),
        (
            "payload type two codecs",
            lambda t: edit(
                t,
                "a=rtpmap:97 rtx/90000",
                "a=rtpmap:96 H264/90000\r\na=rtpmap:97 rtx/90000",
            ),
            "a=rtpmap:96 H264/90000",
        ),
        (
            "format listed twice",
            lambda t: edit(
                t,
                "m=video 9 UDP/TLS/RTP/SAVPF 96 97",
                "m=video 9 UDP/TLS/RTP/SAVPF 96 96 97",
            ),
            "m=video 9 UDP/TLS/RTP/SAVPF 96 96 97",
        ),
        (
            "rtx apt dangling",
            lambda t: edit(t, "a=fmtp:97 apt=96", "a=fmtp:97 apt=100"),
            "a=fmtp:97 apt=100",
        ),
        (
            "simulcast rid without a=rid",
            lambda t: edit(t, "a=simulcast:send q;h", "a=simulcast:send q;h;f"),
            "a=simulcast:send q;h;f",
        ),
        (
            "simulcast recv rid without a=rid",
            lambda t: edit(t, "a=simulcast:send q;h", "a=simulcast:send q;h recv x"),
            "a=simulcast:send q;h recv x",
        ),
    ],
)
def test_offer_breaking_a_rule_is_refused_naming_the_line(name, broken, named):
    text = broken(offer_text(SIMULCAST))
    parse(text)  # it parses: the rule broken is a negotiation rule
    with pytest.raises(NegotiationError) as refused:
        negotiator(FP_B, 2).handle_offer(
            text, [MediaIntent.audio(), MediaIntent.video()]
        )
    assert named in str(refused.value)


def test_answer_breaking_a_rule_is_refused():
    offerer = negotiator()
    offer = offerer.create_offer([MediaIntent.audio(), MediaIntent.video()])
    answer, _ = negotiator(FP_B, 2).handle_offer(
        str(offer), [MediaIntent.audio(), MediaIntent.video()]
    )
    with pytest.raises(NegotiationError, match="a=fingerprint"):
        offerer.handle_answer(drop_lines(str(answer), "a=fingerprint"))


def test_ice_credentials_and_fingerprint_at_session_level_are_enough():
    text = offer_text()
    ufrag = parse(text).media[0].ice_ufrag
    pwd = parse(text).media[0].ice_pwd
    fp = next(li for li in text.splitlines() if li.startswith("a=fingerprint"))
    text = drop_lines(
        drop_lines(drop_lines(text, "a=ice-ufrag"), "a=ice-pwd"), "a=fingerprint"
    )
    text = edit(
        text,
        "t=0 0\r\n",
        f"t=0 0\r\na=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\n{fp}\r\n",
    )
    _, result = negotiator(FP_B, 2).handle_offer(
        text, [MediaIntent.audio(), MediaIntent.video()]
    )
    assert result.remote.ice_ufrag == ufrag and result.remote.fingerprints


def test_rejected_section_needs_no_transport():
    text = offer_text()
    video = text.index("m=video")
    head, tail = text[:video], text[video:]
    tail = edit(
        drop_lines(drop_lines(tail, "a=ice-"), "a=fingerprint"),
        "m=video 9 ",
        "m=video 0 ",
    )
    _, result = negotiator(FP_B, 2).handle_offer(
        head + tail, [MediaIntent.audio(), MediaIntent.video()]
    )
    assert result.media[1].rejected and not result.media[0].rejected


# ------------------------------------------------------------ extmap ids

TOFFSET = "urn:ietf:params:rtp-hdrext:toffset"


@pytest.mark.parametrize(
    "ext_id, mixed, kept",
    [
        (14, False, True),
        (15, True, False),
        (16, False, False),
        (16, True, True),
        (255, True, True),
        (256, True, False),
        (300, True, False),
        (4095, True, False),
    ],
)
def test_offered_extmap_id_outside_the_usable_range_is_left_out(ext_id, mixed, kept):
    from netcore.rtp.extensions import HeaderExtensionMap

    text = offer_text([MediaIntent.video()], extmap_allow_mixed=mixed)
    text = edit(
        text, "a=sendrecv\r\n", f"a=extmap:{ext_id} {TOFFSET}\r\na=sendrecv\r\n"
    )
    intent = MediaIntent.video(header_extensions=(MID, TOFFSET))
    answer, result = negotiator(FP_B, 2, extmap_allow_mixed=True).handle_offer(
        text, [intent]
    )
    answered = {e.id for e in answer.media[0].get_all("extmap")}
    assert (ext_id in answered) is kept
    assert (result.media[0].extension_id(TOFFSET) == ext_id) is kept
    # what the negotiator hands the RTP layer is always usable there
    HeaderExtensionMap(dict(result.media[0].header_extensions))


def test_answer_extmap_outside_the_range_never_reaches_the_rtp_layer():
    from netcore.rtp.extensions import HeaderExtensionMap

    offerer = negotiator()
    offer = offerer.create_offer([MediaIntent.video()])
    answer, _ = negotiator(FP_B, 2).handle_offer(str(offer), [MediaIntent.video()])
    text = edit(str(answer), "a=sendrecv\r\n", "a=extmap:300 urn:x\r\na=sendrecv\r\n")
    result = offerer.handle_answer(text)
    assert 300 not in dict(result.media[0].header_extensions)
    HeaderExtensionMap(dict(result.media[0].header_extensions))


# ------------------------------------------------- mutated corpus offers

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from netcore.sdp import SdpParseError  # noqa: E402

from .samples import load  # noqa: E402

OFFERS = [
    load(name).split("\r\n")
    for name in (
        "chromium156_offer_av_simulcast_data.sdp",
        "firefox153_offer_av_simulcast_data.sdp",
        "safari_offer.sdp",
        "aiortc_offer.sdp",
        "chrome_offer_simulcast.sdp",
    )
]

# What a mutation does to one line: drop it, repeat it, move it, or put a
# number, a token or a line from another offer in place of part of it.
mutations = st.one_of(
    st.tuples(st.just("drop"), st.integers(0, 400)),
    st.tuples(st.just("repeat"), st.integers(0, 400)),
    st.tuples(st.just("swap"), st.integers(0, 400), st.integers(0, 400)),
    st.tuples(
        st.just("number"),
        st.integers(0, 400),
        st.sampled_from([0, 1, 14, 15, 16, 127, 128, 255, 256, 300, 4095, 2**32, -1]),
    ),
    st.tuples(
        st.just("token"),
        st.integers(0, 400),
        st.sampled_from(
            ["sendonly", "recvonly", "inactive", "rtx", "H264", "~", ";", "/", " ", ""]
        ),
    ),
)


def mutate(lines: list[str], mutation: tuple) -> list[str]:
    lines = list(lines)
    if not lines:
        return lines
    at = mutation[1] % len(lines)
    kind = mutation[0]
    if kind == "drop":
        del lines[at]
    elif kind == "repeat":
        lines.insert(at, lines[at])
    elif kind == "swap":
        other = mutation[2] % len(lines)
        lines[at], lines[other] = lines[other], lines[at]
    else:
        line = lines[at]
        digits = [i for i, ch in enumerate(line) if ch.isdigit()]
        if kind == "number" and digits:
            i = digits[len(digits) // 2]
            j = i
            while j < len(line) and line[j].isdigit():
                j += 1
            lines[at] = line[:i] + str(mutation[2]) + line[j:]
        elif kind == "token":
            cut = max(2, len(line) // 2)
            lines[at] = line[:cut] + mutation[2] + line[cut:]
    return lines


@settings(max_examples=300)
@given(st.integers(0, len(OFFERS) - 1), st.lists(mutations, min_size=1, max_size=5))
def test_mutated_corpus_offers_give_an_answer_or_our_error(which, edits):
    lines = OFFERS[which]
    for mutation in edits:
        lines = mutate(lines, mutation)
    try:
        answer, result = negotiator(FP_B, 2, extmap_allow_mixed=True).handle_offer(
            "\r\n".join(lines),
            [
                MediaIntent.audio(),
                MediaIntent.video(simulcast=("q", "h")),
                MediaIntent.data(),
            ],
        )
    except (NegotiationError, SdpParseError):
        return
    assert str(parse(str(answer))) == str(answer)
    for media in result.media:
        mixed = media.extmap_allow_mixed
        for ext_id, _ in media.header_extensions:
            assert ext_id != 15 and 1 <= ext_id <= (255 if mixed else 14)


# ------------------------------------------------------------------ H.264

from netcore.sdp.codecs import Codec, match  # noqa: E402
from netcore.sdp.h264 import ProfileLevelId  # noqa: E402


def h264(
    plid: str | None, mode: str | None = "1", asym: bool = False, pt: int | None = None
) -> Codec:
    params: tuple = ()
    if asym:
        params += (("level-asymmetry-allowed", "1"),)
    if mode is not None:
        params += (("packetization-mode", mode),)
    if plid is not None:
        params += (("profile-level-id", plid),)
    return Codec("H264", 90000, parameters=params, payload_type=pt)


@pytest.mark.parametrize(
    "text, profile, level",
    [
        ("42e01f", "constrained-baseline", 31),
        ("42C02A", "constrained-baseline", 42),
        ("4de01f", "constrained-baseline", 31),
        ("58f01f", "constrained-baseline", 31),
        ("42a01f", "baseline", 31),
        ("42001f", "baseline", 31),
        ("58A01F", "baseline", 31),
        ("4D401f", "main", 31),
        ("4d001f", "main", 31),
        ("64001f", "high", 31),
        ("640c34", "constrained-high", 52),
        ("42f00b", "constrained-baseline", 9),  # level 1b
    ],
)
def test_profile_of_profile_level_id(text, profile, level):
    plid = ProfileLevelId.parse(text)
    assert (plid.profile, plid.level) == (profile, level)


@pytest.mark.parametrize(
    "a, b, same",
    [
        (h264("42e01f"), h264("42e034"), True),  # level may differ
        (h264("42e01f"), h264("42c01f"), True),  # constrained baseline two ways
        (h264("42e01f"), h264("4de01f"), True),
        (h264("42e01f"), h264("42001f"), False),  # baseline is another profile
        (h264("42e01f"), h264("4d001f"), False),
        (h264("42e01f"), h264("64001f"), False),
        (h264("64001f"), h264("640c1f"), False),  # high vs constrained high
        (h264("42e01f", "1"), h264("42e01f", "0"), False),  # modes kept apart
        (h264("42e01f", "0"), h264("42e01f", None), True),  # absent mode is 0
        (h264("42001f", "0"), h264(None, None), True),  # absent plid: baseline
        (h264("42e01f"), h264("42e0zz"), False),
    ],
)
def test_h264_same_codec_by_profile_and_mode(a, b, same):
    assert match(a, b) is same and match(b, a) is same


CHROME_H264 = [
    h264("42001f", "1", True, 102),
    h264("42001f", "0", True, 104),
    h264("42e01f", "1", True, 108),
    h264("42e01f", "0", True, 114),
    h264("4d001f", "1", True, 116),
    h264("64001f", "1", True, 118),
]


@pytest.mark.parametrize(
    "ours, answered_pt",
    [
        (h264("42e01f", "1", True), 108),
        (h264("42e01f", "0", True), 114),
        (h264("42001f", "1", True), 102),
        (h264("42001f", "0", True), 104),
        (h264("4d001f", "1", True), 116),
        (h264("640c1f", "1", True), None),  # constrained high was not offered
        (h264("4d001f", "0", True), None),
    ],
)
def test_h264_answered_on_the_offered_payload_type_of_its_profile(ours, answered_pt):
    text = offer_text([MediaIntent.video(codecs=tuple(CHROME_H264))])
    answer, result = negotiator(FP_B, 2).handle_offer(
        text, [MediaIntent.video(codecs=(ours,))]
    )
    if answered_pt is None:
        assert result.media[0].rejected
        return
    (codec,) = result.media[0].recv_codecs
    assert codec.payload_type == answered_pt
    offered = next(c for c in CHROME_H264 if c.payload_type == answered_pt)
    assert match(codec, offered)
    fmtp = next(
        f for f in answer.media[0].get_all("fmtp") if f.format == str(answered_pt)
    )
    assert (
        ProfileLevelId.parse(fmtp.to_dict()["profile-level-id"]).profile
        == ProfileLevelId.parse(offered.parameter("profile-level-id")).profile
    )


@pytest.mark.parametrize(
    "offered, ours, answered, levels",
    [
        # no asymmetry on one side: the lower level, stated in the answer
        (h264("42e034"), h264("42e01f"), "42e01f", (31, 31)),
        (h264("42e00b"), h264("42e01f", asym=True), "42e00b", (11, 11)),
        (h264("42f00b"), h264("42e01f"), "42f00b", (9, 9)),  # 1b is below 1.1
        (h264("640034"), h264("64001f"), "64001f", (31, 31)),
        # both allow asymmetry: our own level, each sends at the other's
        (h264("42e00b", asym=True), h264("42e01f", asym=True), "42e01f", (11, 31)),
    ],
)
def test_h264_levels_in_the_answer(offered, ours, answered, levels):
    text = offer_text([MediaIntent.video(codecs=(offered,))])
    answer, result = negotiator(FP_B, 2).handle_offer(
        text, [MediaIntent.video(codecs=(ours,))]
    )
    (fmtp,) = [
        f for f in answer.media[0].get_all("fmtp") if "profile-level-id" in f.to_dict()
    ]
    assert fmtp.to_dict()["profile-level-id"] == answered
    ((_, send, recv),) = result.media[0].h264_levels
    assert (send, recv) == levels


def test_reoffer_keeps_the_peers_payload_type_mapping():
    """Chrome maps 102 to Baseline; a later offer of ours puts Constrained
    Baseline on the peer's number for it (108), never on 102."""
    from netcore.sdp.codecs import VIDEO_CODECS, codecs_of

    chrome = negotiator()
    offer = chrome.create_offer(
        [MediaIntent.video(codecs=(VIDEO_CODECS[0], *CHROME_H264))]
    )
    ours = negotiator(FP_B, 2)
    ours.handle_offer(str(offer), [MediaIntent.video(codecs=(VIDEO_CODECS[0],))])
    reoffer = ours.create_offer([MediaIntent.video()])
    peer = {c.payload_type: c for c in codecs_of(offer.media[0])}
    for codec in codecs_of(reoffer.media[0]):
        if codec.payload_type in peer:
            assert match(codec, peer[codec.payload_type]), codec
        assert (
            codec.rtx_payload_type not in peer
            or codec.rtx_payload_type
            == peer.get(codec.payload_type, codec).rtx_payload_type
        )
    h264_pts = [c.payload_type for c in codecs_of(reoffer.media[0]) if c.name == "H264"]
    assert h264_pts == [108]
    # and the peer's answer to it negotiates H.264 there
    answer, _ = chrome.handle_offer(
        str(reoffer), [MediaIntent.video(codecs=(VIDEO_CODECS[0], *CHROME_H264))]
    )
    result = ours.handle_answer(str(answer))
    assert [
        c.payload_type for c in result.media[0].send_codecs if c.name == "H264"
    ] == [108]


def test_bundled_section_may_leave_its_transport_to_the_tagged_one():
    """RFC 9143: transport attributes in the tagged section only."""
    text = offer_text()
    video = text.index("m=video")
    head, tail = text[:video], text[video:]
    tail = drop_lines(drop_lines(tail, "a=ice-"), "a=fingerprint")
    _, result = negotiator(FP_B, 2).handle_offer(
        head + tail, [MediaIntent.audio(), MediaIntent.video()]
    )
    assert not result.media[1].rejected
    # without BUNDLE the same section is refused
    unbundled = drop_lines(head, "a=group:BUNDLE") + tail
    with pytest.raises(NegotiationError, match="m=video"):
        negotiator(FP_B, 2).handle_offer(
            unbundled, [MediaIntent.audio(), MediaIntent.video()]
        )


@pytest.mark.parametrize("mixed, most", [(False, 14), (True, 17)])
def test_our_offer_uses_only_ids_the_session_can_take(mixed, most):
    uris = tuple(f"urn:example:ext-{i}" for i in range(16))
    offer = negotiator(extmap_allow_mixed=mixed).create_offer(
        [MediaIntent.video(header_extensions=uris)]
    )
    ids = [e.id for e in offer.media[0].get_all("extmap")]
    assert max(ids) == most and 15 not in ids
    assert len(ids) == (14 if not mixed else 16)
