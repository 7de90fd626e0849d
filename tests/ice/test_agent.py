"""The full agent on the simulated network: pairing, states, Ta, triggered checks,
peer-reflexive candidates, role conflicts, nomination, trickle, failure, bad input."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from netcore.errors import UsageError
from netcore.ice.agent import Agent, CheckState
from netcore.ice.events import ComponentFailed, PairNominated, PathSelected, RoleChanged
from netcore.sdp.candidate import Candidate
from netcore.testing.nodes import counter_random
from tests.ice.scenario import make_call, received_numbers, stream


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
    _, (payload, pair) = call.b.node.received[0]
    assert pair is call.b.agent.sending_pair()


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
    result = agent.handle_datagram(data, ("198.51.100.2", 5000), 0.0, (call.a.ip, 5000))
    if data and data[0] < 4:
        assert result is None  # STUN-looking input is consumed, never handed up
    agent.handle_timeout(0.1)


@settings(max_examples=100)
@given(st.binary(min_size=20, max_size=120))
def test_stun_shaped_garbage_is_counted_not_raised(body):
    call = make_call(turn=False, stun=False)
    data = b"\x00\x01" + len(body[4:]).to_bytes(2, "big") + b"\x21\x12\xa4\x42" + body[4:]
    call.a.agent.handle_datagram(data[: 20 + len(body[4:])], ("198.51.100.2", 5000), 0.0, (call.a.ip, 5000))
