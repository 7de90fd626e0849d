"""The signaling client against a real SignalServer (in this process): the page's exchanges,
one exception type per failure cause, ICE servers from the welcome, and PeerLink's message order."""

from __future__ import annotations

import asyncio

import pytest

from netcore.ice.gathering import TurnServerConfig
from netcore.peer.connection import PeerConnection
from servers.call.session import PeerLink
from servers.signal.client import (Busy, CallDeclined, CallEnded, LoginFailed, NotAllowed, NotFound,
                                   RequestRefused, ServerUnreachable, SignalingClient, Unavailable,
                                   ice_servers, ws_url)
from servers.signal.config import SignalConfig
from servers.signal.credentials import turn_rest_credentials
from servers.signal.server import SignalServer
from tests.conftest import free_port

PASSWORD = "correct horse battery"


@pytest.fixture
async def server(tmp_path):
    server = SignalServer(SignalConfig(
        host="127.0.0.1", port=0, data_dir=str(tmp_path / "signal"), token_secret="t", ring_timeout=5.0,
        resume_window=0.2, turn_secret="crypt1c", turn_urls=["turn:127.0.0.1:3478?transport=udp",
                                                               "turn:127.0.0.1:3478?transport=tcp"],
        stun_urls=["stun:127.0.0.1:3478"], log_level="WARNING"))
    await server.start()
    yield server
    await server.stop()


def url(server: SignalServer) -> str:
    return f"ws://127.0.0.1:{server.port}"


async def user(server: SignalServer, name: str) -> SignalingClient:
    client = await SignalingClient.connect(url(server))
    await client.register(name, PASSWORD)
    await client.login(name, PASSWORD)
    return client


async def friends(server: SignalServer, a: str, b: str) -> tuple[SignalingClient, SignalingClient]:
    ca, cb = await user(server, a), await user(server, b)
    assert await ca.friend_request(b) == "requested"
    await cb.wait_for("friend.requested", **{"from": a})
    await cb.friend_accept(a)
    await ca.wait_for("friend.accepted", by=b)
    return ca, cb


async def test_login_gives_the_welcome(server):
    client = await user(server, "alice")
    assert client.welcome.user == "alice" and client.welcome.session_id and client.welcome.token
    assert client.welcome.limits["version"] == 1
    await client.close()


async def test_a_call_is_set_up_and_relayed_as_the_page_does(server):
    alice, bob = await friends(server, "alice", "bob")
    call_id = await alice.invite("bob", ["audio", "video"])
    incoming = await bob.wait_for("call.incoming", call_id=call_id)
    assert incoming.payload["from"] == "alice" and incoming.payload["media"] == ["audio", "video"]
    await bob.accept(call_id)
    assert (await alice.wait_accepted(call_id, timeout=5))["peer"] == "bob"
    await alice.send_offer(call_id, "v=0 offer")
    await alice.send_candidate(call_id, {"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host",
                                         "sdpMid": "0", "sdpMLineIndex": 0})
    relayed = ("call.offer", "call.candidate")
    offer = await bob.wait_for(relayed, timeout=5)
    candidate = await bob.wait_for(relayed, timeout=5)  # in the order sent
    assert (offer.type, offer.payload["sdp"], offer.payload["from"]) == ("call.offer", "v=0 offer", "alice")
    assert candidate.type == "call.candidate" and candidate.payload["candidate"]["sdpMid"] == "0"
    await bob.send_answer(call_id, "v=0 answer")
    assert (await alice.wait_for("call.answer", call_id=call_id)).payload["sdp"] == "v=0 answer"
    await bob.hangup(call_id)
    assert (await alice.wait_for("call.ended", call_id=call_id)).payload["reason"] == "hangup"
    await alice.close()
    await bob.close()


