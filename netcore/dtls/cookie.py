"""Stateless HelloVerifyRequest cookies (RFC 6347 section 4.2.1).

cookie = HMAC-SHA256(secret, client_id || ClientHello without its cookie),
so a listener can answer a cookieless ClientHello and check the echoed one
without keeping any state for the (possibly spoofed) source.  A listener
calls :func:`check_client_hello` on each datagram from an unknown address and
creates a :class:`~netcore.dtls.connection.DtlsConnection` only on ACCEPT.
"""

from __future__ import annotations

import enum
import hashlib
import hmac

from .errors import DtlsParseError
from .handshake import ClientHello, HandshakeType, HelloVerifyRequest, full_message, iter_fragments
from .record import DTLS_1_0, ContentType, encode_record, iter_records

__all__ = ["make_cookie", "hello_verify_request", "check_client_hello", "HelloVerdict", "COOKIE_LENGTH"]

COOKIE_LENGTH = 32


class HelloVerdict(enum.Enum):
    ACCEPT = "accept"  # a ClientHello with a valid cookie: create the connection
    CHALLENGE = "challenge"  # send the HelloVerifyRequest returned alongside
    DROP = "drop"  # not a whole, well-formed initial ClientHello


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


def hello_verify_request(
    secret: bytes, client_id: bytes, hello: ClientHello, message_seq: int, record_seq: int
) -> bytes:
    """The HelloVerifyRequest datagram answering ``hello`` (RFC 6347 section 4.2.1).

    It reuses the ClientHello's record sequence number so that the server
    keeps no sequence state; the version is DTLS 1.0 as the RFC recommends.
    """
    body = HelloVerifyRequest(DTLS_1_0, make_cookie(secret, client_id, hello)).encode()
    message = full_message(HandshakeType.hello_verify_request, message_seq, body)
    return encode_record(ContentType.HANDSHAKE, DTLS_1_0, 0, record_seq, message)


def check_client_hello(datagram: bytes, secret: bytes, client_id: bytes) -> tuple[HelloVerdict, bytes | None]:
    """Classify a datagram from an unknown source without keeping any state.

    ``client_id`` identifies the source (e.g. its address and port as bytes).
    Returns ``(CHALLENGE, hello_verify_request_datagram)``, ``(ACCEPT, None)``
    or ``(DROP, None)``; never raises.
    """
    try:
        record = next(iter_records(datagram))
        if record.content_type != ContentType.HANDSHAKE or record.epoch != 0:
            return HelloVerdict.DROP, None
        header, body = next(iter_fragments(record.fragment))
        if header.msg_type != HandshakeType.client_hello or header.fragment_length != header.length:
            return HelloVerdict.DROP, None
        hello = ClientHello.decode(body)
    except (DtlsParseError, StopIteration):
        return HelloVerdict.DROP, None
    if hmac.compare_digest(hello.cookie, make_cookie(secret, client_id, hello)):
        return HelloVerdict.ACCEPT, None
    reply = hello_verify_request(secret, client_id, hello, header.message_seq, record.sequence_number)
    return HelloVerdict.CHALLENGE, reply
