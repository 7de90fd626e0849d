"""ICE-lite (RFC 8445 section 2.5): host candidates only, answers checks, follows nomination."""

from __future__ import annotations

from netcore.ice.agent import Agent
from netcore.ice.events import CandidateGathered, DataReceived, PairNominated, PathSelected
from netcore.testing.nodes import add_agent, counter_random
from netcore.testing.simnet import PUBLIC, Link, Network


def lite_call(nat: str | None = None):
    net = Network(1)
    server_ip = net.add_host("203.0.113.10", PUBLIC, Link(delay=0.01))
    if nat:
        from netcore.testing.simnet import NAT_TYPES

        net.add_nat("nat", "198.51.100.1", *NAT_TYPES[nat], link=Link(delay=0.01))
        client_ip = net.add_host("10.0.1.2", "nat", Link(delay=0.001))
    else:
        client_ip = net.add_host("198.51.100.1", PUBLIC, Link(delay=0.01))
    # The server asks to be controlling: a lite agent is controlled whatever it is told.
    server = Agent(True, lite=True, stun_servers=(("203.0.113.1", 3478),), random=counter_random(1))
    client = Agent(True, random=counter_random(2))
    server_node = add_agent(net, server, [(server_ip, 443)])
    client_node = add_agent(net, client, [(client_ip, 5000)])
    server.gather(0.0)
    client.gather(0.0)
    client.set_remote_credentials(server.local_ufrag, server.local_pwd, 0.0)
    server.set_remote_credentials(client.local_ufrag, client.local_pwd, 0.0)
    for candidate in server.local_candidates:
        client.add_remote_candidate(candidate, 0.0)
    client.add_remote_candidate(None, 0.0)
    server_node.flush()
    client_node.flush()
    return net, server, client, server_node, client_node


def test_lite_server_has_host_candidates_only_and_is_controlled():
    _, server, _, server_node, _ = lite_call()
    assert not server.controlling
    assert [c.type for c in server.local_candidates] == ["host"]
    assert [e.candidate.type for e in server_node.events if isinstance(e, CandidateGathered)] == ["host"]


def test_lite_answers_and_follows_the_nomination():
    net, server, client, server_node, _ = lite_call()
    assert net.run(until=5, stop=lambda: server.connected and client.connected)
    assert server.checks_sent == 0  # a lite agent never checks
    assert server.checks_received >= 2
    nominated = server.nominated_pair()
    assert nominated.remote.address == client.nominated_pair().local.address
    assert [type(e) for e in server_node.events if isinstance(e, (PairNominated, PathSelected))] == \
        [PairNominated, PathSelected]


def test_client_behind_symmetric_nat_reaches_a_lite_server():
    net, server, client, _, client_node = lite_call("symmetric")
    assert net.run(until=5, stop=lambda: server.connected and client.connected)
    assert server.nominated_pair().remote.type == "prflx"  # learnt from the NAT mapping
    client.send(b"\x80\x00hello", net.now)
    client_node.flush()
    net.run(until=net.now + 1)
    server_node = net._nodes[(server.nominated_pair().local.socket)]
    server_received = [e.data for e in server_node.events if isinstance(e, DataReceived)]
    assert server_received and server_received[0] == b"\x80\x00hello"
    # and back, on the pair the lite server selected
    server.send(b"\x80\x00back", net.now)
    server_node.flush()
    net.run(until=net.now + 1)
    assert [e.data for e in client_node.events if isinstance(e, DataReceived)][-1] == b"\x80\x00back"
