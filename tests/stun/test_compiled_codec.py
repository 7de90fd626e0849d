"""The compiled STUN codec and the Python one give the same bytes and the same verdicts.

Each example runs through both (:func:`netcore.stun.compiled.use`) and the
results are compared: encoding with any mix of signatures and kept padding,
checking MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT of good and tampered
messages, and a TURN server's whole answers to the same requests.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import pytest
from hypothesis import given, strategies as st

from netcore.stun import attributes as a
from netcore.stun import compiled
from netcore.stun.keyed_hmac import KeyedStates, keyed_hmac
from netcore.stun.message import Message, MessageClass, clear_layout_cache
from netcore.turn import wire as w
from tests.turn.sim import PEER, Client, drain, events, make_server

if not compiled.available():  # the comparison needs both; tests/conftest.py says when that is a failure
    pytest.skip("netcore.stun._codec was not built", allow_module_level=True)

tids = st.binary(min_size=12, max_size=12)
keys = st.binary(min_size=0, max_size=100)  # longer than a block (64) is hashed first (RFC 2104)
raw_attributes = st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40)), max_size=8)


@contextlib.contextmanager
def _codec(compiled_on: bool) -> Iterator[None]:
    before = compiled.codec is not None
    compiled.use(compiled_on)
    try:
        yield
    finally:
        compiled.use(before)


def both(work: Callable[[], object]) -> tuple[object, object]:
    """``work`` run with the compiled codec and with Python, each from a cold layout cache."""
    results = []
    for compiled_on in (True, False):
        with _codec(compiled_on):
            clear_layout_cache()
            results.append(work())
    return results[0], results[1]


@given(st.integers(0, 0xFFF), st.sampled_from(list(MessageClass)), tids, raw_attributes,
       st.none() | keys, st.none() | keys, st.booleans())
def test_encoding_gives_the_same_bytes(method, message_class, tid, attributes, key, key256, fingerprint):
    def encode() -> bytes:
        message = Message(method, message_class, tid)
        for attr_type, value in attributes:
            message.add_raw(attr_type, value)
        return message.encode(key, integrity_sha256_key=key256, fingerprint=fingerprint)

    ours, python = both(encode)
    assert ours == python


@given(tids, raw_attributes, keys, st.booleans(), st.booleans(), st.data())
def test_checks_give_the_same_verdicts_on_good_and_tampered_messages(tid, attributes, key, sha256, fingerprint,
                                                                     data):
    message = Message(0x003, MessageClass.REQUEST, tid)
    for attr_type, value in attributes:
        message.add_raw(attr_type, value)
    raw = bytearray(message.encode(None if sha256 else key, integrity_sha256_key=key if sha256 else None,
                                   fingerprint=fingerprint))
    if data.draw(st.booleans()):
        bit = data.draw(st.integers(20 * 8, len(raw) * 8 - 1))  # the body: the header must still parse
        raw[bit // 8] ^= 1 << (bit % 8)
    wrong_key = data.draw(st.booleans())

    def verdicts() -> tuple:
        try:
            parsed = Message.parse(bytes(raw))
        except Exception as exc:  # a flip in a length field: both must refuse alike
            return type(exc).__name__
        check = parsed.check_integrity_sha256 if sha256 else parsed.check_integrity
        return check(key + b"x" if wrong_key else key), parsed.check_fingerprint(), parsed.encode(key)

    ours, python = both(verdicts)
    assert ours == python


def test_an_untampered_message_verifies_on_both_paths():
    """The comparison above would pass if both paths refused everything: here they must accept."""
    message = Message(0x001, MessageClass.REQUEST, bytes(12)).add(a.USERNAME, "user")
    for sha256 in (False, True):
        raw = message.encode(None if sha256 else b"key", integrity_sha256_key=b"key" if sha256 else None,
                             fingerprint=True)

        def verdicts() -> tuple:
            parsed = Message.parse(raw)
            check = parsed.check_integrity_sha256 if sha256 else parsed.check_integrity
            return check(b"key"), parsed.check_fingerprint(), check(b"other")

        assert both(verdicts) == ((True, True, False), (True, True, False))


def test_non_zero_padding_of_a_parsed_message_is_kept_on_both_paths():
    # USERNAME "abc" padded with 0x20 (RFC 5769 pads this way), then SOFTWARE "d" padded with 0xFF.
    body = bytes.fromhex("00060003616263208022000164ffffff")
    raw = bytes.fromhex("00010010" "2112a442") + bytes(range(12)) + body
    ours, python = both(lambda: Message.parse(raw).encode(b"k", fingerprint=True))
    assert ours == python
    assert ours[20:36] == body


@given(keys, st.binary(max_size=200))
def test_keyed_hmac_is_rfc_2104_on_both_paths(key, data):
    import hmac

    for digest in ("sha1", "sha256"):
        ours, python = both(lambda: keyed_hmac(key, data, KeyedStates(digest)))
        assert ours == python == hmac.digest(key, data, digest)


def test_what_the_compiled_codec_does_not_take_falls_back_to_python():
    """A message too long for the 16-bit length field: the same error on both paths."""
    def encode() -> str:
        message = Message(0x001, MessageClass.REQUEST, bytes(12)).add_raw(0x8022, bytes(40000))
        message.add_raw(0x8023, bytes(40000))
        try:
            message.encode(b"k")
        except Exception as exc:
            return type(exc).__name__
        return "encoded"

    ours, python = both(encode)
    assert ours == python != "encoded"


def _conversation() -> tuple[list[bytes], list[str]]:
    """A TURN client's set-up on a fresh server: every answer's bytes and every event's name."""
    server, _ = make_server()
    answers: list[bytes] = []
    for sha256 in (False, True):
        client = Client(server, addr=("198.51.100.7", 40000 + sha256), sha256=sha256)
        client.allocate((w.LIFETIME, 600))
        client.request(w.CREATE_PERMISSION, (w.XOR_PEER_ADDRESS, PEER))
        client.request(w.CHANNEL_BIND, (w.CHANNEL_NUMBER, 0x4000), (w.XOR_PEER_ADDRESS, PEER))
        client.request(w.REFRESH, (w.LIFETIME, 600))
        client.request(w.CHANNEL_BIND, (w.CHANNEL_NUMBER, 0x4001), (w.XOR_PEER_ADDRESS, PEER))  # 400
        client.request(w.REFRESH, (w.LIFETIME, 0))
    # What Client keeps is the parsed answer; the bytes come from replaying one exchange by hand.
    client = Client(server, addr=("198.51.100.9", 1))
    first = Message(w.ALLOCATE, MessageClass.REQUEST, bytes(12)).add(w.REQUESTED_TRANSPORT, w.TRANSPORT_UDP)
    out = client.send_raw(first.encode(fingerprint=True))
    answers += [data for data, _, _ in out]
    nonce = Message.parse(out[0][0]).get(a.NONCE)
    for tid, method, attributes in (
            (1, w.ALLOCATE, [(w.REQUESTED_TRANSPORT, w.TRANSPORT_UDP)]),
            (2, w.CHANNEL_BIND, [(w.CHANNEL_NUMBER, 0x4000), (w.XOR_PEER_ADDRESS, PEER)]),
            (3, w.CREATE_PERMISSION, [(w.XOR_PEER_ADDRESS, PEER), (w.XOR_PEER_ADDRESS, ("203.0.113.6", 1))]),
            (4, w.REFRESH, [(w.LIFETIME, 0)])):
        request = Message(method, MessageClass.REQUEST, bytes([tid]) * 12)
        for attr_type, value in attributes:
            request.add(attr_type, value)
        request.add(a.USERNAME, "alice").add(a.REALM, "example.org").add(a.NONCE, nonce)
        out = client.send_raw(request.encode(client.key, fingerprint=True))
        answers += [data for data, _, _ in out]
    answers += [data for data, _, _ in drain(server)]
    return answers, [type(event).__name__ for event in events(server)]


