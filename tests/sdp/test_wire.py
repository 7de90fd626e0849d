"""Parse errors name the line and the reason; building lines by hand;
hypothesis: generated descriptions round trip, arbitrary text gives a
description or SdpParseError only."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from netcore.errors import ParseError
from netcore.sdp import (
    Candidate,
    CandidateError,
    Extmap,
    Fmtp,
    ImageAttr,
    Line,
    Media,
    MediaSection,
    Origin,
    Rid,
    RtcpFb,
    Rtpmap,
    SdpParseError,
    SessionDescription,
    Simulcast,
    Timing,
    parse,
)

HEAD = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


def error_of(text: str) -> SdpParseError:
    with pytest.raises(SdpParseError) as info:
        parse(text)
    assert isinstance(info.value, ParseError)
    return info.value


@pytest.mark.parametrize(
    "bad, line, reason",
    [
        ("m=audio 9 RTP/AVP 0\r\nhello\r\n", 6, "expected <type>=<value>"),
        ("m=audio x RTP/AVP 0\r\n", 5, "bad port"),
        ("m=audio 70000 RTP/AVP 0\r\n", 5, "out of range"),
        ("m=audio 9 RTP/AVP 0\r\na=rtpmap:200 x/9000\r\n", 6, "payload type"),
        ("m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n", 6, "name/clock"),
        ("m=audio 9 RTP/AVP 0\r\na=rtcp-fb:0\r\n", 6, "rtcp-fb"),
        ("a=candidate:1 1 udp 1 1.2.3.4 5 host\r\n", 5, "8 fields"),
        ("a=candidate:1 1 udp 1 1.2.3.4 99999 typ host\r\n", 5, "port"),
        ("a=candidate:1 1 udp 1 1.2.3.4 5 typ host raddr\r\n", 5, "without a value"),
        ("a=setup:sideways\r\n", 5, "setup"),
        ("a=fingerprint:sha-256 zz:00\r\n", 5, "hex"),
        ("a=extmap:0 urn:x\r\n", 5, "reserved"),
        ("a=extmap:1/upward urn:x\r\n", 5, "direction"),
        ("a=simulcast:send\r\n", 5, "simulcast"),
        ("a=simulcast:send a;;b\r\n", 5, "rid"),
        ("a=rid:q sideways\r\n", 5, "rid direction"),
        ("a=imageattr:96 send [x=1280]\r\n", 5, "x and y"),
        ("a=rtcp-mux:yes\r\n", 5, "takes no value"),
        ("a=mid\r\n", 5, "needs a value"),
        ("a=bad name:1\r\n", 5, "attribute name"),
        ("a=ok\x00\r\n", 5, "NUL"),
        ("a=ok\rx\r\n", 5, "CR"),
        ("b=AS\r\n", 5, "bwtype"),
        ("b=AS:fast\r\n", 5, "bandwidth"),
        ("1=x\r\n", 5, "line type"),
        ("a=ssrc-group:FID 1 x\r\n", 5, "ssrc"),
        ("a=sctp-port:99999\r\n", 5, "out of range"),
        ("a=framerate:fast\r\n", 5, "framerate"),
        ("a=group:BUNDLE 0  1\r\n", 5, "identification-tag"),
    ],
)
def test_malformed_line_named(bad, line, reason):
    err = error_of(HEAD + bad)
    assert err.line_number == line
    assert reason in err.reason
    assert f"line {line}" in str(err)


def test_structure_errors():
    assert error_of("").reason == "empty description"
    assert error_of("o=- 1 1 IN IP4 x\r\n").line_number == 1
    assert "o=" in error_of("v=0\r\ns=-\r\n").reason
    assert error_of("v=1\r\n").reason.endswith("v= must be 0")
    assert error_of(b"v=0\r\n\xff\r\n").line_number == 2
    assert error_of(HEAD + "\r\na=x\r\n").line_number == 5  # empty line


def test_size_bound():
    big = HEAD + "a=x-pad:" + "p" * 2000 + "\r\n"
    assert parse(big, max_size=4096)
    assert "larger" in error_of_size(big, 1024).reason
    assert "larger" in error_of_size(big.encode(), 1024).reason


def error_of_size(text, size):
    with pytest.raises(SdpParseError) as info:
        parse(text, max_size=size)
    return info.value


def test_bytes_and_str_and_mixed_endings():
    text = HEAD + "a=sendrecv\r\n"
    assert str(parse(text.encode())) == text
    mixed = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\ns=-\r\nt=0 0\n"
    desc = parse(mixed)
    assert str(desc) == "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    assert str(parse(HEAD.rstrip("\r\n"))) == HEAD  # final line ending added


def test_build_description_by_hand():
    desc = SessionDescription()
    desc.lines.append(Line.field("v", 0))
    desc.lines.append(Line.field("o", Origin("-", 42, 1)))
    desc.lines.append(Line.field("s", "-"))
    desc.lines.append(Line.field("t", Timing()))
    desc.add("group", parse(HEAD + "a=group:BUNDLE 0\r\n").get("group"))
    media = MediaSection(
        [Line.field("m", Media("audio", 9, "UDP/TLS/RTP/SAVPF", ("111",)))]
    )
    media.add("mid", "0")
    media.add("sendrecv")
    media.add("rtpmap", Rtpmap(111, "opus", 48000, 2))
    media.add("fmtp", Fmtp.from_dict(111, {"minptime": "10", "useinbandfec": "1"}))
    media.add("rtcp-fb", RtcpFb("111", "transport-cc"))
    media.add("extmap", Extmap(1, "urn:ietf:params:rtp-hdrext:sdes:mid", "sendonly"))
    media.add("rid", Rid("q", "send", (("max-width", "320"), ("max-height", "180"))))
    media.add("simulcast", Simulcast.parse("send q;~h,f"))
    media.add("imageattr", ImageAttr("111", send="*"))
    media.add("framerate", 29.97)
    desc.media.append(media)
    text = str(desc)
    assert text == (
        "v=0\r\no=- 42 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
        "a=group:BUNDLE 0\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendrecv\r\n"
        "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n"
        "a=rtcp-fb:111 transport-cc\r\n"
        "a=extmap:1/sendonly urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
        "a=rid:q send max-width=320;max-height=180\r\n"
        "a=simulcast:send q;~h,f\r\n"
        "a=imageattr:111 send *\r\n"
        "a=framerate:29.97\r\n"
    )
    assert parse(text) == desc
    media.set("sendrecv", None)
    media.remove("sendrecv")
    media.set("recvonly")
    assert media.direction == "recvonly"
    media.set("mid", "audio")
    assert media.mid == "audio" and media.get_all("mid") == ["audio"]


def test_ssrc_groups_sim_and_fid():
    from netcore.sdp import SsrcGroup

    desc = parse(
        HEAD + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
        "a=ssrc-group:SIM 1 2 3\r\na=ssrc-group:FID 1 4\r\na=ssrc:1 cname:x\r\n"
        "a=ssrc:1 msid:s t\r\n"
    )
    video = desc.media[0]
    assert video.get_all("ssrc-group") == [
        SsrcGroup("SIM", (1, 2, 3)),
        SsrcGroup("FID", (1, 4)),
    ]
    assert [s.value for s in video.get_all("ssrc")] == ["x", "s t"]


def test_building_a_broken_line_is_a_usage_error():
    from netcore.errors import UsageError

    with pytest.raises(UsageError):
        Line.attribute("mid", "a\r\nb=evil")


def test_candidate_api():
    tcp = Candidate.from_trickle(
        "candidate:1559314437 1 tcp 1518280447 192.168.1.23 9 typ host tcptype active generation 0"
    )
    assert tcp.is_tcp and tcp.tcptype == "active" and tcp.extension("generation") == "0"
    assert tcp.to_trickle().startswith("candidate:1559314437 1 tcp")
    relay = Candidate(
        "r1", 1, "UDP", 16777215, "10.0.0.1", 3478, "relay", "1.2.3.4", 5000
    )
    assert (
        str(relay)
        == "r1 1 UDP 16777215 10.0.0.1 3478 typ relay raddr 1.2.3.4 rport 5000"
    )
    assert Candidate.parse(str(relay)) == relay
    assert Candidate.from_trickle("a=candidate:" + str(relay) + "\r\n") == relay
    # RFC 8839: an unknown extension is kept, in order.
    ext = Candidate.parse("f 2 udp 5 ::1 9 typ host ufrag abcd x-new 1")
    assert ext.extensions == (("ufrag", "abcd"), ("x-new", "1")) and ext.ufrag == "abcd"
    for bad in (
        "",
        "candidate:",
        "x 1 udp 1 a 1 typ",
        "x 0 udp 1 a 1 typ host",
        "x 1 udp 99999999999 a 1 typ host",
        "x" * 33 + " 1 udp 1 a 1 typ host",
    ):
        with pytest.raises(CandidateError):
            Candidate.from_trickle("candidate:" + bad)


# ------------------------------------------------------------------ hypothesis

tokens = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-",
    min_size=1,
    max_size=12,
)
ice = st.text("abcdefABCDEF0123456789+/", min_size=1, max_size=32)
port = st.integers(0, 65535)
pt = st.integers(0, 127)

candidates = st.builds(
    Candidate,
    ice,
    st.integers(1, 256),
    st.sampled_from(["udp", "UDP", "tcp", "TCP"]),
    st.integers(0, 2**32 - 1),
    st.sampled_from(["192.0.2.1", "::1", "abc.local", "2001:db8::5"]),
    port,
    st.sampled_from(["host", "srflx", "prflx", "relay"]),
    st.one_of(st.none(), st.just("10.0.0.1")),
    st.one_of(st.none(), port),
    st.lists(
        st.tuples(
            st.sampled_from(["tcptype", "generation", "ufrag", "network-id"]), tokens
        ),
        max_size=3,
    ).map(tuple),
)

rids = st.text("abcdefgh0123456789", min_size=1, max_size=4)
sim_streams = st.lists(
    st.lists(
        st.builds(lambda r, p: (r, p), rids, st.booleans()), min_size=1, max_size=2
    ),
    min_size=1,
    max_size=3,
)


def _sim(send, recv, recv_first):
    from netcore.sdp import SimulcastRid

    def conv(streams):
        return tuple(tuple(SimulcastRid(r, p) for r, p in alts) for alts in streams)

    return Simulcast(conv(send), conv(recv), recv_first)


simulcasts = st.one_of(
    st.builds(lambda s: _sim(s, [], False), sim_streams),
    st.builds(lambda r: _sim([], r, False), sim_streams),
    st.builds(_sim, sim_streams, sim_streams, st.booleans()),
)

attributes = st.one_of(
    st.builds(
        lambda v: ("rtpmap", v),
        st.builds(
            Rtpmap,
            pt,
            tokens,
            st.integers(1, 200000),
            st.one_of(st.none(), st.integers(1, 8)),
        ),
    ),
    st.builds(
        lambda v: ("fmtp", v),
        st.builds(
            Fmtp,
            pt.map(str),
            st.sampled_from(
                ["apt=96", "minptime=10;useinbandfec=1", "0-15", "111/111"]
            ),
        ),
    ),
    st.builds(
        lambda v: ("rtcp-fb", v),
        st.builds(
            RtcpFb,
            st.one_of(pt.map(str), st.just("*")),
            tokens,
            st.one_of(st.none(), st.just("pli"), st.just("fir")),
        ),
    ),
    st.builds(
        lambda v: ("extmap", v),
        st.builds(
            Extmap,
            st.integers(1, 255),
            st.just("urn:ietf:params:rtp-hdrext:sdes:mid"),
            st.sampled_from([None, "sendonly", "recvonly"]),
            st.none(),
        ),
    ),
    st.builds(lambda v: ("candidate", v), candidates),
    st.builds(lambda v: ("simulcast", v), simulcasts),
    st.builds(
        lambda v: ("rid", v),
        st.builds(Rid, rids, st.sampled_from(["send", "recv"]), st.just(())),
    ),
    st.builds(lambda v: ("mid", v), tokens),
    st.builds(
        lambda v: (v, None),
        st.sampled_from(
            ["sendrecv", "recvonly", "rtcp-mux", "end-of-candidates", "ice-lite"]
        ),
    ),
    st.builds(
        lambda n, v: (n, v),
        st.sampled_from(["x-custom", "msid-semantic"]),
        st.text(
            st.characters(
                min_codepoint=32, max_codepoint=0x2FFF, blacklist_characters="\r\n"
            ),
            max_size=20,
        ),
    ),
)


@st.composite
def descriptions(draw):
    desc = SessionDescription(eol=draw(st.sampled_from(["\r\n", "\n"])))
    desc.lines.append(Line.field("v", 0))
    desc.lines.append(
        Line.field(
            "o",
            Origin(draw(tokens), draw(st.integers(0, 2**63)), draw(st.integers(0, 9))),
        )
    )
    desc.lines.append(Line.field("s", draw(st.sampled_from(["-", "call", " "]))))
    desc.lines.append(Line.field("t", Timing()))
    for name, value in draw(st.lists(attributes, max_size=4)):
        desc.add(name, value)
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["audio", "video", "application"]))
        fmts = tuple(map(str, draw(st.lists(pt, min_size=1, max_size=4))))
        media = MediaSection(
            [Line.field("m", Media(kind, draw(port), "UDP/TLS/RTP/SAVPF", fmts))]
        )
        for name, value in draw(st.lists(attributes, max_size=8)):
            media.add(name, value)
        desc.media.append(media)
    return desc


@settings(max_examples=150)
@given(descriptions())
def test_generated_descriptions_round_trip(desc):
    text = str(desc)
    again = parse(text)
    assert again == desc
    assert str(again) == text
    for a, b in zip(desc.media, again.media):
        assert [line.value for line in a.lines] == [line.value for line in b.lines]


@settings(max_examples=300)
@given(st.text(max_size=300))
def test_arbitrary_text_gives_description_or_parse_error(text):
    try:
        desc = parse(text)
    except SdpParseError:
        return
    str(desc)


line_parts = st.sampled_from(
    [
        "v=0",
        "o=- 1 1 IN IP4 x",
        "s=-",
        "t=0 0",
        "m=audio 9 RTP/AVP 0",
        "a=rtpmap:",
        "a=candidate:",
        "a=simulcast:",
        "a=imageattr:",
        "a=rid:",
        "a=extmap:",
        "a=ssrc:",
        "a=fingerprint:",
        "b=",
        "c=",
        " ",
        "0",
        "9",
        "/",
        ":",
        ";",
        ",",
        "[",
        "]",
        "x=",
        "y=",
        "typ",
        "raddr",
        "~",
        "send",
        "recv",
        "*",
        "\r\n",
        "\n",
    ]
)


@settings(max_examples=400)
@given(st.lists(line_parts, max_size=40).map("".join))
def test_sdp_shaped_junk_gives_parse_error_only(text):
    try:
        desc = parse("v=0\r\no=- 1 1 IN IP4 x\r\ns=-\r\n" + text)
    except SdpParseError:
        return
    for media in desc.media:
        for attr in media.get_all("imageattr"):
            attr.max_resolution("send")
            attr.max_resolution("recv")
    str(desc)


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_arbitrary_bytes(data):
    try:
        parse(b"v=0\r\n" + data)
    except SdpParseError:
        pass


@settings(max_examples=200)
@given(candidates)
def test_candidate_round_trip(cand):
    assert Candidate.parse(str(cand)) == cand
    assert Candidate.from_trickle(cand.to_trickle()) == cand


@settings(max_examples=300)
@given(st.text(max_size=120))
def test_candidate_arbitrary_text_gives_candidate_error_only(text):
    try:
        cand = Candidate.from_trickle("candidate:" + text)
    except CandidateError:
        return
    assert Candidate.parse(str(cand)) == cand


def test_every_standard_line_type_kept_in_order():
    # RFC 8866 section 5, the example of section 5 extended with every field.
    text = (
        "v=0\r\n"
        "o=jdoe 3724394400 3724394405 IN IP4 198.51.100.1\r\n"
        "s=Call to John Smith\r\n"
        "i=SDP Offer #1\r\n"
        "u=http://www.jdoe.example.com/home.html\r\n"
        "e=Jane Doe <jane@jdoe.example.com>\r\n"
        "p=+1 617 555-6011\r\n"
        "c=IN IP4 198.51.100.1\r\n"
        "b=AS:128\r\n"
        "t=3724394400 3724398000\r\n"
        "r=7d 1h 0 25h\r\n"
        "z=3730928400 -1h 3749680800 0\r\n"
        "k=prompt\r\n"
        "a=recvonly\r\n"
        "m=audio 49170 RTP/AVP 0\r\n"
        "i=main audio\r\n"
        "c=IN IP4 198.51.100.2/127\r\n"
        "b=TIAS:64000\r\n"
        "k=clear:secret\r\n"
        "m=video 51372/2 RTP/AVP 99\r\n"
        "a=rtpmap:99 h263-1998/90000\r\n"
    )
    desc = parse(text)
    assert str(desc) == text
    assert [line.type for line in desc.lines] == list("vosiuepcbtrzka")
    assert desc.get("recvonly") is None and desc.direction == "recvonly"
    assert desc.field("i") == "SDP Offer #1" and desc.field("r") == "7d 1h 0 25h"
    assert desc.fields("t")[0].start == 3724394400
    audio, video = desc.media
    assert [line.type for line in audio.lines] == list("micbk")
    assert audio.connection.address == "198.51.100.2/127"
    assert audio.bandwidths == {"TIAS": 64000}
    assert video.media.port_count == 2 and video.port == 51372
