"""The full agent on the simulated network: pairing, states, Ta, triggered checks,
peer-reflexive candidates, role conflicts, nomination, trickle, failure, bad input."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from netcore.errors import UsageError
from netcore.ice.agent import Agent, CheckState
from netcore.ice.events import ComponentFailed, DataReceived, PairNominated, PathSelected, RoleChanged
from netcore.net import Receive
from netcore.sdp.candidate import Candidate
from netcore.testing.nodes import counter_random
from tests.ice.scenario import make_call, received, received_numbers, stream


def events(side, kind):
    return [e for e in side.node.events if isinstance(e, kind)]


def test_two_public_hosts_connect_on_the_host_pair_and_agree():
    call = make_call(turn=False, stun=False)
    assert call.run_until_connected(5)
    a, b = call.a.agent, call.b.agent
    assert a.nominated_pair().local.type == "host" and a.nominated_pair().remote.type == "host"
    # Both sides compute the same pair priority for the pair they agree on (section 6.1.2.3).
    assert a.nominated_pair().priority == b.nominated_pair().priority
    assert a.nominated_pair().remote.address == b.nominated_pair().local.address
    assert [e.reason for e in events(call.a, PathSelected)] == ["nominated"]
    assert len(events(call.b, PairNominated)) == 1
    assert call.net.now < 0.5


def test_application_data_arrives_with_its_pair():
    call = make_call(turn=False, stun=False)
    assert call.run_until_connected(5)
    stream(call, call.a, call.net.now, 10)
    call.net.run(until=call.net.now + 1)
    assert received_numbers(call.b) == list(range(10))
    first = received(call.b)[0]
    assert first.pair is call.b.agent.sending_pair() and first.component == 1


def test_data_before_selection_is_refused_not_queued():
    agent = Agent(True, random=counter_random(1))
    assert agent.send(b"\x80\x00", 0.0) is False
    assert agent.dropped == 1


def test_checks_are_paced_by_ta():
    call = make_call(turn=False, stun=False, ta=0.05)
    for i in range(20):  # unreachable candidates keep the check list busy
        call.a.agent.add_remote_candidate(
            Candidate(f"x{i}", 1, "udp", 1000 + i, f"198.51.100.{100 + i}", 9, "host"), 0.0)
    call.net.run(until=0.5)
    # At most one new check every Ta (plus retransmissions, which are not counted).
    assert call.a.agent.checks_sent <= 0.5 / 0.05 + 2


def test_unreachable_pairs_fail_and_the_component_fails_after_end_of_candidates():
    call = make_call(turn=False, stun=False, check_rc=2)
    call.net.block(call.a.ip, call.b.ip)
    call.net.run(until=20)
    for side in (call.a, call.b):
        assert all(p.state is CheckState.FAILED for p in side.agent.pairs)
        assert events(side, ComponentFailed) == [ComponentFailed(1)]
        assert not side.agent.connected


def test_remote_without_signalled_candidates_is_learnt_as_peer_reflexive():
    # B signals nothing: A learns B from B's checks (section 7.3.1.3) and answers
    # with a triggered check (section 7.3.1.4).
    call = make_call(turn=False, stun=False, signal_b=False)
    assert call.run_until_connected(5)
    assert call.a.agent.nominated_pair().remote.type == "prflx"


def test_trickled_late_candidates_still_connect():
    call = make_call("full-cone", "port-restricted-cone", signal_delay=1.5)
    assert call.run_until_connected(10)
    assert not call.a.agent.sending_pair().relayed


def test_both_controlling_resolve_by_tie_breaker():
    call = make_call(turn=False, stun=False)
    call.b.agent.controlling = True  # a misconfigured peer: both claim controlling
    assert call.run_until_connected(5)
    a, b = call.a.agent, call.b.agent
    assert a.controlling != b.controlling
    winner = a if a.tie_breaker >= b.tie_breaker else b
    assert winner.controlling
    loser = call.b if winner is a else call.a
    assert events(loser, RoleChanged) == [RoleChanged(False)]


def test_both_controlled_resolve_by_tie_breaker():
    call = make_call(turn=False, stun=False)
    call.a.agent.controlling = False
    assert call.run_until_connected(5)
    a, b = call.a.agent, call.b.agent
    assert a.controlling != b.controlling
    assert (a if a.tie_breaker >= b.tie_breaker else b).controlling


def test_controlled_agent_follows_the_nomination():
    call = make_call("full-cone", "symmetric")
    assert call.run_until_connected(10)
    mine, theirs = call.a.agent.nominated_pair(), call.b.agent.nominated_pair()
    assert mine.nominated and theirs.nominated
    # The same path seen from both ends: B's local is its NAT mapping (peer-reflexive).
    assert mine.local.address == theirs.remote.address
    assert mine.remote.address == theirs.local.address
    assert theirs.local.type == "prflx"


def test_changing_remote_credentials_without_restart_is_a_usage_error():
    agent = Agent(True, random=counter_random(1))
    agent.set_remote_credentials("abcd", "x" * 22)
    try:
        agent.set_remote_credentials("efgh", "y" * 22)
    except UsageError:
        return
    raise AssertionError("expected UsageError")


def test_same_seed_same_run():
    runs = []
    for _ in range(2):
        call = make_call("restricted-cone", "symmetric", seed=7)
        call.run_until_connected(10)
        runs.append((call.net.now, call.a.agent.checks_sent, call.b.agent.checks_sent,
                     repr(call.a.agent.sending_pair())))
    assert runs[0] == runs[1]


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_arbitrary_datagrams_never_raise(data):
    call = make_call(turn=False, stun=False)
    agent = call.a.agent
    agent.handle_datagram(Receive(data, ("198.51.100.2", 5000), (call.a.ip, 5000)), 0.0)
    delivered = [e for e in iter(agent.poll_event, None) if isinstance(e, DataReceived)]
    if data and data[0] < 4:
        assert delivered == []  # STUN-looking input is consumed, never handed up
    agent.handle_timeout(0.1)


def _stun_shaped_garbage():
    """A STUN first byte and magic cookie, then a body that breaks RFC 8489 section 5/14:
    a length field that does not match, or an attribute running past the end."""
    tid = st.binary(min_size=12, max_size=12)
    wrong_length = st.tuples(st.integers(0, 0xFFFF), tid, st.binary(max_size=100)).filter(
        lambda t: t[0] != len(t[2])).map(lambda t: t[0].to_bytes(2, "big") + _COOKIE + t[1] + t[2])
    overrun = st.tuples(tid, st.integers(0, 0xFFFF), st.binary(max_size=24)).map(
        lambda t: (4 * ((len(t[2]) + 3) // 4 + 1)).to_bytes(2, "big") + _COOKIE + t[0]
        + t[1].to_bytes(2, "big") + (4 * ((len(t[2]) + 3) // 4) + 4).to_bytes(2, "big")
        + t[2].ljust(4 * ((len(t[2]) + 3) // 4), b"\0"))
    return st.one_of(wrong_length, overrun).map(lambda rest: b"\x00\x01" + rest)


_COOKIE = b"\x21\x12\xa4\x42"


@settings(max_examples=100)
@given(_stun_shaped_garbage())
def test_stun_shaped_garbage_is_counted_not_raised(data):
    call = make_call(turn=False, stun=False)
    agent = call.a.agent
    while agent.poll_event() is not None:
        pass
    agent.handle_datagram(Receive(data, ("198.51.100.2", 5000), (call.a.ip, 5000)), 0.0)
    assert agent.parse_errors == 1
    assert agent.poll_transmit() is None and agent.poll_event() is None  # dropped, not answered or handed up


def _direct_pair(addresses_a, addresses_b, socket_components=None, **options):
    from netcore.testing.nodes import add_agent
    from netcore.testing.simnet import Network

    net = Network(5)
    for address in addresses_a + addresses_b:
        if address[0] not in net._realm_of:
            net.add_host(address[0])
    a = Agent(True, random=counter_random(1), **options)
    b = Agent(False, random=counter_random(2), **options)
    nodes = [add_agent(net, a, addresses_a, socket_components), add_agent(net, b, addresses_b, socket_components)]
    for me, peer, node in ((a, b, nodes[0]), (b, a, nodes[1])):
        me.gather(0.0)
        me.set_remote_credentials(peer.local_ufrag, peer.local_pwd, 0.0)
    for me, peer, node in ((a, b, nodes[0]), (b, a, nodes[1])):
        for candidate in peer.local_candidates:
            me.add_remote_candidate(candidate, 0.0)
        me.add_remote_candidate(None, 0.0)
        node.flush()
    return net, a, b


def test_ipv6_hosts_pair_only_with_their_family():
    net, a, b = _direct_pair([("2001:db8::1", 5000), ("192.0.2.1", 5000)],
                             [("2001:db8::2", 5000), ("192.0.2.2", 5000)])
    assert len(a.pairs) == 2  # v6-v6 and v4-v4, never mixed
    assert net.run(until=5, stop=lambda: a.connected and b.connected)
    # Section 5.1.2.1: IPv6 gets the higher local preference, so its pair wins.
    assert a.nominated_pair().remote.address == ("2001:db8::2", 5000)


def test_two_components_each_complete():
    net, a, b = _direct_pair([("192.0.2.1", 5000), ("192.0.2.1", 5001)],
                             [("192.0.2.2", 5000), ("192.0.2.2", 5001)], [1, 2], components=2)
    assert net.run(until=5, stop=lambda: a.connected and b.connected)
    assert {a.nominated_pair(1).local.address[1], a.nominated_pair(2).local.address[1]} == {5000, 5001}
    assert a.nominated_pair(2).component == 2
    # Section 6.1.2.6: component 2 starts frozen behind component 1 of the same foundation.
    assert a.nominated_pair(2).priority < a.nominated_pair(1).priority


def test_server_reflexive_equal_to_host_is_pruned():
    call = make_call(turn=False)  # public hosts: the STUN server sees the host address itself
    call.net.run(until=2)
    assert [c.type for c in call.a.agent.local_candidates] == ["host"]


def test_response_from_another_address_fails_the_pair():
    from netcore.stun import attributes as sa
    from netcore.stun.message import BINDING, Message, MessageClass

    call = make_call(turn=False, stun=False)
    a = call.a.agent
    call.net.block(call.a.ip, call.b.ip)
    call.net.run(until=0.07)  # the candidates arrive after the 50 ms signalling delay
    pair = a.pairs[0]
    assert pair.state is CheckState.IN_PROGRESS
    tid = next(t for t, r in a._routes.items() if r.pair is pair)
    response = Message(BINDING, MessageClass.SUCCESS, tid).add(sa.XOR_MAPPED_ADDRESS, (call.a.ip, 5000))
    data = response.encode(a._remote_key, fingerprint=True)
    a.handle_datagram(Receive(data, ("198.51.100.99", 5000), (call.a.ip, 5000)), 0.08)  # section 7.2.5.2.1
    assert pair.state is CheckState.FAILED


@settings(max_examples=100)
@given(st.binary(max_size=120))
def test_garbage_from_the_turn_server_never_raises(data):
    from tests.ice.scenario import TURN

    call = make_call(stun=False)
    call.net.run(until=0.5)  # allocations done
    agent = call.a.agent
    assert agent.gathering_complete
    agent.handle_datagram(Receive(data, TURN, (call.a.ip, 5000)), call.net.now)
    agent.handle_timeout(call.net.now)


def test_malformed_mapped_address_in_an_authentic_response_fails_nothing_open():
    from netcore.stun import attributes as sa
    from netcore.stun.message import BINDING, Message, MessageClass

    call = make_call(turn=False, stun=False)
    a = call.a.agent
    call.net.block(call.a.ip, call.b.ip)
    call.net.run(until=0.07)
    pair = a.pairs[0]
    tid = next(t for t, r in a._routes.items() if r.pair is pair)
    response = Message(BINDING, MessageClass.SUCCESS, tid).add_raw(sa.XOR_MAPPED_ADDRESS, b"\x00\x09\x00")
    a.handle_datagram(Receive(response.encode(a._remote_key, fingerprint=True), pair.remote.address,
                              (call.a.ip, 5000)), 0.08)
    assert pair.state is CheckState.SUCCEEDED  # authentic and symmetric; the mapping is unknown
    assert a.parse_errors == 0


def test_a_malformed_remote_candidate_is_a_parse_error():
    from netcore.errors import ParseError
    from netcore.sdp.errors import CandidateError

    try:
        Candidate.parse("candidate:1 1 udp 2130706431 192.0.2.1 99999 typ host")
    except ParseError as exc:
        assert isinstance(exc, CandidateError) and isinstance(exc, ValueError)
        return
    raise AssertionError("expected a ParseError")


def test_a_datagram_for_a_socket_the_agent_does_not_own_is_dropped():
    call = make_call(turn=False, stun=False)
    agent = call.a.agent
    while agent.poll_event() is not None:
        pass
    before = agent.dropped
    agent.handle_datagram(Receive(b"\x80\x00data", ("198.51.100.2", 5000), ("192.0.2.99", 9)), 0.0)
    agent.handle_datagram(Receive(b"\x80\x00data", ("198.51.100.2", 5000), None), 0.0)
    assert agent.dropped == before + 2 and agent.poll_event() is None


def _deadline_is_current(call, seconds: float) -> list[bool]:
    """Stream data both ways for ``seconds`` (consent checks included) and, every 10 ms of virtual
    time, whether each agent's next_deadline() (kept between inputs) is what its state says now."""
    stream(call, call.a, call.net.now, int(seconds / 0.02))
    stream(call, call.b, call.net.now, int(seconds / 0.02))
    checks: list[bool] = []

    def check() -> None:
        for side in (call.a, call.b):
            checks.append(side.agent.next_deadline() == side.agent._compute_deadline())
    start = call.net.now
    for i in range(int(seconds / 0.01)):
        call.net.call_at(start + i * 0.01 + 0.005, check)
    call.net.run(until=start + seconds)
    return checks


def test_the_deadline_kept_between_inputs_follows_data_checks_and_relays():
    direct = make_call(turn=False, stun=False)
    assert direct.run_until_connected(5)
    relayed = make_call(relay_only=True)
    assert relayed.run_until_connected(10)
    assert relayed.a.agent.sending_pair().local.type == "relay"
    for call in (direct, relayed):
        checks = _deadline_is_current(call, 12.0)  # two consent rounds
        assert len(checks) >= 2000 and all(checks)
        assert received_numbers(call.b)[:5] == list(range(5))