def test_a_turn_server_answers_the_same_bytes_on_both_paths():
    server, _ = make_server()
    client = Client(server)
    with _codec(True):
        assert client.allocate() is not None and client.nonce is not None  # it talks at all
    ours, python = both(_conversation)
    assert ours == python
    assert len(ours[0]) == 5  # 401, then four successes
    assert all(Message.parse(d).message_class == MessageClass.SUCCESS for d in ours[0][1:])


def test_a_server_that_switched_codec_keeps_verifying_its_clients():
    """Cached keys are of the codec's kind: switching drops them rather than mixing kinds."""
    server, _ = make_server()
    client = Client(server)
    with _codec(True):
        assert client.allocate().message_class == MessageClass.SUCCESS
    with _codec(False):
        assert client.request(w.REFRESH, (w.LIFETIME, 600)).message_class == MessageClass.SUCCESS
    with _codec(True):
        assert client.request(w.REFRESH, (w.LIFETIME, 600)).message_class == MessageClass.SUCCESS


@given(st.integers(0, 0xFFF), tids, st.lists(st.sampled_from([(a.SOFTWARE, "netcore"), (w.LIFETIME, 600),
                                                              (w.LIFETIME, 0), (w.LIFETIME, 0xFFFFFFFF),
                                                              (w.LIFETIME, True), (w.CHANNEL_NUMBER, 0x4000),
                                                              (a.ERROR_CODE, (400, "Bad"))]),
                                             max_size=3),
       st.none() | keys, st.none() | keys, st.booleans())
