"""Interop with OpenSSL through pyOpenSSL over memory BIOs (as aiortc drives it):
handshake both ways, application data, the same exported SRTP keys and
profile, and SRTP packets crossing between our keys and OpenSSL's."""

from __future__ import annotations

import pytest
from OpenSSL import SSL

from netcore.dtls import CipherSuite, DtlsCertificate, DtlsConnection, HandshakeCompleted, SrtpProfile, State
from netcore.dtls.handshake import iter_fragments
from netcore.dtls.record import iter_records
from netcore.net import Receive
from netcore.srtp import EXPORTER_LABEL, PROFILES, SrtpSession, split_keying_material

from .peers import drain_events, handshake_with_openssl, openssl_connection, openssl_outgoing, openssl_step

OURS = DtlsCertificate.generate("netcore")
THEIRS = DtlsCertificate.generate("openssl")
THEIRS_RSA = DtlsCertificate.generate("openssl-rsa", key_type="rsa")

PROFILE_NAMES = {p: PROFILES[p].openssl_name for p in PROFILES}


def _rtp(ssrc: int, seq: int, payload: bytes = b"\xab" * 160) -> bytes:
    return bytes([0x80, 96]) + seq.to_bytes(2, "big") + (seq * 160).to_bytes(4, "big") + ssrc.to_bytes(4, "big") + payload


def _rtcp_rr(ssrc: int) -> bytes:
    return bytes([0x80, 201, 0, 1]) + ssrc.to_bytes(4, "big")


@pytest.mark.parametrize("we_are_client", [True, False], ids=["we-client", "we-server"])
@pytest.mark.parametrize(
    "profile",
    [SrtpProfile.SRTP_AEAD_AES_128_GCM, SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_80, SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_32],
)
def test_handshake_data_exporter_and_srtp(we_are_client, profile):
    theirs = openssl_connection(THEIRS, not we_are_client, srtp=PROFILE_NAMES[profile])
    ours = DtlsConnection(
        we_are_client, OURS, remote_fingerprints=[("sha-256", THEIRS.fingerprint())], srtp_profiles=[profile]
    )
    handshake_with_openssl(ours, theirs)
    assert ours.state is State.CONNECTED
    (done,) = drain_events(ours)
    assert isinstance(done, HandshakeCompleted)
    assert done.cipher_suite == CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    assert done.srtp_profile == profile and done.extended_master_secret
    assert theirs.get_selected_srtp_profile() == PROFILE_NAMES[profile]
    assert theirs.get_cipher_name() == "ECDHE-ECDSA-AES128-GCM-SHA256"

    # Application data both ways.
    ours.send(b"from netcore", 1.0)
    theirs.bio_write(ours.poll_transmit().data)
    assert theirs.recv(1500) == b"from netcore"
    theirs.send(b"from openssl")
    for data in openssl_outgoing(theirs):
        ours.handle_datagram(Receive(data), 1.0)
    assert [e.data for e in drain_events(ours)] == [b"from openssl"]

    # Same keying material, then SRTP across the two key derivations.
    length = PROFILES[profile].keying_material_length
    material = theirs.export_keying_material(EXPORTER_LABEL, length)
    assert ours.export_keying_material(EXPORTER_LABEL, length) == material
    our_session = SrtpSession.from_dtls(ours)
    local, remote = split_keying_material(profile, material, not we_are_client)
    their_session = SrtpSession(profile, local, remote)
    for ssrc in (1, 0xDEADBEEF):
        for seq in (1, 2, 3):
            packet = _rtp(ssrc, seq)
            assert their_session.unprotect_rtp(our_session.protect_rtp(packet)) == packet
            assert our_session.unprotect_rtp(their_session.protect_rtp(packet)) == packet
        assert their_session.unprotect_rtcp(our_session.protect_rtcp(_rtcp_rr(ssrc))) == _rtcp_rr(ssrc)
        assert our_session.unprotect_rtcp(their_session.protect_rtcp(_rtcp_rr(ssrc))) == _rtcp_rr(ssrc)

    # close_notify reaches OpenSSL.
    ours.close(1.0)
    theirs.bio_write(ours.poll_transmit().data)
    with pytest.raises(SSL.ZeroReturnError):
        theirs.recv(1500)


