"""In-process signalling between two of our ICE connections, for tests and benchmarks on loopback."""

from __future__ import annotations

import asyncio

from netcore.ice.agent import CandidatePair
from netcore.ice.aio import IceConnection

__all__ = ["connect_locally"]


async def connect_locally(a: IceConnection, b: IceConnection, timeout: float = 10.0) -> CandidatePair:
    """Exchange credentials, gather both, hand each the other's candidates and
    end-of-candidates, and wait until both are connected; ``a``'s pair is returned."""
    a.call(a.agent.set_remote_credentials, b.agent.local_ufrag, b.agent.local_pwd)
    b.call(b.agent.set_remote_credentials, a.agent.local_ufrag, a.agent.local_pwd)
    await asyncio.gather(a.gather(timeout), b.gather(timeout))
    for me, peer in ((a, b), (b, a)):
        for candidate in peer.agent.local_candidates:
            me.call(me.agent.add_remote_candidate, candidate)
        me.call(me.agent.add_remote_candidate, None)
    pairs = await asyncio.gather(a.connect(timeout), b.connect(timeout))
    return pairs[0]
