"""Real session descriptions: parse then serialize gives the same bytes, and
typed fields read back what the browsers and servers put there."""

from __future__ import annotations

import pytest

from netcore import sdp

from .samples import CORPUS, load

FILES = sorted(CORPUS.glob("*.sdp"))


def test_corpus_is_there():
    names = {f.name for f in FILES}
    assert {
        "chrome_offer_simulcast.sdp",
        "firefox_offer_simulcast.sdp",
        "safari_offer.sdp",
        "aiortc_offer.sdp",
        "janus_answer.sdp",
        "mediasoup_answer.sdp",
        "icelite_server_answer.sdp",
        "chromium156_offer_av_simulcast_data.sdp",
        "chromium156_answer_to_netcore.sdp",
        "netcore_offer_to_chromium156.sdp",
        "firefox153_offer_av_simulcast_data.sdp",
        "firefox153_answer_to_netcore.sdp",
        "netcore_offer_to_firefox153.sdp",
    } <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_round_trip_bytes(path):
    data = path.read_bytes()
    assert b"\r\n" in data
    desc = sdp.parse(data)
    assert desc.to_bytes() == data
    assert str(sdp.parse(data.decode())) == data.decode()


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_bare_lf_tolerated(path):
    text = path.read_bytes().decode()
    lf = text.replace("\r\n", "\n")
    desc = sdp.parse(lf)
    assert str(desc) == lf  # written back as it came
    desc.eol = "\r\n"
    assert str(desc) == text  # or as CRLF on request
    assert desc == sdp.parse(text)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_line_kept_in_order(path):
    text = path.read_bytes().decode()
    desc = sdp.parse(text)
    lines = [line.raw for line in desc.lines]
    for media in desc.media:
        lines += [line.raw for line in media.lines]
    assert lines == text.split("\r\n")[:-1]


def test_chrome_offer_typed():
    desc = sdp.parse(load("chrome_offer_simulcast.sdp"))
    assert desc.origin.session_id == 4611731400430051336
    assert desc.origin.session_version == 2
    assert desc.get("group") == sdp.Group("BUNDLE", ("0", "1", "2"))
    assert desc.has("extmap-allow-mixed")
    assert desc.get("msid-semantic") == " WMS 7c1a4a6e-3c2f-4b7b-9d3b-2f0f1d4e5a6b"
    audio, video, data = desc.media
    assert (audio.kind, audio.port, audio.protocol) == ("audio", 9, "UDP/TLS/RTP/SAVPF")
    assert audio.formats[:2] == ("111", "63")
    assert audio.get("rtcp") == sdp.Rtcp(9, "IN", "IP4", "0.0.0.0")
    assert audio.rtcp_mux and audio.has("rtcp-rsize")
    assert audio.mid == "0" and audio.direction == "sendrecv"
    assert audio.ice_ufrag == "Xk3p" and audio.ice_pwd == "Vz4Q0gMbnHr3VwIh1l8bVbzV"
    assert audio.get("ice-options") == ("trickle",)
    assert audio.setup == "actpass"
    assert audio.fingerprints[0].hash_function == "sha-256"
    assert len(audio.fingerprints[0].digest()) == 32
    assert audio.get_all("rtpmap")[0] == sdp.Rtpmap(111, "opus", 48000, 2)
    assert audio.get_all("rtpmap")[2] == sdp.Rtpmap(9, "G722", 8000)
    assert audio.get_all("fmtp")[0].to_dict() == {"minptime": "10", "useinbandfec": "1"}
    assert audio.get_all("fmtp")[1] == sdp.Fmtp("63", "111/111")
    assert audio.get("rtcp-fb") == sdp.RtcpFb("111", "transport-cc")
    assert audio.get("extmap") == sdp.Extmap(
        1, "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
    )
    assert audio.get("ssrc") == sdp.Ssrc(3221602390, "cname", "Qw4xZ1+fH2bYpS0r")
    assert audio.get("msid") == sdp.Msid(
        "7c1a4a6e-3c2f-4b7b-9d3b-2f0f1d4e5a6b", "5e2b3a1c-9d8e-4f7a-b6c5-d4e3f2a1b0c9"
    )
    host, tcp, srflx = audio.candidates
    assert host == sdp.Candidate(
        "2999745851",
        1,
        "udp",
        2122260223,
        "192.168.1.23",
        54321,
        "host",
        extensions=(("generation", "0"), ("network-id", "1"), ("network-cost", "10")),
    )
    assert tcp.is_tcp and tcp.tcptype == "active" and tcp.port == 9
    assert (srflx.type, srflx.related_address, srflx.related_port) == (
        "srflx",
        "192.168.1.23",
        54321,
    )
    assert sdp.RtcpFb("96", "nack", "pli") in video.get_all("rtcp-fb")
    assert sdp.RtcpFb("96", "ccm", "fir") in video.get_all("rtcp-fb")
    assert video.get_all("rid") == [
        sdp.Rid("q", "send"),
        sdp.Rid("h", "send"),
        sdp.Rid("f", "send"),
    ]
    simulcast = video.get("simulcast")
    assert simulcast == sdp.Simulcast(
        send=((sdp.SimulcastRid("q"),), (sdp.SimulcastRid("h"),), (sdp.SimulcastRid("f"),))
    )
    assert simulcast.rids("send") == ["q", "h", "f"]
    assert data.kind == "application" and data.formats == ("webrtc-datachannel",)
    assert data.get("sctp-port") == 5000
    assert data.get("max-message-size") == 262144
    assert data.direction is None


