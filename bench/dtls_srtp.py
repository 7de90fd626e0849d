"""DTLS handshakes and SRTP protect+unprotect: netcore against OpenSSL/libsrtp.

    python3 bench/dtls_srtp.py [seconds-per-case]

Handshakes: a client and a server core in memory (certificates made once,
ECDHE-ECDSA-AES128-GCM, X25519, both certificates, use_srtp), against two
pyOpenSSL DTLS connections over memory BIOs configured as aiortc does.
SRTP: protect then unprotect of 1200-byte RTP packets through our
SrtpSession against two bare pylibsrtp sessions.
"""

from __future__ import annotations

import os
import sys
import time

import pylibsrtp
from OpenSSL import SSL

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from netcore.dtls import DtlsCertificate, DtlsConnection, State  # noqa: E402
from netcore.net import Receive  # noqa: E402
from netcore.srtp import PROFILES, SrtpProfile, SrtpSession, split_keying_material  # noqa: E402
from tests.dtls.peers import openssl_connection  # noqa: E402


def rate(fn, seconds: float) -> float:
    fn()  # warm up
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        count += 1
    return count / elapsed


CLIENT_CERT, SERVER_CERT = DtlsCertificate.generate(), DtlsCertificate.generate()


def our_handshake() -> None:
    client = DtlsConnection(True, CLIENT_CERT)
    server = DtlsConnection(False, SERVER_CERT)
    client.connect(0.0)
    while client.state is not State.CONNECTED:
        while (out := client.poll_transmit()) is not None:
            server.handle_datagram(Receive(out.data), 0.0)
        while (out := server.poll_transmit()) is not None:
            client.handle_datagram(Receive(out.data), 0.0)


def _bio_drain(src: SSL.Connection, dst: SSL.Connection) -> None:
    while True:
        try:
            dst.bio_write(src.bio_read(65536))
        except SSL.WantReadError:
            return


def openssl_handshake() -> None:
    client = openssl_connection(CLIENT_CERT, True)
    server = openssl_connection(SERVER_CERT, False)
    done = [False, False]
    while not all(done):
        for i, conn in enumerate((client, server)):
            if not done[i]:
                try:
                    conn.do_handshake()
                    done[i] = True
                except SSL.WantReadError:
                    pass
        _bio_drain(client, server)
        _bio_drain(server, client)


def srtp_cases(profile: int):
    params = PROFILES[profile]
    material = os.urandom(params.keying_material_length)
    sender = SrtpSession(profile, *split_keying_material(profile, material, True))
    receiver = SrtpSession(profile, *split_keying_material(profile, material, False))
    key = material[: params.key_length] + material[2 * params.key_length : 2 * params.key_length + params.salt_length]
    tx = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=params.libsrtp_profile))
    rx = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=params.libsrtp_profile))
    payload = os.urandom(1200 - 12)
    counters = {"ours": 0, "bare": 0}  # each path sees its own in-order sequence

    def packet(name: str) -> bytes:
        counters[name] = seq = (counters[name] + 1) & 0xFFFF
        return b"\x80\x60" + seq.to_bytes(2, "big") + b"\0\0\0\0\0\0\0\1" + payload

    def ours() -> None:
        receiver.unprotect_rtp(sender.protect_rtp(packet("ours")))

    def bare() -> None:
        rx.unprotect(tx.protect(packet("bare")))

    return ours, bare


def best_of(fns, seconds: float, rounds: int = 4) -> list[float]:
    """Alternate the cases in short rounds and keep each one's best rate:
    the machine is shared, so this compares like with like."""
    best = [0.0] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            best[i] = max(best[i], rate(fn, seconds / rounds))
    return best


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    ours, theirs = best_of([our_handshake, openssl_handshake], seconds)
    print(f"handshakes/s     netcore {ours:9.0f}   pyOpenSSL {theirs:9.0f}   "
          f"time ratio netcore/OpenSSL {theirs / ours:.2f}x")
    for profile in (SrtpProfile.SRTP_AEAD_AES_128_GCM, SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_80):
        ours_fn, bare_fn = srtp_cases(profile)
        ours, bare = best_of([ours_fn, bare_fn], seconds)
        print(f"SRTP {profile.name:28s} protect+unprotect/s (1200 B)  netcore {ours:9.0f}   "
              f"bare pylibsrtp {bare:9.0f}   time ratio {bare / ours:.2f}x")


if __name__ == "__main__":
    main()
