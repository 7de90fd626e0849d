"""Handshake message codecs: byte-exact round trips, parse errors only."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import u16
from netcore.dtls import handshake as hs
from netcore.dtls.errors import DtlsParseError
from netcore.dtls.flight import Reassembler, fragment

ext_types = st.sampled_from([10, 11, 13, 14, 23, 43, 51, 0xFF01, 35, 22])
extensions = st.one_of(
    st.none(),
    st.lists(st.tuples(ext_types, st.binary(max_size=20)), max_size=6, unique_by=lambda e: e[0]),
)

messages = st.one_of(
    st.builds(
        hs.ClientHello,
        u16,
        st.binary(min_size=32, max_size=32),
        st.binary(max_size=32),
        st.binary(max_size=64),
        st.lists(u16, min_size=1, max_size=10),
        st.binary(min_size=1, max_size=3),
        extensions,
    ),
    st.builds(
        hs.ServerHello,
        u16,
        st.binary(min_size=32, max_size=32),
        st.binary(max_size=32),
        u16,
        st.integers(0, 255),
        extensions,
    ),
    st.builds(hs.HelloVerifyRequest, u16, st.binary(max_size=255)),
    st.builds(hs.Certificate, st.lists(st.binary(min_size=1, max_size=100), max_size=3)),
    st.builds(hs.ServerKeyExchange, u16, st.binary(min_size=1, max_size=65), u16, st.binary(min_size=1, max_size=80)),
    st.builds(hs.CertificateRequest, st.binary(min_size=1, max_size=3), st.lists(u16, min_size=1, max_size=5), st.binary(max_size=10)),
    st.just(hs.ServerHelloDone()),
    st.builds(hs.ClientKeyExchange, st.binary(min_size=1, max_size=65)),
    st.builds(hs.CertificateVerify, u16, st.binary(min_size=1, max_size=80)),
    st.builds(hs.Finished, st.binary(min_size=12, max_size=12)),
)


@given(messages)
def test_messages_round_trip(message):
    body = message.encode()
    decoded = hs.decode_message(message.msg_type, body)
    assert decoded == message
    assert decoded.encode() == body


@given(st.sampled_from([1, 2, 3, 11, 12, 13, 14, 15, 16, 20, 99]), st.binary(max_size=120))
def test_arbitrary_bodies_give_only_the_parse_error(msg_type, body):
    try:
        hs.decode_message(msg_type, body)
    except DtlsParseError:
        pass


@given(st.binary(max_size=120))
def test_arbitrary_fragments_give_only_the_parse_error(data):
    try:
        list(hs.iter_fragments(data))
    except DtlsParseError:
        pass


def test_duplicate_extension_is_rejected():
    hello = hs.ClientHello(0xFEFD, bytes(32), b"", b"", [0xC02B], b"\x00", [(23, b""), (23, b"")])
    with pytest.raises(DtlsParseError):
        hs.ClientHello.decode(hello.encode())


def test_use_srtp_extension():
    data = hs.encode_use_srtp([7, 1])
    assert data == bytes.fromhex("00040007000100") and hs.decode_use_srtp(data) == ([7, 1], b"")


@given(
    st.binary(min_size=0, max_size=3000),
    st.integers(1, 400),
    st.randoms(use_true_random=False),
    st.booleans(),
)
def test_fragment_and_reassemble_in_any_order(body, size, rnd, duplicate):
    pieces = fragment(hs.HandshakeType.certificate, 3, body, size)
    if duplicate:
        pieces = pieces + pieces[: len(pieces) // 2]
    rnd.shuffle(pieces)
    reassembler = Reassembler(3)
    for piece in pieces:
        assert reassembler.peek() is None or len(pieces) > 1
        ((header, data),) = list(hs.iter_fragments(piece))
        assert reassembler.add(header, data)
    assert reassembler.peek() == (hs.HandshakeType.certificate, 3, body)
    reassembler.advance()
    ((header, data),) = list(hs.iter_fragments(pieces[0]))
    assert not reassembler.add(header, data)  # now an old message


def test_reassembler_bounds():
    reassembler = Reassembler(0)
    too_far = hs.HandshakeHeader(11, 10, 100, 0, 10)
    assert reassembler.add(too_far, bytes(10))  # dropped silently, no buffer
    assert reassembler._partials == {}
    with pytest.raises(DtlsParseError):
        reassembler.add(hs.HandshakeHeader(11, 1 << 20, 0, 0, 1), b"x")
    reassembler.add(hs.HandshakeHeader(11, 10, 0, 0, 5), bytes(5))
    with pytest.raises(DtlsParseError):  # a fragment disagreeing on the length
        reassembler.add(hs.HandshakeHeader(11, 12, 0, 5, 5), bytes(5))


def test_reassembler_bounds_disjoint_fragments():
    reassembler = Reassembler(0)
    for offset in range(0, 4000, 2):  # every other byte: a hole after each
        reassembler.add(hs.HandshakeHeader(11, 4000, 0, offset, 1), b"x")
    assert len(reassembler._partials[0].ranges) == 64
    reassembler.add(hs.HandshakeHeader(11, 4000, 0, 0, 4000), bytes(4000))
    assert reassembler.peek() == (11, 0, bytes(4000))