def test_encode_response_is_response_add_encode_on_both_paths(method, tid, attributes, key, key256, fingerprint):
    """The one-call answer gives the bytes of the long way, with either codec, cold or warm type cache."""
    request = Message.parse(Message(method, MessageClass.REQUEST, tid).encode())

    def long_way() -> bytes:
        response = request.response()
        for attr_type, value in attributes:
            response.add(attr_type, value)
        return response.encode(key, integrity_sha256_key=key256, fingerprint=fingerprint)

    def one_call() -> bytes:
        return request.encode_response(attributes, key, integrity_sha256_key=key256, fingerprint=fingerprint)

    expected = long_way()
    assert both(one_call) == (expected, expected)
    assert both(one_call) == (expected, expected)  # the message type now cached


def test_encode_response_refuses_an_attribute_without_a_codec_as_add_does():
    from netcore.errors import UsageError

    request = Message.parse(Message(w.REFRESH, MessageClass.REQUEST).encode())
    request.encode_response([(w.LIFETIME, 1)])  # the type cached
    for compiled_on in (True, False):
        with _codec(compiled_on), pytest.raises(UsageError):
            request.encode_response([(0x7FFE, b"x")])
        for lifetime in (-1, 1 << 32, "600"):  # what the LIFETIME encoder refuses, whether or not C writes it
            with _codec(compiled_on), pytest.raises((UsageError, TypeError)) as refused:
                request.encode_response([(w.LIFETIME, lifetime)], b"key")
            with pytest.raises(refused.type):
                request.response().add(w.LIFETIME, lifetime)


def _parsed(data: bytes) -> tuple:
    """What a parse gives, comparable across paths: the message's fields and attributes, or the error's text."""
    try:
        message = Message.parse(data)
    except Exception as exc:  # noqa: BLE001 - the kind and text of any error are compared
        return type(exc).__name__, str(exc)
    return message.method, int(message.message_class), message.transaction_id, message.attributes, \
        message.has_integrity, message.has_fingerprint


@given(st.integers(0, 0xFFF), st.sampled_from(list(MessageClass)), tids, raw_attributes, st.none() | keys,
       st.booleans(), st.integers(0, 40), st.binary(max_size=4))
def test_parse_gives_the_same_message_or_error_on_both_paths(method, message_class, tid, attributes, key,
                                                             fingerprint, cut, junk):
    """The compiled parse takes a datagram whose type and layout are cached (the second of a kind); Python
    every other. Whole, cut, or with bytes appended, each datagram parses alike twice on both paths."""
    message = Message(method, message_class, tid)
    for attr_type, value in attributes:
        message.add_raw(attr_type, value)
    whole = message.encode(key, fingerprint=fingerprint)
    for data in (whole, whole[: len(whole) - cut], whole + junk):
        def twice() -> tuple:
            return _parsed(data), _parsed(data)

        on, off = both(twice)
        assert on == off
        assert on[0] == on[1]