async def test_each_failure_cause_has_its_exception(server):
    alice, bob = await friends(server, "alice", "bob")
    carol = await user(server, "carol")
    with pytest.raises(NotAllowed) as refused:
        await alice.invite("carol", ["audio"])  # not a friend
    assert refused.value.code == 403 and refused.value.request == "call.invite"
    with pytest.raises(NotFound):
        await alice.hangup("no-such-call")
    with pytest.raises(RequestRefused) as bad:
        await alice.invite("alice", ["audio"])
    assert bad.value.code == 400
    call_id = await alice.invite("bob", ["audio"])
    await bob.wait_for("call.incoming", call_id=call_id)
    await bob.accept(call_id)
    await alice.wait_accepted(call_id, timeout=5)
    dave = await user(server, "dave")
    await dave.friend_request("bob")
    await bob.wait_for("friend.requested", **{"from": "dave"})
    await bob.friend_accept("dave")
    with pytest.raises(Busy):
        await dave.invite("bob", ["audio"])
    await carol.close()
    with pytest.raises(LoginFailed):
        await (await SignalingClient.connect(url(server))).login("alice", "wrong password")
    for client in (alice, bob, dave):
        await client.close()


async def test_a_declined_call_and_an_offline_callee(server):
    alice, bob = await friends(server, "alice", "bob")
    call_id = await alice.invite("bob", ["audio"])
    await bob.wait_for("call.incoming", call_id=call_id)
    await bob.reject(call_id)
    with pytest.raises(CallDeclined) as declined:
        await alice.wait_accepted(call_id, timeout=5)
    assert declined.value.reason == "declined" and isinstance(declined.value, CallEnded)
    await bob.close()
    await alice.wait_for("presence", user="bob", status="offline", timeout=5)
    with pytest.raises(Unavailable):
        await alice.invite("bob", ["audio"])
    await alice.close()


async def test_an_absent_or_stopped_server_is_unreachable(server):
    port = free_port(kind=1)
    with pytest.raises(ServerUnreachable, match="connection refused"):
        await SignalingClient.connect(f"ws://127.0.0.1:{port}")
    client = await user(server, "alice")
    await server.stop()
    with pytest.raises(ServerUnreachable):
        await client.receive(timeout=5)  # the close, not a hang
    with pytest.raises(ServerUnreachable):
        await client.request("ping")
    await client.close()


async def test_ice_servers_from_the_welcome_carry_the_turn_rest_credentials(server):
    client = await user(server, "alice")
    stun, turn = ice_servers(client.welcome.ice_servers)
    assert stun == (("127.0.0.1", 3478),)
    assert len(turn) == 1  # the TCP URL is left out: the peer connection relays over UDP only
    username = turn[0].username
    assert username.endswith(":alice")
    assert turn[0] == TurnServerConfig(("127.0.0.1", 3478), username,
                                       turn_rest_credentials("crypt1c", "alice", int(username.split(":")[0]))[1])
    await client.close()


def test_addresses_and_urls():
    assert ice_servers([{"urls": "stun:[::1]:3479"}, {"urls": ["turn:127.0.0.1"], "username": "u",
                                                      "credential": "p"}]) == (
        (("::1", 3479),), (TurnServerConfig(("127.0.0.1", 3478), "u", "p"),))
    assert ws_url("ws://127.0.0.1:8080") == "ws://127.0.0.1:8080/v1/ws"
    assert ws_url("ws://127.0.0.1:8080/") == "ws://127.0.0.1:8080/v1/ws"
    assert ws_url("wss://example.org/custom") == "wss://example.org/custom"


async def test_peer_link_sends_its_candidates_after_its_description():
    sent: list[tuple[str, object]] = []

    async def send(kind, data):
        sent.append((kind, data))

    pc = PeerConnection()
    pc.add_transceiver("audio")
    link = PeerLink(pc, send)
    await link.offer()
    for _ in range(100):
        if any(kind == "candidate" for kind, _ in sent):
            break
        await asyncio.sleep(0.01)
    assert sent[0][0] == "offer"
    candidates = [data for kind, data in sent if kind == "candidate"]
    assert candidates and candidates[0]["candidate"].startswith("candidate:")
    assert link.local_types and set(link.local_types.values()) == {"host"}
    await link.close()
