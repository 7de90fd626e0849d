"""SRTP sessions: RFC 3711 appendix B vectors for the transform we check
libsrtp against, the RFC 5764 key split, many SSRCs, and bad packets that
are counted and dropped, never raised."""

from __future__ import annotations

import hashlib
import hmac
import os

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from netcore.errors import UsageError
from netcore.srtp import PROFILES, SrtpProfile, SrtpSession, split_keying_material


def aes_cm_keystream(key: bytes, iv: int, length: int) -> bytes:
    """AES in counter mode from a 128-bit IV (RFC 3711 section 4.1.1)."""
    encryptor = Cipher(algorithms.AES(key), modes.CTR(iv.to_bytes(16, "big"))).encryptor()
    return encryptor.update(bytes(length))


def kdf(master_key: bytes, master_salt: bytes, label: int, length: int) -> bytes:
    """RFC 3711 section 4.3.1 with key_derivation_rate 0 (index DIV kdr = 0)."""
    salt = int.from_bytes(master_salt.ljust(14, b"\0"), "big")
    x = salt ^ (label << 48)
    return aes_cm_keystream(master_key, x << 16, length)


MASTER_KEY = bytes.fromhex("E1F97A0D3E018BE0D64FA32C06DE4139")
MASTER_SALT = bytes.fromhex("0EC675AD498AFEEBB6960B3AABE6")


def test_rfc3711_b2_aes_cm_keystream():
    key = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
    iv = int("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000", 16)
    stream = aes_cm_keystream(key, iv, 48)
    assert stream.hex().upper() == (
        "E03EAD0935C95E80E166B16DD92B4EB4" "D23513162B02D0F72A43A2FE4A5F97AB" "41E95B3BB0A2E8DD477901E4FCA894C0"
    )


def test_rfc3711_b3_key_derivation():
    assert kdf(MASTER_KEY, MASTER_SALT, 0x00, 16).hex().upper() == "C61E7A93744F39EE10734AFE3FF7A087"
    assert kdf(MASTER_KEY, MASTER_SALT, 0x02, 14).hex().upper() == "30CBBC08863D8C85D49DB34A9AE1"
    assert kdf(MASTER_KEY, MASTER_SALT, 0x01, 20).hex().upper() == "CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"


def rtp(ssrc: int, seq: int, payload: bytes = b"\x11" * 64) -> bytes:
    return bytes([0x80, 0x60]) + seq.to_bytes(2, "big") + (seq * 90).to_bytes(4, "big") + ssrc.to_bytes(4, "big") + payload


def reference_protect_cm(master_key, master_salt, packet: bytes, tag_length: int) -> bytes:
    """SRTP AES-CM + HMAC-SHA1 per RFC 3711 sections 4.1.1 and 4.2 (ROC 0)."""
    key = kdf(master_key, master_salt, 0, 16)
    auth_key = kdf(master_key, master_salt, 1, 20)
    salt = int.from_bytes(kdf(master_key, master_salt, 2, 14), "big")
    seq = int.from_bytes(packet[2:4], "big")
    ssrc = int.from_bytes(packet[8:12], "big")
    iv = (salt << 16) ^ (ssrc << 64) ^ (seq << 16)
    header, payload = packet[:12], packet[12:]
    encrypted = bytes(a ^ b for a, b in zip(payload, aes_cm_keystream(key, iv, len(payload))))
    tag = hmac.new(auth_key, header + encrypted + (0).to_bytes(4, "big"), hashlib.sha1).digest()
    return header + encrypted + tag[:tag_length]


def reference_protect_gcm(master_key, master_salt, packet: bytes) -> bytes:
    """SRTP AEAD_AES_128_GCM per RFC 7714 sections 8.1 and 11 (ROC 0)."""
    key = kdf(master_key, master_salt, 0, 16)
    salt = kdf(master_key, master_salt, 2, 12)
    ssrc, seq = packet[8:12], packet[2:4]
    iv = bytes(a ^ b for a, b in zip(b"\0\0" + ssrc + bytes(4) + seq, salt))
    return packet[:12] + AESGCM(key).encrypt(iv, packet[12:], packet[:12])


@pytest.mark.parametrize(
    "profile,tag", [(SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_80, 10), (SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_32, 4)]
)
def test_session_matches_rfc3711_transform(profile, tag):
    session = SrtpSession(profile, MASTER_KEY + MASTER_SALT, MASTER_KEY + MASTER_SALT)
    for seq in (0, 1, 500):
        packet = rtp(0xCAFEBABE, seq)
        assert session.protect_rtp(packet) == reference_protect_cm(MASTER_KEY, MASTER_SALT, packet, tag)


