"""The check-state transition table is what the code runs (RFC 8445 section 6.1.2.6)."""

from __future__ import annotations

import re

import pytest

import netcore.ice.pairs as pairs_module
from netcore.errors import UsageError
from netcore.ice.pairs import TRANSITIONS, CandidatePair, CheckEvent, CheckState, LocalCandidate, RemoteCandidate
from netcore.sdp.candidate import Candidate


def a_pair(state: CheckState = CheckState.FROZEN) -> CandidatePair:
    local = LocalCandidate(Candidate("1", 1, "udp", 2130706431, "192.0.2.1", 5000, "host"),
                           ("192.0.2.1", 5000), ("192.0.2.1", 5000), 65535)
    remote = RemoteCandidate(Candidate("2", 1, "udp", 2130706175, "192.0.2.2", 5000, "host"), 0)
    return CandidatePair(local, remote, True, 0, state)


@pytest.mark.parametrize("state", list(CheckState))
@pytest.mark.parametrize("event", list(CheckEvent))
def test_a_pair_moves_only_along_the_table(state, event):
    pair = a_pair(state)
    if (state, event) in TRANSITIONS:
        assert pair.accepts(event)
        assert pair.apply(event) is TRANSITIONS[(state, event)] is pair.state
    else:
        assert not pair.accepts(event)
        with pytest.raises(UsageError):
            pair.apply(event)
        assert pair.state is state


def test_nothing_returns_to_frozen_and_a_frozen_pair_has_no_outcome():
    assert CheckState.FROZEN not in TRANSITIONS.values()
    outcomes = (CheckEvent.SUCCESS, CheckEvent.FAILURE, CheckEvent.NOT_SYMMETRIC, CheckEvent.ROLE_CONFLICT)
    assert not any((CheckState.FROZEN, event) in TRANSITIONS for event in outcomes)


def test_the_table_in_the_module_docstring_is_the_one_the_code_runs():
    rows = re.findall(r"^    (\w+)\s+(\w+)\s+(\w+)\s", pairs_module.__doc__, re.MULTILINE)
    rows = [row for row in rows if row[0] != "state"]
    assert len(rows) >= 10
    for state, event, new in rows:
        assert TRANSITIONS[(CheckState[state], CheckEvent[event])] is CheckState[new], (state, event)
