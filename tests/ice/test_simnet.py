"""The simulated network itself: RFC 4787 mapping and filtering, links, determinism."""

from __future__ import annotations

import pytest

from netcore.net import Receive, Transmit
from netcore.testing.simnet import NAT_TYPES, PUBLIC, Behavior, Link, Network

EIM = Behavior.ENDPOINT_INDEPENDENT
ADM = Behavior.ADDRESS_DEPENDENT
APDM = Behavior.ADDRESS_AND_PORT_DEPENDENT


class Sink:
    """A core that records ``(data, source, now)`` of what it receives and sends what it is told to."""

    def __init__(self):
        self.got = []
        self.out = []

    def handle_datagram(self, datagram: Receive, now: float) -> None:
        self.got.append((datagram.data, datagram.source, now))

    def handle_timeout(self, now):
        pass

    def poll_transmit(self):
        return Transmit(*self.out.pop(0)) if self.out else None

    def poll_event(self):
        return None

    def next_deadline(self):
        return None


def network(mapping, filtering):
    net = Network(1)
    net.add_nat("nat", "198.51.100.1", mapping, filtering)
    inside = Sink()
    node = net.add_node(inside, [(net.add_host("10.0.0.2", "nat"), 5000)])
    servers = {}
    for ip in ("203.0.113.1", "203.0.113.2"):
        net.add_host(ip)
        for port in (3478, 3479):
            sink = Sink()
            servers[(ip, port)] = sink
            net.add_node(sink, [(ip, port)])
    return net, inside, node, servers


def send_out(net, node, inside, dst):
    inside.out.append((b"x", dst))
    node.flush()
    net.run()


@pytest.mark.parametrize("mapping,same_port_other_port,same_port_other_host", [
    (EIM, True, True), (ADM, True, False), (APDM, False, False)])
def test_mapping_behaviours(mapping, same_port_other_port, same_port_other_host):
    net, inside, node, servers = network(mapping, EIM)
    for dst in servers:
        send_out(net, node, inside, dst)
    seen = {dst: servers[dst].got[0][1] for dst in servers}
    assert all(src[0] == "198.51.100.1" for src in seen.values())
    a = seen[("203.0.113.1", 3478)]
    assert (seen[("203.0.113.1", 3479)] == a) == same_port_other_port
    assert (seen[("203.0.113.2", 3478)] == a) == same_port_other_host


@pytest.mark.parametrize("filtering,from_other_port,from_other_host", [
    (EIM, True, True), (ADM, True, False), (APDM, False, False)])
def test_filtering_behaviours(filtering, from_other_port, from_other_host):
    net, inside, node, servers = network(EIM, filtering)
    send_out(net, node, inside, ("203.0.113.1", 3478))
    mapped = servers[("203.0.113.1", 3478)].got[0][1]
    for server, expected in ((("203.0.113.1", 3478), True), (("203.0.113.1", 3479), from_other_port),
                             (("203.0.113.2", 3478), from_other_host)):
        before = len(inside.got)
        replier = servers[server]
        replier.out.append((b"y", mapped))
        net._nodes[server].flush()
        net.run()
        assert (len(inside.got) == before + 1) == expected, server


def test_unsolicited_inbound_is_dropped_and_mappings_expire():
    net, inside, node, servers = network(EIM, EIM)
    servers[("203.0.113.1", 3478)].out.append((b"y", ("198.51.100.1", 40000)))
    net._nodes[("203.0.113.1", 3478)].flush()
    net.run()
    assert inside.got == []
    send_out(net, node, inside, ("203.0.113.1", 3478))
    mapped = servers[("203.0.113.1", 3478)].got[0][1]
    net.run(until=net.now + 121)  # RFC 4787 REQ-5: two minutes
    servers[("203.0.113.1", 3478)].out.append((b"y", mapped))
    net._nodes[("203.0.113.1", 3478)].flush()
    net.run()
    assert inside.got == []


def test_link_loss_delay_and_determinism():
    def run(seed):
        net = Network(seed)
        a, b = Sink(), Sink()
        net.add_host("203.0.113.1", PUBLIC, Link(delay=0.03, jitter=0.01, loss=0.25))
        net.add_host("203.0.113.2")
        node = net.add_node(a, [("203.0.113.1", 1)])
        net.add_node(b, [("203.0.113.2", 1)])
        a.out.extend((bytes([i % 256]), ("203.0.113.2", 1)) for i in range(2000))
        node.flush()
        net.run()
        return [now for _, _, now in b.got]

    got = run(4)
    assert 0.70 * 2000 < len(got) < 0.80 * 2000
    assert min(got) >= 0.03 and max(got) < 0.04  # the sender's link: delay plus jitter
    assert run(4) == got and run(5) != got


def test_classic_nat_names():
    assert NAT_TYPES["symmetric"] == (APDM, APDM)
    assert NAT_TYPES["port-restricted-cone"] == (EIM, APDM)
    assert NAT_TYPES["none"] is None
