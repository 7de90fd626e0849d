"""A transport whose ICE policy is relay-only: media through our TURN server, the paths say relayed."""

from __future__ import annotations

from netcore.ice.gathering import TurnServerConfig
from netcore.peer.events import CandidateGathered, Direction, GatheringCompleted, PathChanged
from netcore.peer.transport import MediaTransport
from netcore.testing.nodes import add_turn_server
from netcore.testing.simnet import PUBLIC, Link, Network
from tests.peer.harness import A_IP, B_IP, Call, VideoSink, VideoSource, transport_config

TURN = ("203.0.113.2", 3478)


def test_relay_only_transport_sends_and_receives_through_turn():
    net = Network(5)
    for ip in (A_IP, B_IP, TURN[0]):
        net.add_host(ip, PUBLIC, Link(delay=0.01))
    add_turn_server(net, TURN, {"user": "pass"})
    a = MediaTransport(transport_config("a", turn_servers=(TurnServerConfig(TURN, "user", "pass"),),
                                        ice_relay_only=True))
    b = MediaTransport(transport_config("b"))
    a.ice.add_local_address((A_IP, 5000))
    b.ice.add_local_address((B_IP, 6000))
    call = Call(net, a, b, net.add_node(a, [(A_IP, 5000)]), net.add_node(b, [(B_IP, 6000)]))

    def trickle(source_node, target, target_node):
        def on_event(event):
            if isinstance(event, CandidateGathered):
                target.add_remote_candidate(event.candidate, net.now)
                target_node.flush()
            elif isinstance(event, GatheringCompleted):
                target.add_remote_candidate(None, net.now)
                target_node.flush()
        source_node.on_event = on_event
    trickle(call.node_a, b, call.node_b)
    trickle(call.node_b, a, call.node_a)
    a.start(0.0)
    b.start(0.0)
    call.node_a.flush()
    call.node_b.flush()
    call.connect(until=10.0)
    sink = VideoSink(call, "b")
    source = VideoSource(call, "a")
    source.start(20)
    call.run(1.5)
    assert sink.numbers == list(range(20))
    sent_a = [e for e in call.events("a", PathChanged) if e.direction is Direction.SEND]
    received_b = [e for e in call.events("b", PathChanged) if e.direction is Direction.RECEIVE]
    assert sent_a and sent_a[-1].relayed and sent_a[-1].local[0] == TURN[0]
    assert received_b and received_b[-1].relayed and received_b[-1].remote[0] == TURN[0]
    assert all(c.type == "relay" for c in a.ice.local_candidates)
