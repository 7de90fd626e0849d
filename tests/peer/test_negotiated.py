"""A transport configured from a real offer/answer (netcore.sdp) connects and carries media."""

from __future__ import annotations

from netcore.peer.config import SendLayer, config_from_negotiated
from netcore.peer.demux import RtpDemuxer
from netcore.peer.events import CandidateGathered, RtpReceived
from netcore.peer.transport import MediaTransport, TransportState
from netcore.rtp.packet import RtpPacket
from netcore.rtp.rtx import wrap_rtx
from netcore.sdp.attributes import Fingerprint
from netcore.sdp.jsep import Negotiator
from netcore.sdp.model import LocalTransport, MediaIntent
from netcore.testing.nodes import counter_random
from netcore.testing.simnet import PUBLIC, Link, Network
from tests.peer.harness import A_IP, B_IP, Call, VideoSink, VideoSource, certificate


def negotiate():
    offerer = Negotiator(LocalTransport((Fingerprint("sha-256", certificate("a").fingerprint()),)),
                         random=counter_random(5))
    answerer = Negotiator(LocalTransport((Fingerprint("sha-256", certificate("b").fingerprint()),)),
                          random=counter_random(6))
    offer = offerer.create_offer([MediaIntent.audio(ssrc=101), MediaIntent.video(ssrc=102, rtx_ssrc=103)])
    answer, answered = answerer.handle_offer(str(offer), [MediaIntent.audio(ssrc=201),
                                                          MediaIntent.video(ssrc=202, rtx_ssrc=203)])
    offered = offerer.handle_answer(str(answer))
    return offered, answered


def connected(config_a, config_b, link_a: Link | None = None) -> Call:
    """Two transports from a negotiation on the simulated network, candidates exchanged, connected."""
    net = Network(4)
    net.add_host(A_IP, PUBLIC, link_a or Link(delay=0.02))
    net.add_host(B_IP, PUBLIC, Link(delay=0.02))
    a, b = MediaTransport(config_a), MediaTransport(config_b)
    a.ice.add_local_address((A_IP, 5000))
    b.ice.add_local_address((B_IP, 6000))
    call = Call(net, a, b, net.add_node(a, [(A_IP, 5000)]), net.add_node(b, [(B_IP, 6000)]))
    a.start(0.0)
    b.start(0.0)
    call.node_a.flush()
    call.node_b.flush()
    for source, target, node in (("a", b, call.node_b), ("b", a, call.node_a)):
        for event in call.events(source, CandidateGathered):
            target.add_remote_candidate(event.candidate, 0.0)
        target.add_remote_candidate(None, 0.0)
        node.flush()
    call.connect()
    return call


def test_config_from_negotiated_maps_the_session():
    offered, answered = negotiate()
    config = config_from_negotiated(offered, certificate("a"), send_ssrcs={"0": (101, None), "1": (102, 103)})
    assert config.dtls_role == offered.dtls_role and config.ice_controlling
    assert config.remote_ufrag == answered.local_ice_ufrag and config.local_pwd == offered.local_ice_pwd
    assert config.remote_fingerprints == (("sha-256", certificate("b").fingerprint()),)
    assert [m.mid for m in config.media] == ["0", "1"]
    video = config.media[1]
    assert video.send_ssrc == 102 and video.send_rtx_ssrc == 103 and 202 in video.remote_ssrcs
    vp8 = next(c for c in video.codecs if c.name.upper() == "VP8")
    assert vp8.rtx_payload_type is not None and vp8.nack and vp8.pli
    assert config.mid_extension is not None and config.twcc_extension is not None


def test_transports_from_a_negotiation_connect_and_carry_video():
    offered, answered = negotiate()
    call = connected(config_from_negotiated(offered, certificate("a"), send_ssrcs={"0": (101, None), "1": (102, 103)},
                                            random=counter_random(7)),
                     config_from_negotiated(answered, certificate("b"), send_ssrcs={"0": (201, None), "1": (202, 203)},
                                            random=counter_random(8)))
    a = call.a
    assert a.state is TransportState.CONNECTED
    vp8 = next(c for c in a.config.media[1].codecs if c.name.upper() == "VP8")
    source = VideoSource(call, "a", payload_type=vp8.payload_type)
    sink = VideoSink(call, "b")
    source.start(20)
    call.run(1.5)
    assert sink.numbers == list(range(20))


