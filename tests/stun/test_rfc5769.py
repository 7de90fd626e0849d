"""RFC 5769 test vectors, byte for byte: parse, verify, re-encode."""

import pytest

from netcore.stun import attributes as a
from netcore.stun.credentials import long_term_key, short_term_key
from netcore.stun.message import BINDING, Message, MessageClass

pytestmark = pytest.mark.usefixtures("stun_codec")  # the compiled codec and Python alike

# RFC 5769 section 2.1: the request pads USERNAME with 0x20 bytes.
SAMPLE_REQUEST = bytes.fromhex(
    "000100582112a442b7e7a701bc34d686fa87dfae"
    "802200105354554e207465737420636c69656e74"
    "002400046e0001ff"
    "80290008932ff9b151263b36"
    "000600096576746a3a68367659202020"
    "000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2"
    "80280004e57a3bcf"
)
# Section 2.2.
SAMPLE_IPV4_RESPONSE = bytes.fromhex(
    "0101003c2112a442b7e7a701bc34d686fa87dfae"
    "8022000b7465737420766563746f7220"
    "002000080001a147e112a643"
    "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7"
    "80280004c07d4c96"
)
# Section 2.3.
SAMPLE_IPV6_RESPONSE = bytes.fromhex(
    "010100482112a442b7e7a701bc34d686fa87dfae"
    "8022000b7465737420766563746f7220"
    "002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9"
    "00080014a382954e4be67bf11784c97c8292c275bfe3ed41"
    "80280004c8fb0b4c"
)
# Section 2.4: long-term credentials, no FINGERPRINT.
SAMPLE_LONG_TERM_REQUEST = bytes.fromhex(
    "000100602112a44278ad3433c6ad72c029da412e"
    "00060012e3839ee38388e383aae38383e382afe382b90000"
    "0015001c662f2f3439396b39353464364f4c33346f4c39465354767936347341"
    "0014000b6578616d706c652e6f726700"
    "00080014f67024656dd64a3e02b8e0712e85c9a28ca89666"
)

SHORT_TERM_PASSWORD = "VOkJxbRl1RmTxUk/WvJxBt"
TID = bytes.fromhex("b7e7a701bc34d686fa87dfae")


def test_sample_request():
    message = Message.parse(SAMPLE_REQUEST)
    assert message.method == BINDING and message.message_class == MessageClass.REQUEST
    assert message.transaction_id == TID
    assert message.get(a.SOFTWARE) == "STUN test client"
    assert message.get(a.PRIORITY) == 0x6E0001FF
    assert message.get(a.ICE_CONTROLLED) == 0x932FF9B151263B36
    assert message.get(a.USERNAME) == "evtj:h6vY"
    key = short_term_key(SHORT_TERM_PASSWORD)
    assert message.check_integrity(key)
    assert not message.check_integrity(short_term_key("wrong"))
    assert message.check_fingerprint()
    assert message.encode(key, fingerprint=True) == SAMPLE_REQUEST


def test_sample_request_rebuilt_from_scratch_differs_only_in_padding():
    key = short_term_key(SHORT_TERM_PASSWORD)
    built = (
        Message(BINDING, MessageClass.REQUEST, TID)
        .add(a.SOFTWARE, "STUN test client")
        .add(a.PRIORITY, 0x6E0001FF)
        .add(a.ICE_CONTROLLED, 0x932FF9B151263B36)
        .add(a.USERNAME, "evtj:h6vY")
        .encode(key, fingerprint=True)
    )
    # Zero padding instead of the RFC's 0x20: same layout, a new valid signature.
    assert len(built) == len(SAMPLE_REQUEST)
    assert built[:73] == SAMPLE_REQUEST[:73]  # up to the end of USERNAME's value
    assert built[73:76] == b"\x00\x00\x00" and SAMPLE_REQUEST[73:76] == b"   "
    parsed = Message.parse(built)
    assert parsed.check_integrity(key) and parsed.check_fingerprint()


def _check_response(raw: bytes, mapped: tuple[str, int]) -> None:
    message = Message.parse(raw)
    assert message.message_class == MessageClass.SUCCESS
    assert message.get(a.SOFTWARE) == "test vector"
    assert message.get(a.XOR_MAPPED_ADDRESS) == mapped
    key = short_term_key(SHORT_TERM_PASSWORD)
    assert message.check_integrity(key)
    assert message.check_fingerprint()
    assert message.encode(key, fingerprint=True) == raw


def test_sample_ipv4_response():
    _check_response(SAMPLE_IPV4_RESPONSE, ("192.0.2.1", 32853))


def test_sample_ipv6_response():
    _check_response(SAMPLE_IPV6_RESPONSE, ("2001:db8:1234:5678:11:2233:4455:6677", 32853))


def test_xor_address_encoding_matches_the_vectors():
    v4 = a.encode_xor_address(("192.0.2.1", 32853), TID)
    assert v4 == bytes.fromhex("0001a147e112a643")
    v6 = a.encode_xor_address(("2001:db8:1234:5678:11:2233:4455:6677", 32853), TID)
    assert v6 == bytes.fromhex("0002a1470113a9faa5d3f179bc25f4b5bed2b9d9")


def test_sample_long_term_request():
    message = Message.parse(SAMPLE_LONG_TERM_REQUEST)
    username = "\u30de\u30c8\u30ea\u30c3\u30af\u30b9"
    assert message.get(a.USERNAME) == username
    assert message.get(a.NONCE) == "f//499k954d6OL34oL9FSTvy64sA"
    assert message.get(a.REALM) == "example.org"
    assert not message.has_fingerprint
    # The RFC's password before SASLprep: soft hyphen, feminine ordinal, Roman nine.
    key = long_term_key(username, "example.org", "The\u00adM\u00aatr\u2168")
    assert key == long_term_key(username, "example.org", "TheMatrIX")
    assert message.check_integrity(key)
    assert message.encode(key) == SAMPLE_LONG_TERM_REQUEST
