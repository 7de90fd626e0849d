"""Property tests of the STUN codec: round trips, bad input, tampering."""

import hmac
import socket

import pytest
from hypothesis import assume, given, strategies as st

from netcore.stun import attributes as a
from netcore.stun.errors import StunParseError
from netcore.stun.message import _LAYOUTS, HEADER_LENGTH, Message, MessageClass, clear_layout_cache

pytestmark = pytest.mark.usefixtures("stun_codec")  # the compiled codec and Python alike

tids = st.binary(min_size=12, max_size=12)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
address = st.tuples(st.one_of(ipv4, ipv6), st.integers(0, 0xFFFF))
text = st.text(max_size=60)
algorithms = st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=9))

# One strategy per registered attribute type: every codec is exercised.
VALUES = {
    a.MAPPED_ADDRESS: address,
    a.XOR_MAPPED_ADDRESS: address,
    a.ALTERNATE_SERVER: address,
    a.USERNAME: text,
    a.REALM: text,
    a.NONCE: text,
    a.SOFTWARE: text,
    a.ALTERNATE_DOMAIN: st.text(alphabet="abcdefghij.-", max_size=40),
    a.USERHASH: st.binary(min_size=32, max_size=32),
    a.ERROR_CODE: st.tuples(st.integers(300, 699), text),
    a.UNKNOWN_ATTRIBUTES: st.lists(st.integers(0, 0xFFFF), max_size=6).map(tuple),
    a.PASSWORD_ALGORITHM: algorithms,
    a.PASSWORD_ALGORITHMS: st.lists(algorithms, max_size=4).map(tuple),
    a.PRIORITY: st.integers(0, 2**32 - 1),
    a.USE_CANDIDATE: st.just(True),
    a.ICE_CONTROLLED: st.integers(0, 2**64 - 1),
    a.ICE_CONTROLLING: st.integers(0, 2**64 - 1),
}
attribute = st.sampled_from(sorted(VALUES)).flatmap(lambda t: st.tuples(st.just(t), VALUES[t]))


def _normalized(attr_type, value):
    if attr_type in (a.MAPPED_ADDRESS, a.XOR_MAPPED_ADDRESS, a.ALTERNATE_SERVER):
        return a.decode_address(a.encode_address(value))  # canonical text form of the host
    return value


@given(
    method=st.integers(0, 0xFFF),
    message_class=st.sampled_from(list(MessageClass)),
    tid=tids,
    attributes=st.lists(attribute, max_size=8),
    key=st.one_of(st.none(), st.binary(min_size=1, max_size=32)),
    key256=st.one_of(st.none(), st.binary(min_size=1, max_size=32)),
    fingerprint=st.booleans(),
)
def test_encode_then_parse_gives_everything_back(method, message_class, tid, attributes, key, key256, fingerprint):
    message = Message(method, message_class, tid)
    for attr_type, value in attributes:
        message.add(attr_type, value)
    raw = message.encode(key, integrity_sha256_key=key256, fingerprint=fingerprint)
    parsed = Message.parse(raw)
    assert (parsed.method, parsed.message_class, parsed.transaction_id) == (method, message_class, tid)
    body = [(t, v) for t, v in parsed.attributes if t not in (a.MESSAGE_INTEGRITY, a.MESSAGE_INTEGRITY_SHA256, a.FINGERPRINT)]
    assert [t for t, _ in body] == [t for t, _ in attributes]  # wire order, repeats kept
    for (attr_type, value), (_, raw_value) in zip(attributes, body):
        assert parsed._decode(attr_type, raw_value) == _normalized(attr_type, value)
    assert parsed.has_integrity == (key is not None)
    assert parsed.has_integrity_sha256 == (key256 is not None)
    assert parsed.has_fingerprint == fingerprint
    if key is not None:
        assert parsed.check_integrity(key)
    if key256 is not None:
        assert parsed.check_integrity_sha256(key256)
    if fingerprint:
        assert parsed.check_fingerprint()
    assert parsed.encode(key, integrity_sha256_key=key256, fingerprint=fingerprint) == raw


