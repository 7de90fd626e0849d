"""Helpers shared by the DTLS tests: an in-memory link and OpenSSL peers."""

from __future__ import annotations

from cryptography import x509
from OpenSSL import SSL, crypto

from netcore.dtls import DtlsCertificate, DtlsConnection
from netcore.net import Receive


def drain_events(conn) -> list:
    events = []
    while (event := conn.poll_event()) is not None:
        events.append(event)
    return events


def exchange(a, b, now: float = 0.0, rounds: int = 20) -> None:
    """Deliver datagrams both ways until both cores are quiet."""
    for _ in range(rounds):
        moved = False
        for src, dst in ((a, b), (b, a)):
            while (out := src.poll_transmit()) is not None:
                dst.handle_datagram(Receive(out.data), now)
                moved = True
        if not moved:
            return


def pair(client_cert=None, server_cert=None, *, fingerprints=True, **kwargs):
    """A client and a server core that know each other's fingerprint."""
    client_cert = client_cert or DtlsCertificate.generate()
    server_cert = server_cert or DtlsCertificate.generate()
    client_kwargs = dict(kwargs.pop("client", {}))
    server_kwargs = dict(kwargs.pop("server", {}))
    if fingerprints:
        client_kwargs.setdefault("remote_fingerprints", [("sha-256", server_cert.fingerprint())])
        server_kwargs.setdefault("remote_fingerprints", [("sha-256", client_cert.fingerprint())])
    client = DtlsConnection(True, client_cert, **kwargs, **client_kwargs)
    server = DtlsConnection(False, server_cert, **kwargs, **server_kwargs)
    return client, server


def openssl_connection(
    cert: DtlsCertificate, is_client: bool, srtp: bytes = b"SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80",
    ciphers: bytes = b"HIGH:!CAMELLIA:!aNULL",
) -> SSL.Connection:
    """A pyOpenSSL DTLS endpoint over memory BIOs, configured as aiortc does."""
    ctx = SSL.Context(SSL.DTLS_METHOD)
    ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *args: True)
    ctx.use_certificate(crypto.X509.from_cryptography(x509.load_der_x509_certificate(cert.der)))
    ctx.use_privatekey(crypto.PKey.from_cryptography_key(cert.private_key))
    ctx.set_cipher_list(ciphers)
    ctx.set_tlsext_use_srtp(srtp)
    conn = SSL.Connection(ctx)
    if is_client:
        conn.set_connect_state()
    else:
        conn.set_accept_state()
    return conn


def openssl_step(conn: SSL.Connection) -> list[bytes]:
    """Run OpenSSL's handshake as far as it goes; return what it wants to send."""
    try:
        conn.do_handshake()
    except SSL.WantReadError:
        pass
    return openssl_outgoing(conn)


def openssl_outgoing(conn: SSL.Connection) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(conn.bio_read(65536))
        except SSL.WantReadError:
            return out


def handshake_with_openssl(ours: DtlsConnection, theirs: SSL.Connection, rounds: int = 10) -> None:
    if ours.is_client:
        ours.connect(0.0)
    for _ in range(rounds):
        for data in openssl_step(theirs):
            ours.handle_datagram(Receive(data), 0.0)
        pending = []
        while (out := ours.poll_transmit()) is not None:
            pending.append(out.data)
        if not pending and ours.state.value == "connected":
            openssl_step(theirs)
            return
        for data in pending:
            theirs.bio_write(data)
