"""ICE benchmarks: time to the first selected pair on loopback, ours against aioice
(host-only, and relay-only through coturn), and checks per second of an ICE-lite agent.

Both sides of each call are the same implementation (netcore-netcore, aioice-aioice),
alternating rounds; the median of the rounds is printed with the ratio.

    python bench/ice.py [--rounds N] [--no-relay]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import aioice  # noqa: E402

from netcore.ice.agent import Agent, TurnServerConfig  # noqa: E402
from netcore.ice.aio import IceConnection  # noqa: E402
from netcore.net import Receive  # noqa: E402
from netcore.stun import attributes as sa  # noqa: E402
from netcore.stun.credentials import short_term_key  # noqa: E402
from netcore.stun.message import BINDING, Message, MessageClass  # noqa: E402
from netcore.testing.local import connect_locally  # noqa: E402


async def ours_call(turn_port: int | None) -> float:
    relay = turn_port is not None
    servers = (TurnServerConfig(("127.0.0.1", turn_port), "test", "test"),) if relay else ()
    start = time.perf_counter()
    a = IceConnection(Agent(True, relay_only=relay, turn_servers=servers))
    b = IceConnection(Agent(False, relay_only=relay, turn_servers=servers))
    try:
        for conn in (a, b):
            await conn.bind(["127.0.0.1"])
        await connect_locally(a, b)
        return time.perf_counter() - start
    finally:
        a.close()
        b.close()


async def aioice_call(turn_port: int | None) -> float:
    relay = turn_port is not None
    options = dict(turn_server=("127.0.0.1", turn_port), turn_username="test", turn_password="test",
                   transport_policy=aioice.TransportPolicy.RELAY) if relay else {}
    start = time.perf_counter()
    a = aioice.Connection(ice_controlling=True, use_ipv6=False, **options)
    b = aioice.Connection(ice_controlling=False, use_ipv6=False, **options)
    try:
        for conn in (a, b):
            if relay:
                await conn.gather_candidates()
            else:  # aioice leaves 127.0.0.1 out; ask it for loopback candidates as gather_candidates would
                conn._local_candidates += await conn.get_component_candidates(1, ["127.0.0.1"])
                conn._local_candidates_start = conn._local_candidates_end = True
        for me, peer in ((a, b), (b, a)):
            me.remote_username, me.remote_password = peer.local_username, peer.local_password
            for candidate in peer.local_candidates:
                await me.add_remote_candidate(candidate)
            await me.add_remote_candidate(None)
        await asyncio.gather(a.connect(), b.connect())
        return time.perf_counter() - start
    finally:
        await a.close()
        await b.close()


async def connection_times(rounds: int, turn_port: int | None) -> tuple[float, float]:
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(await ours_call(turn_port))
        theirs.append(await aioice_call(turn_port))
    return statistics.median(ours), statistics.median(theirs)


def lite_checks_per_second(number: int = 20000) -> float:
    lite = Agent(False, lite=True)
    lite.add_local_address(("192.0.2.1", 443))
    lite.gather(0.0)
    request = (Message(BINDING, MessageClass.REQUEST, bytes(range(12)))
               .add(sa.USERNAME, f"{lite.local_ufrag}:peer")
               .add(sa.PRIORITY, 0x6E0001FF)
               .add(sa.ICE_CONTROLLING, 0x932FF9B151263B36)
               .add(sa.USE_CANDIDATE)
               .encode(short_term_key(lite.local_pwd), fingerprint=True))
    peers = [("198.51.100.1", 10000 + i % 50) for i in range(number)]  # 50 clients
    local = ("192.0.2.1", 443)
    start = time.perf_counter()
    for peer in peers:
        lite.handle_datagram(Receive(request, peer, local), 0.0)
        while lite.poll_transmit() is not None:
            pass
        while lite.poll_event() is not None:
            pass
    return number / (time.perf_counter() - start)


def line(name: str, ours: float, theirs: float) -> str:
    return (f"{name:<34} ours {ours * 1000:8.1f} ms   aioice {theirs * 1000:8.1f} ms"
            f"   ratio (aioice/ours) {theirs / ours:5.2f}x")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-relay", action="store_true")
    args = parser.parse_args()
    ours, theirs = await connection_times(args.rounds, None)
    print(line("first selected pair, host-only", ours, theirs))
    if not args.no_relay:
        from tests.peers import coturn

        with tempfile.TemporaryDirectory() as tmp, coturn(Path(tmp), "--allow-loopback-peers") as port:
            ours, theirs = await connection_times(args.rounds, port)
        print(line("first selected pair, relay-only", ours, theirs))
    print(f"{'ICE-lite checks answered':<34} ours {lite_checks_per_second():10,.0f} /s"
          "   (aioice has no ICE-lite agent to compare)")


if __name__ == "__main__":
    asyncio.run(main())
