"""Interop with aioice on 127.0.0.1: both roles, with and without trickle, host-only and relay-only.

aioice leaves 127.0.0.1 out of its host candidates (``get_host_addresses``),
so for host-to-host on loopback the test asks it for candidates on 127.0.0.1
through its own ``get_component_candidates`` and marks gathering done, which
is exactly what its ``gather_candidates`` does with the interface list.
Relay-only runs through coturn's ``turnserver`` and through our netcore-turn
daemon, both started by the test with loopback peers allowed.
"""

from __future__ import annotations

import asyncio
import ssl

import aioice
import pytest

from netcore.ice.agent import Agent, TurnServerConfig
from netcore.ice.aio import IceConnection
from netcore.ice.events import CandidateGathered, GatheringCompleted
from netcore.sdp.candidate import Candidate
from tests.peers import coturn, netcore_turn, self_signed_certificate, tls_port

pytestmark = pytest.mark.timeout(60)


async def aioice_loopback_candidates(conn: aioice.Connection) -> None:
    conn._local_candidates += await conn.get_component_candidates(component=1, addresses=["127.0.0.1"])
    conn._local_candidates_start = conn._local_candidates_end = True


def to_aioice(candidate: Candidate) -> aioice.Candidate:
    return aioice.Candidate.from_sdp(str(candidate))


def from_aioice(candidate: aioice.Candidate) -> Candidate:
    return Candidate.parse(candidate.to_sdp())


async def run_call(ours_controlling: bool, trickle: bool, turn_port: int | None = None,
                   turn_user: tuple[str, str] = ("test", "test"), our_transport: str = "udp",
                   ssl=None, tls_port: int | None = None) -> None:
    relay = turn_port is not None
    theirs = aioice.Connection(
        ice_controlling=not ours_controlling,
        turn_server=("127.0.0.1", turn_port) if relay else None,
        turn_username=turn_user[0] if relay else None,
        turn_password=turn_user[1] if relay else None,
        transport_policy=aioice.TransportPolicy.RELAY if relay else aioice.TransportPolicy.ALL,
        use_ipv6=False,
    )
    queue: asyncio.Queue = asyncio.Queue()
    received: asyncio.Queue = asyncio.Queue()

    def on_event(event):
        if isinstance(event, CandidateGathered):
            queue.put_nowait(event.candidate)
        elif isinstance(event, GatheringCompleted):
            queue.put_nowait(None)

    our_port = tls_port if our_transport == "tls" else turn_port
    servers = (TurnServerConfig(("127.0.0.1", our_port), *turn_user, transport=our_transport),) if relay else ()
    agent = Agent(ours_controlling, relay_only=relay, turn_servers=servers)
    ours = IceConnection(agent, on_event=on_event, on_data=lambda data, pair: received.put_nowait((data, pair)),
                         ssl=ssl)
    try:
        await ours.bind(["127.0.0.1"])
        if relay:
            await theirs.gather_candidates()
        else:
            await aioice_loopback_candidates(theirs)
        theirs.remote_username, theirs.remote_password = agent.local_ufrag, agent.local_pwd
        ours.call(agent.set_remote_credentials, theirs.local_username, theirs.local_password)

        async def feed_theirs() -> None:
            while (candidate := await queue.get()) is not None:
                await theirs.add_remote_candidate(to_aioice(candidate))
            await theirs.add_remote_candidate(None)

        def feed_ours() -> None:
            for candidate in theirs.local_candidates:
                ours.call(agent.add_remote_candidate, from_aioice(candidate))
            ours.call(agent.add_remote_candidate, None)

        if trickle:
            await ours.start_gathering()
            feeding = asyncio.ensure_future(feed_theirs())
            connecting = asyncio.ensure_future(theirs.connect())
            await asyncio.sleep(0)  # let aioice start before it hears of any candidate
            feed_ours()
            await ours.connect(20)
            await asyncio.wait_for(connecting, 20)
            await feeding
        else:
            await ours.gather()
            await feed_theirs()
            feed_ours()
            await asyncio.gather(ours.connect(20), asyncio.wait_for(theirs.connect(), 20))

        pair = agent.sending_pair()
        assert pair.relayed == relay
        assert (pair.local.type == "relay") == relay
        if relay:
            assert pair.local.turn.reliable == (our_transport != "udp")
        ours.send(b"\x80\x00from netcore")
        assert await asyncio.wait_for(theirs.recv(), 5) == b"\x80\x00from netcore"
        await theirs.send(b"\x80\x00from aioice")
        data, on_pair = await asyncio.wait_for(received.get(), 5)
        assert data == b"\x80\x00from aioice"
        assert on_pair is not None and on_pair.remote.address == pair.remote.address
    finally:
        ours.close()
        await theirs.close()


