"""Test support shared by the layers: the simulated network (:mod:`netcore.testing.simnet`)
and nodes that put our cores on it (:mod:`netcore.testing.nodes`)."""