def test_session_matches_rfc7714_gcm_transform():
    salt = MASTER_SALT[:12]
    session = SrtpSession(SrtpProfile.SRTP_AEAD_AES_128_GCM, MASTER_KEY + salt, MASTER_KEY + salt)
    packet = rtp(0x12345678, 7)
    assert session.protect_rtp(packet) == reference_protect_gcm(MASTER_KEY, salt, packet)


def test_key_split_rfc5764_section_4_2():
    material = bytes(range(60))
    client_local, client_remote = split_keying_material(SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_80, material, True)
    server_local, server_remote = split_keying_material(SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_80, material, False)
    assert client_local == material[0:16] + material[32:46]
    assert server_local == material[16:32] + material[46:60]
    assert (client_local, client_remote) == (server_remote, server_local)
    gcm = bytes(range(56))
    local, _ = split_keying_material(SrtpProfile.SRTP_AEAD_AES_128_GCM, gcm, True)
    assert local == gcm[0:16] + gcm[32:44]


def _pair(profile):
    params = PROFILES[profile]
    material = os.urandom(params.keying_material_length)
    a = SrtpSession(profile, *split_keying_material(profile, material, True))
    b = SrtpSession(profile, *split_keying_material(profile, material, False))
    return a, b


@pytest.mark.parametrize("profile", list(PROFILES))
def test_many_ssrcs_both_ways_and_failures_counted(profile):
    a, b = _pair(profile)
    for ssrc in range(1, 51):
        for seq in range(3):
            packet = rtp(ssrc, seq)
            assert b.unprotect_rtp(a.protect_rtp(packet)) == packet
            assert a.unprotect_rtp(b.protect_rtp(packet)) == packet
    rtcp = bytes([0x80, 201, 0, 1]) + (7).to_bytes(4, "big")
    protected = a.protect_rtcp(rtcp)
    assert b.unprotect_rtcp(protected) == rtcp
    assert b.unprotect_rtcp(protected) is None  # replayed SRTCP
    sent = a.protect_rtp(rtp(99, 10))
    assert b.unprotect_rtp(sent) is not None
    assert b.unprotect_rtp(sent) is None
    assert b.stats.replayed == 2
    forged = a.protect_rtp(rtp(99, 11))
    forged = forged[:-1] + bytes([forged[-1] ^ 1])
    assert b.unprotect_rtp(forged) is None
    assert b.stats.auth_failed == 1
    assert b.unprotect_rtp(b"\x80") is None and b.unprotect_rtcp(b"") is None
    assert b.stats.malformed == 2


@settings(max_examples=100)
@given(st.binary(max_size=200))
def test_arbitrary_packets_never_raise(data):
    a, b = _pair(SrtpProfile.SRTP_AEAD_AES_128_GCM)
    assert b.unprotect_rtp(data) is None
    assert b.unprotect_rtcp(data) is None


def test_bad_keys_are_a_usage_error():
    with pytest.raises(UsageError):
        SrtpSession(SrtpProfile.SRTP_AEAD_AES_128_GCM, bytes(30), bytes(30))
    with pytest.raises(UsageError):
        SrtpSession(0x99, bytes(30), bytes(30))


def test_keying_material_of_the_wrong_length_is_a_usage_error():
    with pytest.raises(UsageError):
        split_keying_material(SrtpProfile.SRTP_AEAD_AES_128_GCM, bytes(10), True)


@pytest.mark.parametrize("profile", [SrtpProfile.SRTP_AEAD_AES_128_GCM, SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_80])
def test_a_packet_larger_than_libsrtp_buffer_is_counted_not_raised(profile):
    """A peer may send a datagram of any size up to 64 KiB; libsrtp's buffer is 1500 bytes."""
    a, b = _pair(profile)
    oversize = rtp(5, 1, payload=bytes(2000))
    assert b.unprotect_rtp(oversize) is None
    assert b.unprotect_rtcp(bytes([0x80, 201, 0, 1]) + bytes(3000)) is None
    assert b.stats.malformed == 2 and b.stats.replayed == b.stats.auth_failed == 0
    packet = rtp(5, 2)
    assert b.unprotect_rtp(a.protect_rtp(packet)) == packet  # the session goes on