@pytest.mark.parametrize("trickle", [False, True], ids=["full", "trickle"])
@pytest.mark.parametrize("ours_controlling", [True, False], ids=["we-control", "aioice-controls"])
async def test_host_to_host_on_loopback(ours_controlling, trickle):
    await run_call(ours_controlling, trickle)


@pytest.mark.parametrize("trickle", [False, True], ids=["full", "trickle"])
@pytest.mark.parametrize("ours_controlling", [True, False], ids=["we-control", "aioice-controls"])
async def test_relay_only_through_coturn(tmp_path, ours_controlling, trickle):
    with coturn(tmp_path, "--allow-loopback-peers") as port:
        await run_call(ours_controlling, trickle, port)


@pytest.mark.parametrize("trickle", [False, True], ids=["full", "trickle"])
@pytest.mark.parametrize("ours_controlling", [True, False], ids=["we-control", "aioice-controls"])
async def test_relay_only_through_netcore_turn(tmp_path, ours_controlling, trickle):
    with netcore_turn(tmp_path, "--allow-loopback-peers", "--user", "test:test") as port:
        await run_call(ours_controlling, trickle, port)


@pytest.mark.parametrize("ours_controlling", [True, False], ids=["we-control", "aioice-controls"])
async def test_relay_over_tcp_to_coturn(tmp_path, ours_controlling):
    # We reach coturn over TCP (RFC 8656 section 3.1), aioice over UDP; the relays are UDP.
    with coturn(tmp_path, "--allow-loopback-peers") as port:
        await run_call(ours_controlling, True, port, our_transport="tcp")


async def test_relay_over_tls_to_coturn(tmp_path):
    # aioice relays over UDP on the same server; we reach it over TLS, checking its certificate.
    cert, key = self_signed_certificate(tmp_path)
    with coturn(tmp_path, "--allow-loopback-peers", tls=(cert, key)) as port:
        context = ssl.create_default_context(cafile=str(cert))
        await run_call(True, True, port, our_transport="tls", ssl=context, tls_port=tls_port(tmp_path))


async def test_our_ice_lite_server_with_aioice_controlling():
    # The call server's shape: our lite agent (host candidate only) answers aioice's checks
    # and takes the pair aioice nominates.
    theirs = aioice.Connection(ice_controlling=True, use_ipv6=False)
    theirs.remote_is_lite = True
    received: asyncio.Queue = asyncio.Queue()
    lite = Agent(False, lite=True)
    ours = IceConnection(lite, on_data=lambda data, pair: received.put_nowait((data, pair)))
    try:
        await ours.bind(["127.0.0.1"])
        await ours.gather()
        await aioice_loopback_candidates(theirs)
        theirs.remote_username, theirs.remote_password = lite.local_ufrag, lite.local_pwd
        ours.call(lite.set_remote_credentials, theirs.local_username, theirs.local_password)
        for candidate in lite.local_candidates:
            await theirs.add_remote_candidate(to_aioice(candidate))
        await theirs.add_remote_candidate(None)
        await asyncio.gather(ours.connect(10), asyncio.wait_for(theirs.connect(), 10))
        assert lite.checks_sent == 0
        assert [c.type for c in lite.local_candidates] == ["host"]
        await theirs.send(b"\x80\x00to the server")
        data, pair = await asyncio.wait_for(received.get(), 5)
        assert data == b"\x80\x00to the server" and pair is lite.sending_pair()
        ours.send(b"\x80\x00to the client")
        assert await asyncio.wait_for(theirs.recv(), 5) == b"\x80\x00to the client"
    finally:
        ours.close()
        await theirs.close()
