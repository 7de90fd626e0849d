"""Stateless HelloVerifyRequest cookies (RFC 6347 section 4.2.1).

cookie = HMAC-SHA256(secret, client_id || ClientHello without its cookie),
so a listener can answer a cookieless ClientHello and check the echoed one
without keeping any state for the (possibly spoofed) source.
"""

from __future__ import annotations

import hashlib
import hmac

from .handshake import ClientHello

__all__ = ["make_cookie", "cookie_valid", "COOKIE_LENGTH"]

COOKIE_LENGTH = 32


def _material(client_id: bytes, hello: ClientHello) -> bytes:
    return client_id + ClientHello(
        hello.client_version,
        hello.random,
        hello.session_id,
        b"",
        hello.cipher_suites,
        hello.compression_methods,
        hello.extensions,
    ).encode()


def make_cookie(secret: bytes, client_id: bytes, hello: ClientHello) -> bytes:
    return hmac.digest(secret, _material(client_id, hello), hashlib.sha256)


def cookie_valid(secret: bytes, client_id: bytes, hello: ClientHello) -> bool:
    return hmac.compare_digest(hello.cookie, make_cookie(secret, client_id, hello))


def hello_verify_request(
    secret: bytes, client_id: bytes, hello: ClientHello, message_seq: int, record_seq: int
) -> bytes:
    """The HelloVerifyRequest datagram answering ``hello`` (RFC 6347 section 4.2.1).

    It reuses the ClientHello's record sequence number so that the server
    keeps no sequence state; the version is DTLS 1.0 as the RFC recommends.
    """
    from .handshake import HandshakeType, HelloVerifyRequest, full_message
    from .record import DTLS_1_0, ContentType, encode_record

    body = HelloVerifyRequest(DTLS_1_0, make_cookie(secret, client_id, hello)).encode()
    message = full_message(HandshakeType.hello_verify_request, message_seq, body)
    return encode_record(ContentType.HANDSHAKE, DTLS_1_0, 0, record_seq, message)