def _parse_and_read(data: bytes) -> None:
    try:
        message = Message.parse(data)
    except StunParseError:
        return
    for attr_type, value in message.attributes:
        try:
            message._decode(attr_type, value)
        except StunParseError:
            pass
    message.check_integrity(b"key")
    message.check_integrity_sha256(b"key")
    message.check_fingerprint()
    message.unknown_comprehension_required()
    repr(message)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_a_message_or_the_parse_error(data):
    _parse_and_read(data)


@given(
    st.binary(max_size=120).map(lambda body: body[: len(body) - len(body) % 4]),
    tids,
    st.integers(0, 0x3FFF),
)
def test_arbitrary_bodies_behind_a_valid_header(body, tid, message_type):
    # Random attribute areas behind a well-formed header reach the attribute walker.
    header = message_type.to_bytes(2, "big") + len(body).to_bytes(2, "big") + a._COOKIE_BYTES + tid
    _parse_and_read(header + body)


@given(st.lists(attribute, max_size=5), tids)
def test_truncation_at_every_offset_is_a_parse_error(attributes, tid):
    message = Message(1, MessageClass.REQUEST, tid)
    for attr_type, value in attributes:
        message.add(attr_type, value)
    raw = message.encode(b"k", fingerprint=True)
    for cut in range(len(raw)):
        with pytest.raises(StunParseError):
            Message.parse(raw[:cut])


@given(st.lists(attribute, max_size=5), tids, st.data())
def test_flipping_any_bit_breaks_integrity(attributes, tid, data):
    message = Message(1, MessageClass.REQUEST, tid)
    for attr_type, value in attributes:
        message.add(attr_type, value)
    key = b"secret key"
    raw = bytearray(message.encode(key, integrity_sha256_key=key))
    # Any bit before the end of the last signature is covered by one of them.
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    try:
        tampered = Message.parse(bytes(raw))
    except StunParseError:
        return
    assert not (tampered.check_integrity(key) and tampered.check_integrity_sha256(key))
    assert not tampered.check_integrity_sha256(key)


def _observed(raw: bytes, key: bytes) -> tuple:
    """Everything a caller can read from ``raw``: lazy look-ups first, then the list."""
    try:
        message = Message.parse(raw)
    except StunParseError as exc:
        return ("StunParseError", str(exc))
    # Every attribute type sits at an even offset, so these include them all.
    types = sorted({int.from_bytes(raw[i : i + 2], "big") for i in range(HEADER_LENGTH, len(raw) - 1, 2)})

    def look_ups() -> list:
        found = []
        for attr_type in types:
            try:
                value = message.get(attr_type)
            except StunParseError as exc:
                value = ("StunParseError", str(exc))
            found.append((attr_type, attr_type in message, message.get_raw(attr_type), value))
        return found

    lazy = look_ups()  # through the layout
    attributes = list(message.attributes)
    assert look_ups() == lazy  # through the list the layout made
    return (
        message.method,
        message.message_class,
        message.transaction_id,
        attributes,
        lazy,
        (message.has_integrity, message.has_integrity_sha256, message.has_fingerprint),
        (message.check_integrity(key), message.check_integrity_sha256(key), message.check_fingerprint()),
        message.encode(key, integrity_sha256_key=key, fingerprint=True),
        repr(message),
    )


def _layout_bytes(raw: bytes) -> tuple[list[int], list[int]]:
    """Offsets of the attribute header bytes and of the padding bytes of a well-formed message."""
    headers, padding, at = [], [], HEADER_LENGTH
    while at < len(raw):
        length = int.from_bytes(raw[at + 2 : at + 4], "big")
        headers += range(at, at + 4)
        padding += range(at + 4 + length, at + 4 + length + (-length & 3))
        at += 4 + length + (-length & 3)
    return headers, padding


def _walked(raw: bytes, key: bytes) -> tuple:
    clear_layout_cache()  # nothing cached: the full walk
    return _observed(raw, key)


