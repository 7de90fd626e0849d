"""Mid-call: consent freshness (RFC 7675), path switches, ICE restart (RFC 8445 section 9)."""

from __future__ import annotations

from netcore.ice.events import ConsentLost, PathDegraded, PathSelected, ConnectionLost
from tests.ice.scenario import exchange_credentials, make_call, received, received_numbers, stream

INTERVAL = 0.02  # one datagram every 20 ms, each way


def events(side, kind):
    return [e for e in side.node.events if isinstance(e, kind)]


def connected_call(**options):
    call = make_call(**options)
    assert call.run_until_connected(10)
    call.net.run(until=call.net.now + 3)  # let the backup (relayed) pairs become valid
    assert any(p.relayed for p in call.a.agent.valid_pairs)
    assert any(p.relayed for p in call.b.agent.valid_pairs)
    return call


def test_consent_keeps_the_selected_pair_fresh_for_minutes():
    call = connected_call()
    pair = call.a.agent.sending_pair()
    call.net.run(until=call.net.now + 120)
    assert call.a.agent.sending_pair() is pair
    assert not events(call.a, PathDegraded) and not events(call.a, ConsentLost)
    assert pair.consent.last_granted > call.net.now - 7  # answered every 4-6 s


def test_direct_path_cut_mid_stream_moves_both_directions_to_the_relay():
    call = connected_call(consent_interval=1.0)
    assert not call.a.agent.sending_pair().relayed
    start = call.net.now
    count = 1000  # 20 s of traffic
    stream(call, call.a, start, count, INTERVAL)
    stream(call, call.b, start, count, INTERVAL)
    cut = start + 5
    call.net.call_at(cut, call.net.block, call.a.ip, call.b.ip)
    call.net.run(until=start + count * INTERVAL + 1)
    for side, peer in ((call.a, call.b), (call.b, call.a)):
        switches = [e for e in events(side, PathSelected) if e.reason != "nominated"]
        assert switches and switches[0].reason == "degraded" and switches[0].pair.relayed
        assert side.agent.sending_pair().relayed
        degraded = events(side, PathDegraded)[0]
        assert 1.5 <= degraded.silent_for <= 4.5  # raised about 2 s into the silence
        # Loss only inside the switch window: at most consent interval (1.2 s) + 2 s of silence.
        got = set(received_numbers(peer))
        lost = [n for n in range(count) if n not in got]
        window = (1.2 + 2.0 + 0.2) / INTERVAL
        assert len(lost) <= window, len(lost)
        assert all(cut - start - 0.1 <= n * INTERVAL <= cut - start + 3.5 for n in lost)
    call.net.run(until=call.net.now + 31)
    assert events(call.a, ConsentLost)  # the cut direct pair expires after 30 s


def test_each_side_switches_its_own_sending_path_on_rtt():
    # Only A has an RTT limit: after the direct path slows down, A sends through the
    # relay while B keeps sending direct.
    call = connected_call(consent_interval=1.0, a_options={"max_rtt": 0.2})
    call.net.path_delay[(call.a.ip, call.b.ip)] = 0.3
    call.net.run(until=call.net.now + 5)
    assert call.a.agent.sending_pair().relayed
    assert [e.reason for e in events(call.a, PathSelected)][-1] == "rtt"
    assert not call.b.agent.sending_pair().relayed
    start = call.net.now
    stream(call, call.a, start, 50)
    stream(call, call.b, start, 50)
    call.net.run(until=start + 3)
    assert received_numbers(call.b) == list(range(50))
    assert received_numbers(call.a) == list(range(50))
    assert received(call.b)[-1].pair.relayed  # B receives A's traffic on the relayed pair
    assert not received(call.a)[-1].pair.relayed


def test_loss_threshold_switches_the_path():
    # Half of B's answers to A are lost on the direct path: A sees about 50 % loss
    # on its consent checks there and moves to a relayed pair; B keeps its path.
    call = connected_call(consent_interval=0.5, a_options={"max_loss": 0.3, "switch_on_degraded": False})
    direct = call.a.agent.sending_pair()
    call.net.path_loss[(call.b.ip, call.a.ip)] = 0.5
    call.net.run(until=call.net.now + 30)
    assert call.a.agent.sending_pair() is not direct
    assert call.a.agent.sending_pair().relayed
    assert [e.reason for e in events(call.a, PathSelected)][-1] == "loss"
    assert direct.consent.loss > 0.3


def test_no_valid_alternative_asks_for_a_restart():
    call = make_call(turn=False, stun=False, consent_interval=1.0)
    assert call.run_until_connected(5)
    call.net.block(call.a.ip, call.b.ip)
    call.net.run(until=call.net.now + 35)
    assert events(call.a, ConnectionLost) == [ConnectionLost(1, "consent-lost")]
    assert call.a.agent.sending_pair() is None


def test_ice_restart_mid_stream_loses_nothing():
    call = connected_call()
    old_a = call.a.agent.sending_pair()
    start = call.net.now
    count = 250
    stream(call, call.a, start, count, INTERVAL)
    stream(call, call.b, start, count, INTERVAL)

    def restart():
        now = call.net.now
        call.a.agent.restart(now)
        call.b.agent.restart(now)
        exchange_credentials(call)  # candidates are re-announced through the trickle path
        call.a.node.flush()
        call.b.node.flush()

    call.net.call_at(start + 1.0, restart)
    call.net.run(until=start + 1.0 + 0.001)
    assert call.a.agent.sending_pair() is old_a  # media stays on the old pair meanwhile
    call.net.run(until=start + count * INTERVAL + 1)
    for side in (call.a, call.b):
        assert side.agent.generation == 1
        assert "restart" in [e.reason for e in events(side, PathSelected)]
        assert side.agent.nominated_pair().generation == 1
    assert received_numbers(call.b) == list(range(count))
    assert received_numbers(call.a) == list(range(count))


def test_restart_without_backup_checks_still_checks_the_new_generation():
    call = make_call(turn=False, stun=False, backup_pairs=False)
    assert call.run_until_connected(5)
    now = call.net.now
    call.a.agent.restart(now)
    call.b.agent.restart(now)
    exchange_credentials(call)
    call.a.node.flush()
    call.b.node.flush()
    call.net.run(until=now + 3)
    for side in (call.a, call.b):
        assert side.agent.nominated_pair().generation == 1
        assert [e.reason for e in events(side, PathSelected)] == ["nominated", "restart"]
