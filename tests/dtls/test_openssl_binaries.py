"""Interop with the `openssl s_server` / `openssl s_client` programs over UDP
on 127.0.0.1: handshake (OpenSSL's server answers with a HelloVerifyRequest),
use_srtp, the exported keying material and application data."""

from __future__ import annotations

import os
import re
import selectors
import socket
import subprocess
import time

import pytest

from netcore.dtls import (
    CipherSuite,
    DtlsCertificate,
    DtlsConnection,
    NamedGroup,
    SignatureScheme,
    SrtpProfile,
    State,
)
from netcore.net import Receive
from netcore.srtp import EXPORTER_LABEL

from ..conftest import free_port, require_program
from .peers import drain_events

KEYMAT = re.compile(rb"Keying material: ([0-9A-F]+)")


class _Peer:
    """An openssl process and a UDP socket driven by one selector loop."""

    def __init__(self, args: list[str], sock: socket.socket) -> None:
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self.sock = sock
        self.output = b""
        self.selector = selectors.DefaultSelector()
        self.selector.register(sock, selectors.EVENT_READ, "sock")
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.selector.register(self.proc.stdout, selectors.EVENT_READ, "out")
        self.remote = None

    def run(self, core: DtlsConnection, until, timeout: float = 10.0) -> None:
        start = time.monotonic()
        while not until():
            now = time.monotonic()
            assert now - start < timeout, self.output.decode(errors="replace")
            while (out := core.poll_transmit()) is not None:
                self.sock.sendto(out.data, self.remote)
            deadline = core.next_deadline()
            wait = 0.05 if deadline is None else max(0.0, min(0.05, deadline - now))
            for key, _ in self.selector.select(wait):
                if key.data == "sock":
                    data, self.remote = self.sock.recvfrom(65536)
                    core.handle_datagram(Receive(data, self.remote), time.monotonic())
                else:
                    self.output += self.proc.stdout.read() or b""
            core.handle_timeout(time.monotonic())

    def wait_output(self, marker: bytes, timeout: float = 10.0) -> None:
        start = time.monotonic()
        while marker not in self.output:
            assert time.monotonic() - start < timeout, self.output.decode(errors="replace")
            for key, _ in self.selector.select(0.1):
                if key.data == "out":
                    self.output += self.proc.stdout.read() or b""

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.selector.close()
        self.sock.close()


@pytest.fixture
def pem_files(tmp_path):
    cert = DtlsCertificate.generate("openssl-peer")
    (tmp_path / "cert.pem").write_bytes(cert.cert_pem())
    (tmp_path / "key.pem").write_bytes(cert.key_pem())
    return cert, str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")


def _keymat_args() -> list[str]:
    return ["-keymatexport", EXPORTER_LABEL.decode(), "-keymatexportlen", "60"]


def test_openssl_s_server(pem_files):
    openssl = require_program("openssl")
    cert, cert_path, key_path = pem_files
    port = free_port()
    args = [openssl, "s_server", "-dtls1_2", "-accept", f"127.0.0.1:{port}", "-cert", cert_path,
            "-key", key_path, "-use_srtp", "SRTP_AES128_CM_SHA1_80", "-verify", "1", *_keymat_args()]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    peer = _Peer(args, sock)
    try:
        peer.remote = ("127.0.0.1", port)
        peer.wait_output(b"ACCEPT")  # s_server's "listening" line
        ours = DtlsConnection(True, DtlsCertificate.generate(), remote_fingerprints=[("sha-256", cert.fingerprint())])
        ours.connect(time.monotonic())
        peer.run(ours, lambda: ours.state is State.CONNECTED)
        assert ours.srtp_profile == SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_80
        ours.send(b"hello from netcore\n", time.monotonic())
        peer.run(ours, lambda: b"hello from netcore" in peer.output and KEYMAT.search(peer.output))
        theirs = bytes.fromhex(KEYMAT.search(peer.output).group(1).decode())
        assert ours.export_keying_material(EXPORTER_LABEL, 60) == theirs
        assert b"SRTP Extension negotiated, profile=SRTP_AES128_CM_SHA1_80" in peer.output
        assert ours.stats.datagrams_received >= 2
    finally:
        peer.close()


@pytest.mark.parametrize(
    "extra,key_type,suite,group,scheme",
    [
        ([], "ec", CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, NamedGroup.x25519,
         SignatureScheme.ecdsa_secp256r1_sha256),
        (["-groups", "P-256"], "ec", CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, NamedGroup.secp256r1,
         SignatureScheme.ecdsa_secp256r1_sha256),
        (["-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"], "ec", CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
         NamedGroup.x25519, SignatureScheme.ecdsa_secp256r1_sha256),
        (["-sigalgs", "RSA+SHA256"], "rsa", CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, NamedGroup.x25519,
         SignatureScheme.rsa_pkcs1_sha256),
        (["-sigalgs", "rsa_pss_rsae_sha256"], "rsa", CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
         NamedGroup.x25519, SignatureScheme.rsa_pss_rsae_sha256),
    ],
    ids=["x25519", "p256", "chacha20", "rsa-pkcs1", "rsa-pss"],
)
def test_openssl_s_client(tmp_path, extra, key_type, suite, group, scheme):
    theirs = DtlsCertificate.generate("openssl-peer", key_type=key_type)
    (tmp_path / "cert.pem").write_bytes(theirs.cert_pem())
    (tmp_path / "key.pem").write_bytes(theirs.key_pem())
    pem_files = theirs, str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    openssl = require_program("openssl")
    cert, cert_path, key_path = pem_files
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    args = [openssl, "s_client", "-dtls1_2", "-connect", f"127.0.0.1:{port}", "-cert", cert_path,
            "-key", key_path, "-use_srtp", "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80", *_keymat_args(), *extra]
    ours = DtlsConnection(False, DtlsCertificate.generate(key_type=key_type),
                          remote_fingerprints=[("sha-256", cert.fingerprint())],
                          cookie_secret=os.urandom(32), client_id=b"127.0.0.1")
    peer = _Peer(args, sock)
    try:
        peer.run(ours, lambda: ours.state is State.CONNECTED and KEYMAT.search(peer.output))
        assert ours.srtp_profile == SrtpProfile.SRTP_AEAD_AES_128_GCM
        assert ours.cipher_suite == suite and ours.group == group and ours.signature_scheme == scheme
        theirs = bytes.fromhex(KEYMAT.search(peer.output).group(1).decode())
        assert ours.export_keying_material(EXPORTER_LABEL, 60) == theirs
        drain_events(ours)
        peer.proc.stdin.write(b"hello from openssl\n")
        peer.proc.stdin.flush()
        received = []
        peer.run(ours, lambda: received.extend(e.data for e in drain_events(ours) if hasattr(e, "data")) or received)
        assert received == [b"hello from openssl\n"]
    finally:
        peer.close()
