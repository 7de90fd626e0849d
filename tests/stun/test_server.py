"""The Binding server core."""

from hypothesis import given, strategies as st

from netcore.net import Receive
from netcore.stun import attributes as a
from netcore.stun.message import BINDING, Message, MessageClass
from netcore.stun.server import BindingServer

CLIENT = ("203.0.113.5", 50000)
CLIENT6 = ("2001:db8::5", 50000, 0, 0)


def answer(server: BindingServer, data: bytes, addr=CLIENT) -> Message | None:
    server.handle_datagram(Receive(data, addr), 0.0)
    out = server.poll_transmit()
    assert server.poll_transmit() is None
    if out is None:
        return None
    assert out.destination == addr
    return Message.parse(out.data)


def test_binding_request_gets_xor_mapped_address():
    server = BindingServer()
    request = Message(BINDING, MessageClass.REQUEST)
    response = answer(server, request.encode())
    assert response.message_class == MessageClass.SUCCESS
    assert response.transaction_id == request.transaction_id
    assert response.get(a.XOR_MAPPED_ADDRESS) == CLIENT
    assert response.get(a.SOFTWARE) == "netcore"
    assert not response.has_fingerprint


def test_ipv6_source_and_fingerprint_echoed():
    server = BindingServer(software=None)
    request = Message(BINDING, MessageClass.REQUEST)
    response = answer(server, request.encode(fingerprint=True), CLIENT6)
    assert response.get(a.XOR_MAPPED_ADDRESS) == CLIENT6[:2]
    assert response.check_fingerprint()
    assert a.SOFTWARE not in response


def test_unknown_comprehension_required_attribute_gets_420():
    server = BindingServer()
    request = Message(BINDING, MessageClass.REQUEST).add_raw(0x7F01, b"??").add_raw(0xC0DE, b"ok")
    response = answer(server, request.encode())
    assert response.get(a.ERROR_CODE)[0] == 420
    assert response.get(a.UNKNOWN_ATTRIBUTES) == (0x7F01,)
    assert server.stats.by_error == {420: 1}


def test_unknown_method_gets_400():
    server = BindingServer()
    response = answer(server, Message(0x0AB, MessageClass.REQUEST).encode())
    assert response.get(a.ERROR_CODE) == (400, "Bad Request")


def test_indications_responses_and_garbage_are_dropped_and_counted():
    server = BindingServer()
    assert answer(server, Message(BINDING, MessageClass.INDICATION).encode()) is None
    assert answer(server, Message(BINDING, MessageClass.SUCCESS).encode()) is None
    assert answer(server, b"\x00\x01garbage") is None
    raw = bytearray(Message(BINDING, MessageClass.REQUEST).encode(fingerprint=True))
    raw[-1] ^= 0xFF
    assert answer(server, bytes(raw)) is None
    assert (server.stats.ignored, server.stats.parse_errors, server.stats.bad_fingerprints) == (2, 1, 1)


@given(st.lists(st.binary(max_size=64), max_size=20))
def test_arbitrary_datagrams_never_raise_and_each_gets_at_most_one_answer(datagrams):
    server = BindingServer()
    for data in datagrams:
        server.handle_datagram(Receive(data, CLIENT), 0.0)
    answers = 0
    while server.poll_transmit() is not None:
        answers += 1
    assert answers <= len(datagrams)