@given(st.lists(attribute, max_size=5), tids, st.booleans(), st.booleans(), st.booleans(), st.data())
def test_a_cached_layout_gives_what_the_full_walk_gives(attributes, tid, mi, mi256, fingerprint, data):
    key = b"secret key"

    def encoded(attributes):
        message = Message(1, MessageClass.REQUEST, tid)
        for attr_type, value in attributes:
            message.add(attr_type, value)
        return message.encode(key if mi else None, integrity_sha256_key=key if mi256 else None, fingerprint=fingerprint)

    raw = encoded(attributes)
    headers, padding = _layout_bytes(raw)
    # Same length, other bytes: the same attributes in another order (another
    # layout), spaces for padding (RFC 5769 pads so), then any bytes after the
    # header changed, mostly where the layout is.
    others = [encoded(data.draw(st.permutations(attributes)))]
    others.append(bytes(0x20 if at in padding else byte for at, byte in enumerate(raw)))
    if len(raw) > HEADER_LENGTH:
        at = st.one_of(st.sampled_from(headers + padding), st.integers(HEADER_LENGTH, len(raw) - 1))
        changed = bytearray(raw)
        for position, byte in data.draw(st.lists(st.tuples(at, st.integers(0, 255)), min_size=1, max_size=4)):
            changed[position] = byte
        others.append(bytes(changed))
    expected = {other: _walked(other, key) for other in [raw, *others]}
    for other in others:
        _walked(raw, key)  # caches the layout of raw
        assert _observed(raw, key) == expected[raw]  # the same bytes again
        assert _observed(other, key) == expected[other]  # checked against raw's layout
        assert _observed(other, key) == expected[other]  # against its own, or raw's again
        assert _observed(raw, key) == expected[raw]  # raw's layout, now the earlier of its length
        assert _observed(other, key) == expected[other]  # and back


def test_the_layout_cache_is_bounded():
    clear_layout_cache()
    for count in range(600):  # 600 lengths
        Message.parse(Message(1, MessageClass.REQUEST).add_raw(0x8888, bytes(4 * count)).encode())
    assert len(_LAYOUTS) == 512
    assert HEADER_LENGTH + 4 not in _LAYOUTS  # the oldest went
    assert HEADER_LENGTH + 4 + 4 * 599 in _LAYOUTS
    many = Message(1, MessageClass.REQUEST)
    for _ in range(200):
        many.add_raw(0x8888, b"")
    raw = many.encode()
    clear_layout_cache()
    assert len(Message.parse(raw).attributes) == 200
    assert len(raw) not in _LAYOUTS  # walked every time rather than held


def test_unknown_comprehension_required_attributes_are_reported():
    message = Message(1, MessageClass.REQUEST).add_raw(0x7777, b"x").add_raw(0xC001, b"y").add_raw(0x7777, b"z")
    parsed = Message.parse(message.encode())
    assert parsed.unknown_comprehension_required() == [0x7777]
    assert parsed.get(0x7777) == b"x"
    assert parsed.get_all(0x7777) == [b"x", b"z"]


def test_a_type_given_a_codec_later_is_no_longer_unknown(monkeypatch):
    raw = Message(1, MessageClass.REQUEST).add_raw(0x7F0E, b"x").encode()
    assert Message.parse(raw).unknown_comprehension_required() == [0x7F0E]
    assert Message.parse(raw).unknown_comprehension_required() == [0x7F0E]  # kept per sequence of types
    monkeypatch.setitem(a.DECODERS, 0x7F0E, a.decode_string)
    assert Message.parse(raw).unknown_comprehension_required() == []


@given(st.integers(0, 2**32 - 1), st.integers(0, 65535), st.binary(min_size=12, max_size=12))
def test_ipv4_xor_addresses_decode_as_inet_ntop_writes_them(ip, port, tid):
    host = socket.inet_ntop(socket.AF_INET, ip.to_bytes(4, "big"))
    value = a.encode_xor_address((host, port), tid)
    assert a.decode_xor_address(value, tid) == (host, port)
    with pytest.raises(StunParseError):
        a.decode_xor_address(value[:1] + b"\x02" + value[2:], tid)  # IPv6 family, IPv4 length


