"""Record layer: framing, several records per datagram, replay window, AEAD."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netcore.dtls.errors import DtlsParseError
from netcore.dtls.flight import FlightTimer
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
from netcore.dtls.recordlayer import DtlsStats, RecordLayer
from netcore.errors import UsageError

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


def _layers() -> tuple[RecordLayer, RecordLayer]:
    """Two record layers keyed as a client and a server would be after the key block."""
    block = bytes(range(40))
    client_key, server_key = RecordProtection.from_key_block("aes_gcm", 16, 4, block)
    client_peer, server_peer = RecordProtection.from_key_block("aes_gcm", 16, 4, block)
    sender, receiver = RecordLayer(DtlsStats()), RecordLayer(DtlsStats())
    sender.install_keys(1, write=client_key, read=server_key)
    receiver.install_keys(1, write=server_peer, read=client_peer)
    return sender, receiver


def test_record_layer_seals_per_epoch_and_drops_what_it_must():
    sender, receiver = _layers()
    plain = sender.seal(ContentType.HANDSHAKE, b"hello")  # epoch 0: plaintext, sequence 0
    (record,) = iter_records(plain)
    assert (record.epoch, record.sequence_number, record.fragment) == (0, 0, b"hello")
    assert receiver.open(record) == b"hello"
    sender.write_epoch = 1
    first, second = (next(iter_records(sender.seal(ContentType.APPLICATION_DATA, d))) for d in (b"a", b"b"))
    assert (first.epoch, first.sequence_number, second.sequence_number) == (1, 0, 1)
    assert first.fragment != b"a"  # protected
    assert receiver.open(second) == b"b" and receiver.open(first) == b"a"  # reordered within the window
    assert receiver.open(first) is None and receiver.stats.replayed == 1
    forged = Record(second.content_type, second.version, 1, 7, second.fragment)
    assert receiver.open(forged) is None and receiver.stats.bad_record_mac == 1
    assert receiver.open(Record(23, DTLS_1_2, 2, 0, b"x")) is None and receiver.stats.unknown_epoch == 1
    assert receiver.last_read_seq == 0  # of the last record accepted (first)


def test_record_layer_read_epoch_changes_once_and_only_with_keys():
    layer = RecordLayer(DtlsStats())
    assert not layer.change_read_epoch() and layer.read_epoch == 0  # keys not derived yet
    sender, receiver = _layers()
    assert receiver.change_read_epoch() and receiver.read_epoch == 1
    assert not receiver.change_read_epoch() and receiver.read_epoch == 1  # repeated


def test_record_layer_never_wraps_a_write_sequence():
    layer = RecordLayer(DtlsStats())
    layer.continue_write_sequence(0, MAX_SEQUENCE)
    layer.seal(ContentType.ALERT, b"\x01\x00")
    with pytest.raises(UsageError):
        layer.seal(ContentType.ALERT, b"\x01\x00")


def test_flight_timer_doubles_caps_and_gives_up():
    timer = FlightTimer(1.0, 4.0, 3)
    timer.start(10.0)
    assert timer.deadline == 11.0 and not timer.due(10.9) and timer.due(11.0)
    deadlines = []
    while timer.back_off(timer.deadline):
        deadlines.append(timer.deadline)
    assert deadlines == [13.0, 17.0, 21.0] and timer.deadline is None
