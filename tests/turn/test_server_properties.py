"""Hypothesis: whatever the network sends, nothing escapes the core and no state grows."""

import pytest
from hypothesis import given, settings, strategies as st

from netcore.net import Receive
from netcore.stun import attributes as sa
from netcore.stun.message import Message, MessageClass
from netcore.turn import wire as w
from tests.turn.sim import PEER, Client, drain, make_server

pytestmark = pytest.mark.usefixtures("stun_codec")  # the compiled codec and Python alike

sources = st.tuples(st.sampled_from(["198.51.100.1", "198.51.100.2", "2001:db8::7"]), st.integers(1, 4))
methods = st.sampled_from([0x001, w.ALLOCATE, w.REFRESH, w.SEND, w.DATA, w.CREATE_PERMISSION, w.CHANNEL_BIND,
                           w.CONNECT, 0x0FF])
attribute_types = st.sampled_from([
    w.REQUESTED_TRANSPORT, w.LIFETIME, w.XOR_PEER_ADDRESS, w.CHANNEL_NUMBER, w.DATA_ATTR, w.EVEN_PORT,
    w.RESERVATION_TOKEN, w.REQUESTED_ADDRESS_FAMILY, w.ADDITIONAL_ADDRESS_FAMILY, w.DONT_FRAGMENT,
    sa.USERNAME, sa.REALM, sa.NONCE, sa.PASSWORD_ALGORITHM, sa.PASSWORD_ALGORITHMS, 0x7777, 0xC001,
])


@st.composite
def stun_like(draw):
    """Well-framed STUN with arbitrary attribute values, optionally signed with a real key."""
    message = Message(draw(methods), draw(st.sampled_from(list(MessageClass))), draw(st.binary(min_size=12, max_size=12)))
    for _ in range(draw(st.integers(0, 6))):
        message.add_raw(draw(attribute_types), draw(st.binary(max_size=24)))
    key = draw(st.sampled_from([None, b"k" * 16]))
    return message.encode(key, fingerprint=draw(st.booleans()))


datagrams = st.one_of(
    st.binary(max_size=80),
    stun_like(),
    st.builds(lambda n, d: n.to_bytes(2, "big") + len(d).to_bytes(2, "big") + d, st.integers(0x4000, 0x7FFF),
              st.binary(max_size=20)),
)


@settings(max_examples=300)
@given(st.lists(st.tuples(datagrams, sources, st.floats(0, 5000)), max_size=40))
def test_arbitrary_datagrams_never_escape_and_state_stays_bounded(inputs):
    server, relays = make_server(total_quota=5, max_permissions=4, max_channels=4, max_rate_sources=8)
    legit = Client(server)
    legit.allocate()
    legit.request(w.CHANNEL_BIND, (w.CHANNEL_NUMBER, 0x4000), (w.XOR_PEER_ADDRESS, PEER))
    relayed = next(iter(server.by_relayed))
    for data, source, now in sorted(inputs, key=lambda item: item[2]):
        server.handle_datagram(Receive(data, source, ("192.0.2.1", 3478)), now)
        server.handle_datagram(Receive(data, PEER, relayed), now)
        server.handle_timeout(now)
        drain(server)
    assert len(server.allocations) <= 5
    assert len(server.unauthorized) <= 8
    for allocation in server.allocations.values():
        assert len(allocation.permissions) <= 4 and len(allocation.channels) <= 4
    assert len(relays.open) <= 5 + len(server._reservations)
    # no allocation exists without a valid long-term credential
    assert {a.username for a in server.allocations.values()} <= {"alice"}


@given(st.binary(max_size=64))
def test_channel_data_framing_from_arbitrary_bytes(payload):
    server, _ = make_server()
    client = Client(server)
    client.allocate()
    client.request(w.CHANNEL_BIND, (w.CHANNEL_NUMBER, 0x4000), (w.XOR_PEER_ADDRESS, PEER))
    out = client.send_raw(w.encode_channel_data(0x4000, payload, pad=True))
    assert [data for data, _, _ in out] == [payload]
