"""Record layer: framing, several records per datagram, replay window, AEAD."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netcore.dtls.errors import DtlsParseError
from netcore.dtls.protection import RecordProtection
from netcore.dtls.record import (
    DTLS_1_2,
    MAX_SEQUENCE,
    ContentType,
    Record,
    ReplayWindow,
    encode_record,
    iter_records,
)

records = st.builds(
    Record,
    st.sampled_from(list(ContentType)),
    st.sampled_from([0xFEFD, 0xFEFF]),
    st.integers(0, 0xFFFF),
    st.integers(0, MAX_SEQUENCE),
    st.binary(max_size=300),
)


@given(st.lists(records, min_size=1, max_size=5))
def test_records_round_trip_several_per_datagram(recs):
    datagram = b"".join(r.encode() for r in recs)
    parsed = list(iter_records(datagram))
    assert [(r.content_type, r.version, r.epoch, r.sequence_number, r.fragment) for r in parsed] == [
        (r.content_type, r.version, r.epoch, r.sequence_number, r.fragment) for r in recs
    ]
    assert b"".join(r.encode() for r in parsed) == datagram


@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_only_the_parse_error(data):
    try:
        for _ in iter_records(data):
            pass
    except DtlsParseError:
        pass


def test_truncated_record_is_a_parse_error():
    data = encode_record(ContentType.HANDSHAKE, DTLS_1_2, 0, 1, b"abcdef")
    with pytest.raises(DtlsParseError):
        list(iter_records(data[:-1]))
    with pytest.raises(DtlsParseError):
        list(iter_records(data[:12]))


def test_48_bit_sequence_number():
    data = encode_record(ContentType.APPLICATION_DATA, DTLS_1_2, 7, MAX_SEQUENCE, b"x")
    (record,) = iter_records(data)
    assert record.sequence_number == MAX_SEQUENCE and record.epoch == 7
    assert data[5:11] == b"\xff" * 6


def test_replay_window():
    window = ReplayWindow(64)
    for seq in (5, 3, 10, 70):
        assert not window.is_replay(seq)
        window.mark(seq)
    assert window.is_replay(70) and window.is_replay(10)
    assert window.is_replay(5)  # 70 - 5 >= 64: left of the window
    assert not window.is_replay(69) and not window.is_replay(7)
    window.mark(7)
    assert window.is_replay(7)


@given(st.lists(st.integers(0, 300), max_size=60))
def test_replay_window_never_accepts_twice(seqs):
    window = ReplayWindow(64)
    accepted = set()
    for seq in seqs:
        if not window.is_replay(seq):
            assert seq not in accepted
            window.mark(seq)
            accepted.add(seq)


@pytest.mark.parametrize("aead,key_len,iv_len", [("aes_gcm", 16, 4), ("chacha20_poly1305", 32, 12)])
def test_record_protection_round_trip_and_tamper(aead, key_len, iv_len):
    sealer = RecordProtection(aead, bytes(range(key_len)), bytes(range(iv_len)))
    opener = RecordProtection(aead, bytes(range(key_len)), bytes(range(iv_len)))
    sealed = sealer.seal(ContentType.APPLICATION_DATA, DTLS_1_2, 1, 42, b"hello")
    assert len(sealed) == 5 + sealer.overhead
    assert opener.open(ContentType.APPLICATION_DATA, DTLS_1_2, 1, 42, sealed) == b"hello"
    with pytest.raises(DtlsParseError):  # the sequence number is authenticated
        opener.open(ContentType.APPLICATION_DATA, DTLS_1_2, 1, 43, sealed)
    with pytest.raises(DtlsParseError):  # so is the content type
        opener.open(ContentType.HANDSHAKE, DTLS_1_2, 1, 42, sealed)
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(DtlsParseError):
        opener.open(ContentType.APPLICATION_DATA, DTLS_1_2, 1, 42, tampered)
    with pytest.raises(DtlsParseError):
        opener.open(ContentType.APPLICATION_DATA, DTLS_1_2, 1, 42, b"short")


def test_aes_gcm_explicit_nonce_is_epoch_and_sequence():
    sealer = RecordProtection("aes_gcm", bytes(16), bytes(4))
    sealed = sealer.seal(ContentType.APPLICATION_DATA, DTLS_1_2, 1, 0x0102030405, b"")
    assert sealed[:8] == bytes.fromhex("0001000102030405")