def test_password_algorithms_encode_the_same_whatever_came_before():
    ours = ((a.ALGORITHM_SHA256, b""), (a.ALGORITHM_MD5, b""))
    first = a.encode_password_algorithms(ours)
    other = a.encode_password_algorithms([(a.ALGORITHM_MD5, b"\x01")])
    assert a.encode_password_algorithms(ours) == first == bytes.fromhex("0002000000010000")
    assert a.decode_password_algorithms(other) == ((a.ALGORITHM_MD5, b"\x01"),)


def test_attributes_after_integrity_are_ignored_except_sha256_and_fingerprint():
    key = b"k"
    raw = Message(1, MessageClass.REQUEST).add(a.USERNAME, "u").encode(key)
    # Append a SOFTWARE attribute after MESSAGE-INTEGRITY by hand.
    extra = bytes.fromhex("80220004") + b"evil"
    forged = raw[:2] + (len(raw) - 20 + 8).to_bytes(2, "big") + raw[4:] + extra
    parsed = Message.parse(forged)
    assert a.SOFTWARE not in parsed
    assert parsed.get(a.USERNAME) == "u"


@pytest.mark.parametrize(
    "attr_type, size",
    [(a.MESSAGE_INTEGRITY, size) for size in (0, 4, 16, 20)]
    + [(a.MESSAGE_INTEGRITY_SHA256, size) for size in (0, 4, 12, 16, 28, 32, 36)],
)
def test_only_the_mac_lengths_of_the_rfc_verify(attr_type, size):
    # The right MAC cut to a length the RFC does not allow, down to nothing,
    # must not authenticate: a prefix that short is guessable (14.5, 14.6).
    key = b"secret key"
    digest = "sha1" if attr_type == a.MESSAGE_INTEGRITY else "sha256"
    body = bytes.fromhex("0006000175000000") + attr_type.to_bytes(2, "big") + size.to_bytes(2, "big")
    head = bytes.fromhex("0001") + (len(body) + size).to_bytes(2, "big") + a._COOKIE_BYTES + bytes(12)
    mac = hmac.new(key, head + body[:-4], digest).digest()
    parsed = Message.parse(head + body + mac[:size].ljust(size, b"\x00"))
    if attr_type == a.MESSAGE_INTEGRITY:
        assert parsed.check_integrity(key) == (size == 20)
    else:
        assert parsed.check_integrity_sha256(key) == (size in (16, 20, 24, 28, 32))


@pytest.mark.parametrize(
    "data, reason",
    [
        (bytes(19), "shorter"),
        (bytes.fromhex("c001000021 12a442".replace(" ", "")) + bytes(12), "significant"),
        (bytes.fromhex("0001000000000000") + bytes(12), "cookie"),
        (bytes.fromhex("000100042112a442") + bytes(12), "length"),
        (bytes.fromhex("000100032112a442") + bytes(15), "length"),
        (bytes.fromhex("000100082112a442") + bytes(12) + bytes.fromhex("00060008") + b"abcd", "overrun"),
    ],
)
def test_specific_malformations(data, reason):
    with pytest.raises(StunParseError, match=reason):
        Message.parse(data)


@given(st.lists(st.tuples(st.sampled_from([a.USERNAME, a.REALM, a.NONCE, a.PASSWORD_ALGORITHM,
                                           a.PASSWORD_ALGORITHMS, a.SOFTWARE, 0x8030]),
                          st.binary(max_size=12) | st.text(max_size=12).map(str.encode)), max_size=7), tids)
def test_long_term_credentials_read_what_get_reads(attributes, tid):
    message = Message(0x003, MessageClass.REQUEST, tid)
    for attr_type, value in attributes:
        message.add_raw(attr_type, value)
    raw = message.encode(b"key", fingerprint=True)

    def one_by_one(m: Message):
        return (m.get(a.USERNAME), m.get(a.REALM), m.get(a.NONCE),
                a.PASSWORD_ALGORITHM in m or a.PASSWORD_ALGORITHMS in m)

    for source in (lambda: Message.parse(raw), lambda: message):  # parsed (the fast read) and built
        try:
            expected = one_by_one(source())
        except StunParseError:  # not UTF-8: refused alike
            with pytest.raises(StunParseError):
                source().long_term_credentials()
            continue
        assert source().long_term_credentials() == expected
