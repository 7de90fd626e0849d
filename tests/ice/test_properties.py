"""Properties over random networks: whatever the NATs, loss and seed, the two agents
agree on one path, every pair ends in a legal state, and role conflicts settle."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from netcore.ice.agent import CheckState
from netcore.testing.simnet import NAT_TYPES
from tests.ice.scenario import make_call

nat_types = st.sampled_from(list(NAT_TYPES))


@settings(max_examples=25)
@given(nat_types, nat_types, st.integers(0, 2**16), st.floats(0, 0.15), st.booleans(), st.booleans())
def test_agents_agree_and_states_are_legal(nat_a, nat_b, seed, loss, a_controls, b_controls):
    call = make_call(nat_a, nat_b, seed=seed)
    call.a.agent.controlling, call.b.agent.controlling = a_controls, b_controls  # conflicts included
    for side in (call.a, call.b):
        call.net.link(side.ip).loss = loss
    assert call.run_until_connected(60)
    call.net.run(until=call.net.now + 2)
    a, b = call.a.agent, call.b.agent
    assert a.controlling != b.controlling  # section 7.3.1.1 always settles the roles
    mine, theirs = a.nominated_pair(), b.nominated_pair()
    assert mine.local.address == theirs.remote.address and mine.remote.address == theirs.local.address
    assert mine.relayed == theirs.relayed
    for agent in (a, b):
        for pair in agent.pairs:
            assert pair.state in CheckState
            if pair.valid_pair is not None:
                assert pair.state is CheckState.SUCCEEDED
        for pair in agent.valid_pairs:
            assert pair.state is CheckState.SUCCEEDED and pair.valid
        assert agent.nominated_pair().nominated and agent.nominated_pair() in agent.valid_pairs