@given(st.binary(max_size=120))
def test_the_compiled_parse_takes_random_bytes_cleanly(data):
    """Random bytes: a clean StunParseError on both paths alike (or the same message), and the compiled
    function itself answers None or a message, never an exception."""
    from netcore.stun.message import _LAYOUTS, _TYPES

    on, off = both(lambda: (_parsed(data), _parsed(data)))
    assert on == off
    assert on[0][0] in ("StunParseError",) or isinstance(on[0][0], int)
    with _codec(True):
        result = compiled.codec.parse(data, _LAYOUTS, _TYPES, Message)
    assert result is None or isinstance(result, Message)


def test_the_compiled_parse_is_the_cache_hit():
    """The second datagram of a kind comes out of the compiled parse, with the cached layout."""
    from netcore.stun.message import _LAYOUTS, _TYPES

    raw = Message(w.REFRESH, MessageClass.REQUEST).add(w.LIFETIME, 600).encode(b"key", fingerprint=True)
    with _codec(True):
        clear_layout_cache()
        assert compiled.codec.parse(raw, _LAYOUTS, _TYPES, Message) is None  # nothing cached yet
        first = Message.parse(raw)
        second = compiled.codec.parse(raw, _LAYOUTS, _TYPES, Message)
        assert type(second) is Message and second._layout is first._layout
        assert (second.method, second.message_class, second.transaction_id) == \
            (first.method, first.message_class, first.transaction_id)
        assert second.get(w.LIFETIME) == 600 and second.check_integrity(b"key") and second.check_fingerprint()
        for bad in (bytearray(raw), raw[:-4], raw[:4] + bytes(4) + raw[8:], raw + bytes(4)):
            assert compiled.codec.parse(bad, _LAYOUTS, _TYPES, Message) is None  # Python says what is wrong
        with pytest.raises(TypeError):
            compiled.codec.parse(raw, None, _TYPES, Message)


texts = st.none() | st.binary(max_size=12) | st.text(max_size=8).map(str.encode)


@given(texts, texts, texts, st.sampled_from([None, a.PASSWORD_ALGORITHM, a.PASSWORD_ALGORITHMS]), keys)
def test_long_term_credentials_are_the_same_on_both_paths(username, realm, nonce, algorithm, key):
    """USERNAME, REALM, NONCE (absent, UTF-8 or not) and PASSWORD-ALGORITHM(S): the same texts or the same
    StunParseError from the compiled reading and from Python's."""
    message = Message(w.REFRESH, MessageClass.REQUEST)
    for attr_type, value in ((a.USERNAME, username), (a.REALM, realm), (a.NONCE, nonce), (algorithm, b"\0\1\0\0")):
        if value is not None and attr_type is not None:
            message.add_raw(attr_type, value)
    raw = message.encode(key)

    def read() -> object:
        try:
            return Message.parse(raw).long_term_credentials()
        except Exception as exc:  # noqa: BLE001 - the kind and text are compared
            return type(exc).__name__, str(exc)

    on, off = both(read)
    assert on == off
    expected = [None if v is None else v.decode("utf-8", "replace") for v in (username, realm, nonce)]
    if isinstance(on, tuple) and len(on) == 4:
        assert list(on[:3]) == expected and on[3] == (algorithm is not None)
    else:
        assert on[0] == "StunParseError"


def _read(data: bytes) -> tuple:
    """What read_request gives, comparable across paths: the message as _parsed sees it, the verdicts, and the
    credentials (those it left unread as long_term_credentials gives them, or its error's text)."""
    from netcore.stun.message import read_request

    try:
        message, fingerprint, unknown, integrity, credentials = read_request(data)
    except Exception as exc:  # noqa: BLE001 - the kind and text of any error are compared
        return type(exc).__name__, str(exc)
    if credentials is None:
        try:
            credentials = message.long_term_credentials()
        except Exception as exc:  # noqa: BLE001
            credentials = (type(exc).__name__, str(exc))
    return (message.method, int(message.message_class), message.transaction_id, message.attributes,
            fingerprint, unknown, integrity, credentials)


