"""TURN wire formats: attributes, ChannelData, stream framing, REST credentials."""

import pytest
from hypothesis import given, strategies as st

from netcore.errors import UsageError
from netcore.stun.message import Message, MessageClass
from netcore.turn import wire as w
from netcore.turn.credentials import rest_api_expiry, rest_api_password, rest_api_username
from netcore.turn.wire import StreamFramer, TurnParseError, encode_channel_data, parse_channel_data

channels = st.integers(w.CHANNEL_MIN, w.CHANNEL_MAX)
payloads = st.binary(max_size=300)


def test_rest_api_vector():
    assert rest_api_password("crypt1c", "2145913200") == "cLwpKS2/9bWHf+agUImD47PIXNE="
    assert rest_api_username(2145913200, "alice") == "2145913200:alice"
    assert rest_api_expiry("2145913200:alice") == 2145913200
    assert rest_api_expiry("alice") is None


def test_turn_attributes_round_trip():
    tid = bytes(range(12))
    message = (
        Message(w.ALLOCATE, MessageClass.REQUEST, tid)
        .add(w.REQUESTED_TRANSPORT, w.TRANSPORT_UDP)
        .add(w.REQUESTED_ADDRESS_FAMILY, w.FAMILY_IPV6)
        .add(w.ADDITIONAL_ADDRESS_FAMILY, w.FAMILY_IPV6)
        .add(w.LIFETIME, 3600)
        .add(w.EVEN_PORT, True)
        .add(w.DONT_FRAGMENT)
        .add(w.RESERVATION_TOKEN, b"12345678")
        .add(w.XOR_PEER_ADDRESS, ("2001:db8::1", 9))
        .add(w.XOR_RELAYED_ADDRESS, ("192.0.2.9", 50000))
        .add(w.CHANNEL_NUMBER, 0x4ABC)
        .add(w.DATA_ATTR, b"payload")
        .add(w.CONNECTION_ID, 77)
        .add(w.ADDRESS_ERROR_CODE, (w.FAMILY_IPV6, 440, "Address Family not Supported"))
        .add(w.ICMP, (3, 3, 0))
    )
    parsed = Message.parse(message.encode())
    assert parsed.get(w.REQUESTED_TRANSPORT) == 17
    assert parsed.get(w.REQUESTED_ADDRESS_FAMILY) == w.FAMILY_IPV6
    assert parsed.get(w.LIFETIME) == 3600
    assert parsed.get(w.EVEN_PORT) is True
    assert parsed.get(w.DONT_FRAGMENT) is True
    assert parsed.get(w.RESERVATION_TOKEN) == b"12345678"
    assert parsed.get(w.XOR_PEER_ADDRESS) == ("2001:db8::1", 9)
    assert parsed.get(w.XOR_RELAYED_ADDRESS) == ("192.0.2.9", 50000)
    assert parsed.get(w.CHANNEL_NUMBER) == 0x4ABC
    assert parsed.get(w.DATA_ATTR) == b"payload"
    assert parsed.get(w.CONNECTION_ID) == 77
    assert parsed.get(w.ADDRESS_ERROR_CODE) == (w.FAMILY_IPV6, 440, "Address Family not Supported")
    assert parsed.get(w.ICMP) == (3, 3, 0)
    assert parsed.unknown_comprehension_required() == []


@given(channels, payloads, st.booleans())
def test_channel_data_round_trip(channel, payload, pad):
    raw = encode_channel_data(channel, payload, pad=pad)
    assert len(raw) % 4 == 0 or not pad
    assert parse_channel_data(raw) == (channel, payload)


@given(st.binary(max_size=64))
def test_arbitrary_bytes_give_channel_data_or_the_parse_error(data):
    try:
        channel, payload = parse_channel_data(data)
    except TurnParseError:
        return
    assert w.CHANNEL_MIN <= channel <= w.CHANNEL_MAX and len(payload) <= len(data) - 4


def test_channel_numbers_outside_the_range_are_refused():
    for bad in (0x3FFF, 0x5000, 0x7FFF):
        with pytest.raises(TurnParseError):
            parse_channel_data(bad.to_bytes(2, "big") + b"\x00\x00")
        with pytest.raises(UsageError):
            encode_channel_data(bad, b"")


@given(st.lists(st.tuples(channels, payloads), max_size=8), st.lists(st.integers(1, 50), min_size=1))
def test_stream_framer_splits_at_any_boundary(frames, cuts):
    stun = Message(w.SEND, MessageClass.INDICATION).add(w.DATA_ATTR, b"x").encode()
    stream = b"".join(encode_channel_data(c, p, pad=True) for c, p in frames) + stun
    framer = StreamFramer()
    out, offset, i = [], 0, 0
    while offset < len(stream):
        step = cuts[i % len(cuts)]
        out.extend(framer.feed(stream[offset : offset + step]))
        offset += step
        i += 1
    assert out[:-1] == [encode_channel_data(c, p) for c, p in frames]
    assert out[-1] == stun
    assert framer.buffered == 0


@given(st.binary(max_size=200))
def test_stream_framer_on_garbage_raises_only_the_parse_error_and_stays_bounded(data):
    framer = StreamFramer(max_frame=128)
    try:
        for _ in framer.feed(data):
            pass
    except TurnParseError:
        return
    assert framer.buffered <= 128
