"""The allocation events keep their dataclass behaviour with the constructor that fills slots directly."""

from __future__ import annotations

import dataclasses

import pytest

from netcore.turn.server_events import AllocationDeleted, AllocationGranted, AllocationRenewed

CLIENT, LISTENER = ("198.51.100.7", 40000), ("192.0.2.1", 3478)


@pytest.mark.parametrize("cls, values", [
    (AllocationGranted, (CLIENT, LISTENER, "alice", (("192.0.2.1", 50000),), 600)),
    (AllocationRenewed, (CLIENT, LISTENER, "alice", 600)),
    (AllocationDeleted, (CLIENT, LISTENER, "alice", (("192.0.2.1", 50000),), "deleted", 1, 2, 3, 4)),
])
def test_allocation_events_are_the_frozen_dataclasses_they_declare(cls, values):
    names = [field.name for field in dataclasses.fields(cls)]
    event = cls(*values)
    assert [getattr(event, name) for name in names] == list(values)
    assert event == cls(**dict(zip(names, values))) and hash(event) == hash(cls(*values))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(event, names[-1], 0)
    assert dataclasses.replace(event, username="bob").username == "bob"
    with pytest.raises(TypeError):
        cls(*values[:-1])