unknown_types = st.sampled_from([0x0002, 0x0003, 0x7FFF, 0x0031, 0xC001])  # none has a codec


@given(st.integers(0, 0xFFF), st.sampled_from(list(MessageClass)), tids, raw_attributes,
       st.lists(st.tuples(unknown_types, st.binary(max_size=6)), max_size=3), texts,
       st.none() | keys, st.none() | keys, st.booleans(), st.integers(0, 40), st.binary(max_size=4),
       st.integers(0, 3))
def test_read_request_gives_the_same_on_both_paths(method, message_class, tid, attributes, unknown, username,
                                                   key, key256, fingerprint, cut, junk, flip):
    """The compiled read (a cached layout) and Python's: the same message, FINGERPRINT verdict (good, and
    broken by a flipped byte), unknown types, integrity kind and credentials, or the same error; whole, cut or
    extended datagrams, each read twice (the second a cache hit)."""
    message = Message(method, message_class, tid)
    for attr_type, value in attributes + unknown:
        message.add_raw(attr_type, value)
    if username is not None:
        message.add_raw(a.USERNAME, username)
    whole = message.encode(key, integrity_sha256_key=key256, fingerprint=fingerprint)
    flipped = bytearray(whole)
    flipped[-1 - flip] ^= 0x40
    for data in (whole, bytes(flipped), whole[: len(whole) - cut], whole + junk):
        on, off = both(lambda: (_read(data), _read(data)))
        assert on == off
        assert on[0] == on[1]


@given(st.binary(max_size=120))
def test_the_compiled_read_takes_random_bytes_cleanly(data):
    """Random bytes: the same error or reading on both paths, and the compiled function answers None or a
    reading, never an exception."""
    from netcore.stun.attributes import DECODERS
    from netcore.stun.message import _LAYOUTS, _TYPES

    on, off = both(lambda: (_read(data), _read(data)))
    assert on == off
    with _codec(True):
        for _ in range(2):
            result = compiled.codec.request(data, _LAYOUTS, _TYPES, Message, DECODERS)
            assert result is None or (type(result) is tuple and isinstance(result[0], Message))
            _read(data)  # caches its layout, if it parses


def test_the_compiled_read_is_the_cache_hit_and_says_what_it_read():
    from netcore.stun.attributes import DECODERS
    from netcore.stun.message import _LAYOUTS, _TYPES, read_request

    request = Message(w.REFRESH, MessageClass.REQUEST).add(w.LIFETIME, 600).add(a.USERNAME, "u") \
        .add(a.REALM, "r").add(a.NONCE, "n").add_raw(0x0031, b"x")
    raw = request.encode(b"key", fingerprint=True)
    with _codec(True):
        clear_layout_cache()
        assert compiled.codec.request(raw, _LAYOUTS, _TYPES, Message, DECODERS) is None  # nothing cached yet
        python = read_request(raw)
        message, fingerprint, unknown, integrity, credentials = \
            compiled.codec.request(raw, _LAYOUTS, _TYPES, Message, DECODERS)
        assert message._layout is python[0]._layout and message.transaction_id == request.transaction_id
        assert (fingerprint, unknown, integrity, credentials) == (True, (0x0031,), 1, ("u", "r", "n", False))
        assert python[1:4] == (True, (0x0031,), 1)
        sha256 = request.encode(None, integrity_sha256_key=b"key")
        read_request(sha256)
        assert compiled.codec.request(sha256, _LAYOUTS, _TYPES, Message, DECODERS)[1:4] == (None, (0x0031,), 2)
        with pytest.raises(TypeError):
            compiled.codec.request(raw, _LAYOUTS, _TYPES, Message, None)