def test_rtx_ssrcs_of_the_peers_fid_group_route_as_retransmissions():
    # Browsers signal their RTX SSRC with a=ssrc-group:FID and send probe padding and
    # retransmissions on it from the start: it must not be taken for a media SSRC.
    offered, answered = negotiate()
    config = config_from_negotiated(answered, certificate("b"), send_ssrcs={"0": (201, None), "1": (202, 203)})
    video = config.media[1]
    assert video.remote_ssrcs == (102,) and video.remote_rtx_ssrcs == ((102, 103),)
    vp8 = next(c for c in video.codecs if c.name.upper() == "VP8")
    demux = RtpDemuxer(config.media, config.mid_extension)
    original = RtpPacket.build(payload_type=vp8.payload_type, sequence_number=7, timestamp=1, ssrc=102,
                               payload=b"\x10frame")
    route = demux.route(wrap_rtx(original, vp8.rtx_payload_type, 500, 103))
    assert route is not None and route.rtx and route.media_ssrc == 102 and route.media is video


def test_simulcast_layers_negotiated_sent_with_rids_and_routed_by_them_with_their_repairs():
    """RFC 8853 send side to receive side: three layers, each its own SSRC and RTX SSRC, none signalled
    (a=rid/a=simulcast only); the receiver learns each from its RID and repairs from the repaired RID."""
    offerer = Negotiator(LocalTransport((Fingerprint("sha-256", certificate("a").fingerprint()),)),
                         random=counter_random(5))
    answerer = Negotiator(LocalTransport((Fingerprint("sha-256", certificate("b").fingerprint()),)),
                          random=counter_random(6))
    offer = offerer.create_offer([MediaIntent.video(direction="sendonly", simulcast=("q", "h", "f"))])
    assert "a=simulcast:send q;h;f" in str(offer) and "a=ssrc:" not in str(offer)
    answer, answered = answerer.handle_offer(str(offer), [MediaIntent.video(direction="recvonly")])
    offered = offerer.handle_answer(str(answer))
    assert offered.media[0].send_rids == ("q", "h", "f") and answered.media[0].recv_rids == ("q", "h", "f")
    layers = tuple(SendLayer(rid, 0x100 * (i + 1), 0x100 * (i + 1) + 1) for i, rid in enumerate(("q", "h", "f")))
    config_a = config_from_negotiated(offered, certificate("a"), send_ssrcs={"0": (1, 2)},
                                      send_layers={"0": layers}, random=counter_random(7))
    assert config_a.media[0].send_layers == layers and config_a.media[0].send_ssrc == 0x100
    config_b = config_from_negotiated(answered, certificate("b"), random=counter_random(8))
    assert config_b.media[0].rids == ("q", "h", "f") and config_b.media[0].remote_ssrcs == ()
    call = connected(config_a, config_b, Link(delay=0.02, loss=0.1))
    a, b, net = call.a, call.b, call.net
    pt = offered.media[0].send_codec.payload_type
    for seq in range(100):
        for layer in layers:
            packet = RtpPacket.build(payload_type=pt, sequence_number=seq, timestamp=seq * 3000, ssrc=layer.ssrc,
                                     payload=b"\x10" + bytes(100))
            a.send_rtp(packet, net.now)
        call.node_a.flush()
        call.run(1 / 30)
    call.run(1.0)
    received = call.events("b", RtpReceived)
    for layer in layers:
        got = [e for e in received if e.ssrc == layer.ssrc]
        assert {e.rid for e in got} == {layer.rid}
        assert sorted({e.packet.sequence_number for e in got}) == list(range(100))  # losses repaired
    assert any(e.retransmitted for e in received)
    assert {r.rid for s, r in b.demux.routes.items() if r.rtx and r.media_ssrc is not None} == {"q", "h", "f"}
