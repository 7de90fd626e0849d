"""The DTLS core driven in memory under a fake clock: handshakes, timers,
loss, bad input and the failures that must end a handshake."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netcore.dtls import (
    AlertReceived,
    DataReceived,
    CipherSuite,
    ConnectionClosed,
    DtlsCertificate,
    DtlsConnection,
    HandshakeCompleted,
    HandshakeFailed,
    NamedGroup,
    SignatureScheme,
    SrtpProfile,
    State,
)
from netcore.dtls import handshake as hs
from netcore.dtls.certificate import peer_public_key
from netcore.dtls.cookie import HelloVerdict, check_client_hello
from netcore.dtls.record import AlertDescription, ContentType, Record, iter_records
from netcore.dtls.errors import DtlsParseError, HandshakeError
from netcore.dtls.protection import RecordProtection
from netcore.dtls.suites import KeyShare
from netcore.errors import ParseError, UsageError
from netcore.net import Receive

from .peers import drain_events, exchange, pair

EC_CLIENT = DtlsCertificate.generate("client")
EC_SERVER = DtlsCertificate.generate("server")
RSA_SERVER = DtlsCertificate.generate("rsa-server", key_type="rsa")


def connected_pair(**kwargs):
    client, server = pair(EC_CLIENT, EC_SERVER, **kwargs)
    client.connect(0.0)
    exchange(client, server)
    assert client.state is State.CONNECTED and server.state is State.CONNECTED
    return client, server


@pytest.mark.parametrize("group", [NamedGroup.x25519, NamedGroup.secp256r1])
@pytest.mark.parametrize(
    "suite",
    [CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256],
)
def test_handshake_groups_and_suites(group, suite):
    client, server = connected_pair(groups=[group], server={"cipher_suites": [suite]})
    (done,) = [e for e in drain_events(client) if isinstance(e, HandshakeCompleted)]
    assert done.cipher_suite == suite and done.srtp_profile == SrtpProfile.SRTP_AEAD_AES_128_GCM
    assert client.group == server.group == group
    assert done.peer_fingerprint == EC_SERVER.fingerprint() and done.extended_master_secret
    (done,) = [e for e in drain_events(server) if isinstance(e, HandshakeCompleted)]
    assert done.peer_fingerprint == EC_CLIENT.fingerprint()
    assert client.export_keying_material(b"EXTRACTOR-dtls_srtp", 56) == server.export_keying_material(
        b"EXTRACTOR-dtls_srtp", 56
    )
    client.send(b"ping", 0.0)
    exchange(client, server)
    assert drain_events(server) == [DataReceived(b"ping")]
    server.send(b"pong", 0.0)
    exchange(client, server)
    assert drain_events(client) == [DataReceived(b"pong")]


def test_rsa_server_certificate():
    client, server = pair(EC_CLIENT, RSA_SERVER)
    client.connect(0.0)
    exchange(client, server)
    assert client.state is State.CONNECTED
    assert client.cipher_suite == CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256


def test_srtp_profile_follows_server_preference():
    client, server = connected_pair(
        client={"srtp_profiles": [SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_32, SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_80]},
        server={"srtp_profiles": [SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_80]},
    )
    assert client.srtp_profile == server.srtp_profile == SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_80


def test_stateless_cookie_exchange():
    client, server = pair(EC_CLIENT, EC_SERVER, server={"cookie_secret": b"k" * 32, "client_id": b"1.2.3.4:5"})
    client.connect(0.0)
    hello = client.poll_transmit().data
    server.handle_datagram(Receive(hello), 0.0)
    verify = server.poll_transmit().data
    ((record, (header, _)),) = [(r, next(hs.iter_fragments(r.fragment))) for r in iter_records(verify)]
    assert header.msg_type == hs.HandshakeType.hello_verify_request
    assert record.sequence_number == 0  # the ClientHello's, so no state is kept
    assert server.state is State.SERVER_WAIT_CLIENT_HELLO and server.poll_transmit() is None
    # The same hello replayed from elsewhere (another client_id) would not carry
    # a valid cookie: a server for another address keeps challenging.
    other = DtlsConnection(False, EC_SERVER, cookie_secret=b"k" * 32, client_id=b"6.6.6.6:6")
    client.handle_datagram(Receive(verify), 0.0)
    hello_with_cookie = client.poll_transmit().data
    other.handle_datagram(Receive(hello_with_cookie), 0.0)
    assert other.state is State.SERVER_WAIT_CLIENT_HELLO
    server.handle_datagram(Receive(hello_with_cookie), 0.0)
    exchange(client, server)
    assert client.state is State.CONNECTED and server.state is State.CONNECTED


def test_fragmentation_by_mtu():
    client, server = pair(EC_CLIENT, RSA_SERVER, mtu=200)
    client.connect(0.0)
    exchange(client, server)
    server.handle_timeout(0.0)  # nothing due
    assert client.state is State.CONNECTED and server.state is State.CONNECTED
    client2, server2 = pair(EC_CLIENT, RSA_SERVER, mtu=200)
    client2.connect(0.0)
    server2.handle_datagram(Receive(client2.poll_transmit().data), 0.0)
    sizes = []
    while (out := server2.poll_transmit()) is not None:
        sizes.append(len(out.data))
    assert len(sizes) > 4 and max(sizes) <= 200


def test_retransmission_timer_doubles_and_is_capped():
    client = DtlsConnection(True, EC_CLIENT, max_timeout=8.0, max_retransmissions=6)
    client.connect(0.0)
    first = client.poll_transmit().data
    deadlines = []
    now = 0.0
    while (deadline := client.next_deadline()) is not None:
        deadlines.append(deadline)
        client.handle_timeout(deadline - 0.001)  # early: nothing happens
        assert client.poll_transmit() is None
        now = deadline
        client.handle_timeout(now)
        again = client.poll_transmit()
        if again is not None:
            assert again.data[13:] == first[13:]  # same ClientHello, new record sequence
    assert deadlines == [1.0, 3.0, 7.0, 15.0, 23.0, 31.0, 39.0]
    assert isinstance(drain_events(client)[-1], HandshakeFailed)


def test_several_records_in_one_datagram_and_replay_dropped():
    client, server = connected_pair()
    drain_events(server)
    client.send(b"a", 1.0)
    client.send(b"b", 1.0)
    first, second = client.poll_transmit().data, client.poll_transmit().data
    server.handle_datagram(Receive(first + second), 1.0)
    assert drain_events(server) == [DataReceived(b"a"), DataReceived(b"b")]
    server.handle_datagram(Receive(first), 1.0)
    assert drain_events(server) == [] and server.stats.replayed == 1


def test_unknown_epoch_and_bad_mac_dropped():
    client, server = connected_pair()
    drain_events(server)
    client.send(b"a", 1.0)
    data = client.poll_transmit().data
    (record,) = iter_records(data)
    moved = Record(record.content_type, record.version, 5, record.sequence_number, record.fragment)
    server.handle_datagram(Receive(moved.encode()), 1.0)
    assert server.stats.unknown_epoch == 1
    server.handle_datagram(Receive(data[:-1] + bytes([data[-1] ^ 0x80])), 1.0)
    assert server.stats.bad_record_mac == 1 and drain_events(server) == []
    server.handle_datagram(Receive(data), 1.0)
    assert drain_events(server) == [DataReceived(b"a")]


def test_close_notify():
    client, server = connected_pair()
    drain_events(client), drain_events(server)
    client.close(1.0)
    exchange(client, server)
    assert server.state is State.CLOSED
    assert drain_events(server) == [AlertReceived(1, AlertDescription.close_notify), ConnectionClosed("close_notify received")]
    with pytest.raises(UsageError):
        client.send(b"late", 1.0)


def test_fingerprint_mismatch_fails_with_bad_certificate():
    client, server = pair(
        EC_CLIENT, EC_SERVER, client={"remote_fingerprints": [("sha-256", EC_CLIENT.fingerprint())]}
    )
    client.connect(0.0)
    exchange(client, server)
    assert client.state is State.FAILED and server.state is State.FAILED
    assert drain_events(client) == [HandshakeFailed("certificate fingerprint mismatch", AlertDescription.bad_certificate)]
    assert HandshakeFailed(f"fatal alert {AlertDescription.bad_certificate} received", AlertDescription.bad_certificate) in drain_events(server)


def test_server_checks_client_fingerprint():
    client, server = pair(EC_CLIENT, EC_SERVER, server={"remote_fingerprints": [("sha-256", "00:11")]})
    client.connect(0.0)
    exchange(client, server)
    assert server.state is State.FAILED and client.state is State.FAILED


def _tamper(datagram: bytes, msg_type: int) -> bytes:
    """Flip the last byte of the plaintext handshake message ``msg_type``."""
    out = b""
    for record in iter_records(datagram):
        fragment = record.fragment
        if record.epoch == 0 and record.content_type == ContentType.HANDSHAKE:
            pieces = b""
            for header, body in hs.iter_fragments(fragment):
                if header.msg_type == msg_type:
                    body = body[:-1] + bytes([body[-1] ^ 0x01])
                pieces += header.encode() + body
            fragment = pieces
        out += Record(record.content_type, record.version, record.epoch, record.sequence_number, fragment).encode()
    return out


def test_bad_server_key_exchange_signature_fails():
    client, server = pair(EC_CLIENT, EC_SERVER)
    client.connect(0.0)
    server.handle_datagram(Receive(client.poll_transmit().data), 0.0)
    while (out := server.poll_transmit()) is not None:
        client.handle_datagram(Receive(_tamper(out.data, hs.HandshakeType.server_key_exchange)), 0.0)
    assert client.state is State.FAILED
    assert drain_events(client)[-1].alert == AlertDescription.decrypt_error


def test_bad_certificate_verify_fails():
    client, server = pair(EC_CLIENT, EC_SERVER)
    client.connect(0.0)
    server.handle_datagram(Receive(client.poll_transmit().data), 0.0)
    while (out := server.poll_transmit()) is not None:
        client.handle_datagram(Receive(out.data), 0.0)
    while (out := client.poll_transmit()) is not None:
        server.handle_datagram(Receive(_tamper(out.data, hs.HandshakeType.certificate_verify)), 0.0)
    assert server.state is State.FAILED
    assert drain_events(server)[-1].alert == AlertDescription.decrypt_error


class _WrongFinishedClient(DtlsConnection):
    """A client that computes its Finished over the wrong transcript."""

    def _finished_item(self):
        self._transcript.append(b"not what the server saw")
        item = super()._finished_item()
        return item


def test_wrong_finished_fails():
    client = _WrongFinishedClient(True, EC_CLIENT)
    server = DtlsConnection(False, EC_SERVER)
    client.connect(0.0)
    exchange(client, server)
    assert server.state is State.FAILED and client.state is State.FAILED
    assert drain_events(server)[-1] == HandshakeFailed("wrong Finished verify_data", AlertDescription.decrypt_error)


def test_dtls13_client_hello_negotiates_down():
    client, server = pair(EC_CLIENT, EC_SERVER)
    client.connect(0.0)
    (record,) = iter_records(client.poll_transmit().data)
    ((header, body),) = list(hs.iter_fragments(record.fragment))
    hello = hs.ClientHello.decode(body)
    # As a DTLS 1.3 client (RFC 9147) sends it: supported_versions and a key share.
    hello.extensions += [(hs.ExtensionType.supported_versions, b"\x04\xfe\xfc\xfe\xfd"), (hs.ExtensionType.key_share, b"\x00\x00")]
    hello.cipher_suites = [0x1301] + hello.cipher_suites
    message = hs.full_message(1, 0, hello.encode())
    server.handle_datagram(Receive(Record(22, 0xFEFD, 0, 0, message).encode()), 0.0)
    (reply,) = [server.poll_transmit().data]
    records = list(iter_records(reply))
    ((header, body),) = list(hs.iter_fragments(records[0].fragment))[:1]
    server_hello = hs.ServerHello.decode(body)
    assert server_hello.server_version == 0xFEFD and server_hello.cipher_suite == CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256


def test_dtls10_only_client_is_refused():
    server = DtlsConnection(False, EC_SERVER)
    hello = hs.ClientHello(0xFEFF, bytes(32), b"", b"", [0xC02B], b"\x00", [])
    server.handle_datagram(Receive(Record(22, 0xFEFF, 0, 0, hs.full_message(1, 0, hello.encode())).encode()), 0.0)
    assert server.state is State.FAILED
    assert drain_events(server)[-1].alert == AlertDescription.protocol_version


def _run_lossy(seed: int, loss: float, dup: float, mtu: int) -> tuple[DtlsConnection, DtlsConnection, float]:
    rnd = random.Random(seed)
    client, server = pair(EC_CLIENT, EC_SERVER, mtu=mtu, max_retransmissions=40, max_timeout=4.0,
                          server={"cookie_secret": b"s" * 32})
    now = 0.0
    client.connect(now)
    in_flight: list[tuple[float, int, object, bytes]] = []  # (arrival, tiebreak, dst, data)
    counter = 0
    while now < 300.0:
        for src, dst in ((client, server), (server, client)):
            while (out := src.poll_transmit()) is not None:
                data = out.data
                copies = 0 if rnd.random() < loss else (2 if rnd.random() < dup else 1)
                for _ in range(copies):
                    counter += 1
                    in_flight.append((now + rnd.uniform(0.001, 0.3), counter, dst, data))
        if client.state is State.CONNECTED and server.state is State.CONNECTED and not in_flight:
            break
        if client.state is State.FAILED or server.state is State.FAILED:
            break
        times = [t for t, *_ in in_flight]
        times += [d for d in (client.next_deadline(), server.next_deadline()) if d is not None]
        if not times:
            break
        now = max(now, min(times))
        due = [item for item in in_flight if item[0] <= now]
        in_flight = [item for item in in_flight if item[0] > now]
        for _, _, dst, data in sorted(due, key=lambda item: rnd.random()):  # reorder
            dst.handle_datagram(Receive(data), now)
        client.handle_timeout(now)
        server.handle_timeout(now)
    return client, server, now


@settings(max_examples=25)
@given(st.integers(0, 2**32), st.floats(0.0, 0.3), st.floats(0.0, 0.3), st.sampled_from([1200, 300]))
def test_handshake_completes_under_loss_duplication_reordering(seed, loss, dup, mtu):
    client, server, now = _run_lossy(seed, loss, dup, mtu)
    assert client.state is State.CONNECTED and server.state is State.CONNECTED, (client.stats, server.stats)
    assert client.export_keying_material(b"x", 16) == server.export_keying_material(b"x", 16)


def _datagrams_of_a_handshake() -> list[bytes]:
    client, server = pair(EC_CLIENT, EC_SERVER)
    client.connect(0.0)
    seen = []
    for _ in range(4):
        for src, dst in ((client, server), (server, client)):
            while (out := src.poll_transmit()) is not None:
                seen.append(out.data)
                dst.handle_datagram(Receive(out.data), 0.0)
    return seen


HANDSHAKE_DATAGRAMS = _datagrams_of_a_handshake()


@settings(max_examples=60)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=200),
            st.tuples(st.sampled_from(HANDSHAKE_DATAGRAMS), st.integers(0, 2000), st.integers(0, 255)).map(
                lambda t: t[0][: t[1] % len(t[0])] + bytes([t[2]]) + t[0][t[1] % len(t[0]) + 1 :]
            ),
        ),
        max_size=8,
    ),
    st.booleans(),
)
def test_arbitrary_datagrams_never_raise(datagrams, connected):
    if connected:
        client, server = connected_pair()
    else:
        client, server = pair(EC_CLIENT, EC_SERVER)
        client.connect(0.0)
    for data in datagrams:
        client.handle_datagram(Receive(data), 1.0)
        server.handle_datagram(Receive(data), 1.0)
        client.handle_timeout(2.0)
        server.handle_timeout(2.0)
        drain_events(client), drain_events(server)
        while client.poll_transmit() is not None or server.poll_transmit() is not None:
            pass


def test_certificate_with_an_unknown_x509_version_is_a_bad_certificate():
    """A peer certificate whose version field says 1 (v2) fails the handshake, it does not raise out of the core."""
    der = EC_SERVER.der
    assert der.count(b"\xa0\x03\x02\x01\x02") == 1  # [0] EXPLICIT INTEGER 2: v3
    with pytest.raises(HandshakeError) as raised:
        peer_public_key(der.replace(b"\xa0\x03\x02\x01\x02", b"\xa0\x03\x02\x01\x01"), None)
    assert raised.value.alert == AlertDescription.bad_certificate


@pytest.mark.parametrize(
    "scheme", [SignatureScheme.rsa_pkcs1_sha256, SignatureScheme.rsa_pss_rsae_sha256]
)
def test_rsa_signature_schemes_both_certificates(scheme):
    rsa_client = DtlsCertificate.generate("rsa-client", key_type="rsa")
    client, server = pair(rsa_client, RSA_SERVER, signature_schemes=[scheme])
    client.connect(0.0)
    exchange(client, server)
    assert client.state is State.CONNECTED and server.state is State.CONNECTED
    assert client.cipher_suite == CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256


def test_no_common_signature_scheme_fails():
    client, server = pair(EC_CLIENT, EC_SERVER, client={"signature_schemes": [SignatureScheme.rsa_pkcs1_sha256]})
    client.connect(0.0)
    exchange(client, server)
    assert server.state is State.FAILED
    assert drain_events(server)[-1].alert == AlertDescription.handshake_failure


def test_listener_cookie_keeps_no_state():
    secret = b"c" * 32
    client = DtlsConnection(True, EC_CLIENT)
    client.connect(0.0)
    hello = client.poll_transmit().data
    verdict, reply = check_client_hello(hello, secret, b"127.0.0.1:4000")
    assert verdict is HelloVerdict.CHALLENGE
    assert check_client_hello(hello, secret, b"127.0.0.1:4000") == (verdict, reply)  # no state kept
    client.handle_datagram(Receive(reply), 0.0)
    second = client.poll_transmit().data
    assert check_client_hello(second, secret, b"127.0.0.1:4000") == (HelloVerdict.ACCEPT, None)
    assert check_client_hello(second, secret, b"127.0.0.1:4001")[0] is HelloVerdict.CHALLENGE
    assert check_client_hello(b"\x17garbage", secret, b"x") == (HelloVerdict.DROP, None)
    server = DtlsConnection(False, EC_SERVER)  # created only now, fed the accepted hello
    server.handle_datagram(Receive(second), 0.0)
    exchange(client, server)
    assert client.state is State.CONNECTED and server.state is State.CONNECTED


@given(st.binary(max_size=300))
def test_check_client_hello_never_raises(data):
    assert check_client_hello(data, b"k", b"a")[0] in HelloVerdict


def test_expired_certificate_fails_when_validity_is_checked():
    import datetime

    old = DtlsCertificate.generate("old", not_before=datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc))
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    client, server = pair(EC_CLIENT, old, client={"certificate_time": now})
    client.connect(0.0)
    exchange(client, server)
    assert client.state is State.FAILED
    assert drain_events(client)[-1] == HandshakeFailed("certificate not valid now", AlertDescription.certificate_expired)
    # WebRTC's default: the fingerprint is the authentication, validity is not checked.
    client, server = pair(EC_CLIENT, old)
    client.connect(0.0)
    exchange(client, server)
    assert client.state is State.CONNECTED


def test_usage_errors():
    with pytest.raises(UsageError):
        DtlsConnection(True, EC_CLIENT, cipher_suites=[0x1301])
    with pytest.raises(UsageError):
        DtlsConnection(True, EC_CLIENT, mtu=10)
    server = DtlsConnection(False, EC_SERVER)
    with pytest.raises(UsageError):
        server.connect(0.0)
    with pytest.raises(UsageError):
        server.export_keying_material(b"EXTRACTOR-dtls_srtp", 60)


def test_errors_join_the_one_tree():
    """A broken handshake is the peer's fault (a DTLS parse error, caught
    inside the core); a wrong argument is ours (UsageError)."""
    assert issubclass(HandshakeError, DtlsParseError) and issubclass(DtlsParseError, ParseError)
    with pytest.raises(UsageError):
        DtlsCertificate.generate(key_type="dsa")
    with pytest.raises(UsageError):
        KeyShare(0x1234)
    with pytest.raises(UsageError):
        RecordProtection("aes_cbc", bytes(16), bytes(4))


def test_server_data_overtaking_its_finished_is_kept():
    client, server = pair(EC_CLIENT, EC_SERVER)
    client.connect(0.0)
    for _ in range(2):  # up to the client's last flight
        while (out := client.poll_transmit()) is not None:
            server.handle_datagram(Receive(out.data), 0.0)
        if server.state is State.CONNECTED:
            break
        while (out := server.poll_transmit()) is not None:
            client.handle_datagram(Receive(out.data), 0.0)
    finished = server.poll_transmit().data
    server.send(b"early", 0.0)
    client.handle_datagram(Receive(server.poll_transmit().data), 0.0)  # overtakes the Finished
    assert client.state is State.CLIENT_WAIT_FINISHED
    client.handle_datagram(Receive(finished), 0.0)
    events = drain_events(client)
    assert isinstance(events[0], HandshakeCompleted) and events[1] == DataReceived(b"early")


class _WrongFinishedServer(DtlsConnection):
    """A server that computes its Finished over the wrong transcript."""

    def _finished_item(self):
        self._transcript.append(b"not what the client saw")
        return super()._finished_item()


def test_wrong_server_finished_fails():
    client = DtlsConnection(True, EC_CLIENT)
    server = _WrongFinishedServer(False, EC_SERVER)
    client.connect(0.0)
    exchange(client, server)
    assert client.state is State.FAILED
    assert drain_events(client)[-1] == HandshakeFailed("wrong Finished verify_data", AlertDescription.decrypt_error)
    assert isinstance(drain_events(server)[-1], ConnectionClosed)  # the server had finished; the alert ends it


def test_fragmented_dtls13_client_hello_with_a_large_key_share():
    """A DTLS 1.3 ClientHello with a post-quantum key share does not fit one
    datagram: the server reassembles it and negotiates DTLS 1.2."""
    from netcore.dtls.flight import fragment

    client, server = pair(EC_CLIENT, EC_SERVER)
    client.connect(0.0)
    (record,) = iter_records(client.poll_transmit().data)
    ((header, body),) = list(hs.iter_fragments(record.fragment))
    hello = hs.ClientHello.decode(body)
    big_share = (0x11EC).to_bytes(2, "big") + (1216).to_bytes(2, "big") + bytes(1216)
    hello.extensions += [
        (hs.ExtensionType.supported_versions, b"\x04\xfe\xfc\xfe\xfd"),
        (hs.ExtensionType.key_share, len(big_share).to_bytes(2, "big") + big_share),
    ]
    pieces = fragment(hs.HandshakeType.client_hello, 0, hello.encode(), 500)
    assert len(pieces) == 3
    for seq, piece in reversed(list(enumerate(pieces))):
        server.handle_datagram(Receive(Record(22, 0xFEFD, 0, seq, piece).encode()), 0.0)
    assert server.state is State.SERVER_WAIT_CERTIFICATE
    (reply_record, *_rest) = iter_records(server.poll_transmit().data)
    ((_, body),) = list(hs.iter_fragments(reply_record.fragment))[:1]
    assert hs.ServerHello.decode(body).server_version == 0xFEFD


def test_listener_accepts_the_first_fragment_of_a_large_hello():
    from netcore.dtls.flight import fragment

    secret = b"c" * 32
    client = DtlsConnection(True, EC_CLIENT)
    client.connect(0.0)
    verdict, reply = check_client_hello(client.poll_transmit().data, secret, b"peer")
    client.handle_datagram(Receive(reply), 0.0)
    (record,) = iter_records(client.poll_transmit().data)
    ((header, body),) = list(hs.iter_fragments(record.fragment))
    hello = hs.ClientHello.decode(body)
    hello.extensions.append((hs.ExtensionType.key_share, bytes(1500)))
    pieces = [Record(22, 0xFEFD, 0, 5 + i, p).encode() for i, p in enumerate(fragment(1, header.message_seq, hello.encode(), 600))]
    assert check_client_hello(pieces[0], secret, b"peer") == (HelloVerdict.ACCEPT, None)
    assert check_client_hello(pieces[1], secret, b"peer") == (HelloVerdict.DROP, None)
    server = DtlsConnection(False, EC_SERVER)
    for piece in pieces:
        server.handle_datagram(Receive(piece), 0.0)
    assert server.state is State.SERVER_WAIT_CERTIFICATE