def test_the_compiled_verify_is_the_python_check_at_the_layouts_signature():
    """verify(states, key, raw, signature): the verdict the Python check (_verify_hmac) gives for the same
    signature, False for none, and the states' own KeyedMac made for a new key."""
    from netcore.stun.message import _SHA1_STATES, _SHA256_STATES, _verify_hmac

    message = Message(w.REFRESH, MessageClass.REQUEST).add(w.LIFETIME, 600)
    with _codec(True):
        for states, raw in ((_SHA1_STATES, message.encode(b"key", fingerprint=True)),
                            (_SHA256_STATES, message.encode(None, integrity_sha256_key=b"key"))):
            parsed = Message.parse(raw)
            signature = parsed._layout.mi if states is _SHA1_STATES else parsed._layout.mi256
            for key in (b"key", b"other", b"new key " * 20):
                assert compiled.codec.verify(states, key, raw, signature) == \
                    _verify_hmac(raw, signature, key, states) == (key == b"key")
            assert compiled.codec.verify(states, b"key", raw, None) is False
            with pytest.raises(TypeError):
                compiled.codec.verify({b"key": b"not a KeyedMac"}, b"key", raw, signature)


_SHAPED = [w.LIFETIME, w.CHANNEL_NUMBER, w.XOR_PEER_ADDRESS, w.XOR_RELAYED_ADDRESS, a.XOR_MAPPED_ADDRESS,
           w.REQUESTED_TRANSPORT, w.REQUESTED_ADDRESS_FAMILY, w.ADDITIONAL_ADDRESS_FAMILY, w.CONNECTION_ID,
           a.USERNAME, a.PRIORITY, w.DATA_ATTR, 0x0031]  # the last three: no shape, no codec


def _got(data: bytes, attr_type: int) -> object:
    try:
        return Message.parse(data).get(attr_type, "absent")
    except Exception as exc:  # noqa: BLE001 - the kind and text of any error are compared
        return type(exc).__name__, str(exc)


@given(tids, st.sampled_from(_SHAPED), st.binary(max_size=20) | st.sampled_from([b"\0\1\0\0", b"\xff\x01\x12\x34"]),
       st.integers(0, 3), st.booleans())
def test_get_gives_the_same_value_or_error_on_both_paths(tid, attr_type, value, family, present):
    """Message.get of a parsed message: the shapes the compiled codec reads itself (of their one length, an
    IPv4 XOR address of any family byte) and everything else through the decoders give the same value or the
    same error on both paths; cold and cached layouts alike."""
    if len(value) == 8:
        value = value[:1] + bytes((family,)) + value[2:]
    message = Message(w.CHANNEL_BIND, MessageClass.REQUEST, tid)
    if present:
        message.add_raw(attr_type, value)
    data = message.encode(b"key")
    on, off = both(lambda: (_got(data, attr_type), _got(data, attr_type)))
    assert on == off
    assert on[0] == on[1]


def test_the_shapes_read_in_c_are_the_decoders_values():
    """Each declared shape, of its length, gives what its decoder gives (and in C: the shapes are used)."""
    from netcore.stun.attributes import DECODERS, SHAPES
    from netcore.stun.message import read_request

    request = Message(w.CHANNEL_BIND, MessageClass.REQUEST).add(w.CHANNEL_NUMBER, 0x4001) \
        .add(w.XOR_PEER_ADDRESS, ("192.0.2.255", 65535)).add(w.LIFETIME, 0xFFFFFFFF) \
        .add(w.REQUESTED_TRANSPORT, 17)
    raw = request.encode(b"key")
    expected = {w.CHANNEL_NUMBER: 0x4001, w.XOR_PEER_ADDRESS: ("192.0.2.255", 65535), w.LIFETIME: 0xFFFFFFFF,
                w.REQUESTED_TRANSPORT: 17}
    assert {DECODERS[t] for t in expected} <= set(SHAPES)
    with _codec(True):
        clear_layout_cache()
        read_request(raw)
        message = read_request(raw)[0]
        assert {t: message.get(t) for t in expected} == expected
        assert message.get(w.EVEN_PORT) is None and message.get(w.EVEN_PORT, 7) == 7