def test_firefox_offer_typed():
    desc = sdp.parse(load("firefox_offer_simulcast.sdp"))
    assert desc.origin.username == "mozilla...THIS_IS_SDPARTA-120.0"
    # Firefox puts the fingerprint at session level.
    audio, video, _ = desc.media
    assert audio.fingerprints == []
    assert desc.session_or_media(audio, "fingerprint").hash_function == "sha-256"
    assert desc.get("ice-options") == ("trickle",)
    assert audio.get_all("extmap")[1] == sdp.Extmap(
        2, "urn:ietf:params:rtp-hdrext:csrc-audio-level", "recvonly"
    )
    assert audio.get_all("rtpmap")[1] == sdp.Rtpmap(9, "G722", 8000, 1)
    assert audio.get_all("fmtp")[1].to_dict() == {"0-15": None}
    fmtps = {f.format: f.to_dict() for f in video.get_all("fmtp")}
    assert fmtps["120"] == {"max-fs": "12288", "max-fr": "60"}
    assert fmtps["126"]["profile-level-id"] == "42e01f"
    groups = video.get_all("ssrc-group")
    assert groups[0] == sdp.SsrcGroup("FID", (3462216741, 1027491562))
    assert video.get("simulcast").rids("send") == ["q", "h", "f"]
    assert desc.media[2].get("max-message-size") == 1073741823


def test_safari_offer_typed():
    desc = sdp.parse(load("safari_offer.sdp"))
    audio, video = desc.media
    (cand,) = audio.candidates
    assert cand.address.endswith(".local")  # mDNS host candidate
    assert cand.extension("network-cost") == "999"
    assert video.get_all("rtpmap")[0] == sdp.Rtpmap(96, "H264", 90000)
    assert video.get_all("rtpmap")[4].encoding_name == "H265"
    assert video.get("ssrc-group") == sdp.SsrcGroup("FID", (1935294123, 3719058861))


def test_janus_answer_typed():
    desc = sdp.parse(load("janus_answer.sdp"))
    audio, video, data = desc.media
    assert audio.direction == "recvonly" and audio.setup == "active"
    assert [c.tcptype for c in audio.candidates] == [None, "active", "passive"]
    assert audio.has("end-of-candidates")
    assert video.get("simulcast").rids("recv") == ["q", "h", "f"]
    assert video.get("simulcast").send == ()
    assert data.direction == "sendrecv"


def test_mediasoup_answer_typed():
    desc = sdp.parse(load("mediasoup_answer.sdp"))
    assert desc.has("ice-lite")
    assert desc.get("fingerprint").hash_function == "sha-512"
    audio, video = desc.media
    assert audio.port == 7
    assert audio.get("ice-options") == ("renomination",)
    udp, tcp = audio.candidates
    assert udp.foundation == "udpcandidate" and udp.priority == 1076302079
    assert tcp.tcptype == "passive"
    assert video.get("simulcast").rids("recv") == ["r0", "r1", "r2"]
    assert video.get("x-google-flag") == "conference"  # unknown: kept raw
    assert video.bandwidths == {"TIAS": 2500000}
    assert video.lines[-1].raw == "b=TIAS:2500000"  # out of RFC order, kept


def test_icelite_server_answer_typed():
    desc = sdp.parse(load("icelite_server_answer.sdp"))
    assert desc.has("ice-lite")
    video, audio = desc.media
    assert video.bandwidths == {"AS": 2000, "TIAS": 2000000}
    assert video.fields("b") == [sdp.Bandwidth("AS", 2000), sdp.Bandwidth("TIAS", 2000000)]
    assert video.get("ice-options") == ("trickle", "ice2")
    assert video.get("tls-id") == "89J2LRATQ3ULA24G9AHWVR31VJWSLB68"
    assert video.has("rtcp-mux-only")
    assert video.get("extmap", None) == sdp.Extmap(2, "urn:ietf:params:rtp-hdrext:sdes:mid")
    attr = video.get("imageattr")
    assert attr.format == "96"
    assert attr.max_resolution("send") == (1280, 720)
    assert attr.max_resolution("recv") == (1280, 720)
    assert video.get("framerate") == 30.0
    assert video.get("content") == ("slides",)
    assert video.get("rtcp-fb") == sdp.RtcpFb("96", "nack")
    assert sdp.RtcpFb("96", "trr-int", "100") in video.get_all("rtcp-fb")
    assert [c.address for c in video.candidates][2] == "2001:db8::1"
    assert audio.port == 0 and audio.rejected and audio.direction == "inactive"


def test_aiortc_offer_typed():
    desc = sdp.parse(load("aiortc_offer.sdp"))
    audio = desc.media[0]
    assert len(audio.fingerprints) == 3
    assert audio.connection.address_type == "IP4"
    assert audio.has("end-of-candidates")
    video = desc.media[1]
    fmtps = {f.format: f.to_dict() for f in video.get_all("fmtp")}
    assert fmtps["98"] == {"apt": "97"}


def test_live_chromium_offer_typed():
    # Captured from Chromium 156 (tests/sdp/chromium.py drives it).
    desc = sdp.parse(load("chromium156_offer_live.sdp"))
    assert desc.has("extmap-allow-mixed")
    audio, video, data = desc.media
    assert audio.get_all("rtpmap")[0] == sdp.Rtpmap(111, "opus", 48000, 2)
    assert video.direction == "sendonly"
    assert video.get("simulcast").rids("send") == ["q", "h", "f"]
    assert [r.id for r in video.get_all("rid")] == ["q", "h", "f"]
    assert all(c.extension("generation") == "0" for c in audio.candidates)
    assert data.get("sctp-port") == 5000