@pytest.mark.parametrize("we_are_client", [True, False], ids=["we-client", "we-server"])
def test_chacha20_suite(we_are_client):
    theirs = openssl_connection(THEIRS, not we_are_client, ciphers=b"ECDHE-ECDSA-CHACHA20-POLY1305")
    ours = DtlsConnection(we_are_client, OURS)
    handshake_with_openssl(ours, theirs)
    assert ours.state is State.CONNECTED
    assert ours.cipher_suite == CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
    theirs.send(b"x")
    for data in openssl_outgoing(theirs):
        ours.handle_datagram(Receive(data), 1.0)
    assert drain_events(ours)[-1].data == b"x"


def test_openssl_rsa_server():
    theirs = openssl_connection(THEIRS_RSA, False)
    ours = DtlsConnection(True, OURS)
    handshake_with_openssl(ours, theirs)
    assert ours.state is State.CONNECTED
    assert ours.cipher_suite == CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256


def test_our_rsa_server_with_openssl_client():
    theirs = openssl_connection(THEIRS, True)
    ours = DtlsConnection(False, DtlsCertificate.generate("ours-rsa", key_type="rsa"))
    handshake_with_openssl(ours, theirs)
    assert ours.state is State.CONNECTED
    assert theirs.get_cipher_name() == "ECDHE-RSA-AES128-GCM-SHA256"


def test_openssl_client_fragmented_by_small_mtu():
    theirs = openssl_connection(THEIRS, True)
    ours = DtlsConnection(False, DtlsCertificate.generate("ours-rsa", key_type="rsa"), mtu=300)
    handshake_with_openssl(ours, theirs)
    assert ours.state is State.CONNECTED


def test_fingerprint_mismatch_alerts_openssl():
    theirs = openssl_connection(THEIRS, False)
    ours = DtlsConnection(True, OURS, remote_fingerprints=[("sha-256", OURS.fingerprint())])
    with pytest.raises(SSL.Error, match="bad certificate"):
        handshake_with_openssl(ours, theirs)
    assert ours.state is State.FAILED


def test_openssl_fragments_by_its_mtu():
    theirs = openssl_connection(THEIRS_RSA, False)
    theirs.set_options(SSL.OP_NO_QUERY_MTU)
    theirs.set_ciphertext_mtu(256)
    ours = DtlsConnection(True, OURS)
    certificate_fragments = []
    ours.connect(0.0)
    for _ in range(10):
        for data in openssl_step(theirs):
            # A memory BIO does not keep datagram boundaries; the records do.
            for record in iter_records(data):
                assert len(record.fragment) + 13 <= 256
                if record.epoch == 0 and record.content_type == 22:
                    certificate_fragments += [h for h, _ in iter_fragments(record.fragment) if h.msg_type == 11]
            ours.handle_datagram(Receive(data), 0.0)
        while (out := ours.poll_transmit()) is not None:
            theirs.bio_write(out.data)
        if ours.state is State.CONNECTED:
            break
    assert ours.state is State.CONNECTED
    assert len(certificate_fragments) > 3


def test_retransmission_recovers_a_lost_flight_with_openssl():
    theirs = openssl_connection(THEIRS, False)
    ours = DtlsConnection(True, OURS)
    ours.connect(0.0)
    theirs.bio_write(ours.poll_transmit().data)
    for data in openssl_step(theirs):
        ours.handle_datagram(Receive(data), 0.0)
    lost = ours.poll_transmit()  # our Certificate ... Finished flight is lost
    assert lost is not None and ours.poll_transmit() is None
    assert ours.next_deadline() == 1.0
    ours.handle_timeout(1.0)
    assert ours.next_deadline() == 3.0
    while (out := ours.poll_transmit()) is not None:
        theirs.bio_write(out.data)
    for data in openssl_step(theirs):
        ours.handle_datagram(Receive(data), 1.1)
    assert ours.state is State.CONNECTED and ours.next_deadline() is None


def test_our_server_retransmits_a_lost_flight_to_openssl():
    theirs = openssl_connection(THEIRS, True)
    ours = DtlsConnection(False, OURS)
    for data in openssl_step(theirs):
        ours.handle_datagram(Receive(data), 0.0)
    while ours.poll_transmit() is not None:  # our ServerHello ... ServerHelloDone flight is lost
        pass
    ours.handle_timeout(ours.next_deadline())
    for _ in range(3):
        while (out := ours.poll_transmit()) is not None:
            theirs.bio_write(out.data)
            theirs.bio_write(out.data)  # and duplicated on the way
        for data in openssl_step(theirs):
            ours.handle_datagram(Receive(data), 1.5)
    assert ours.state is State.CONNECTED
    theirs.send(b"after loss")
    for data in openssl_outgoing(theirs):
        ours.handle_datagram(Receive(data), 2.0)
    assert drain_events(ours)[-1].data == b"after loss"
