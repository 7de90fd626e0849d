"""Stateless HelloVerifyRequest cookies (RFC 6347 section 4.2.1).

cookie = HMAC-SHA256(secret, client_id || client_version || random || session_id)

The fields are the ClientHello's first ones, so the cookie can be checked on
the first fragment of a ClientHello too large for one datagram (a DTLS 1.3
hello with a post-quantum key share), and the client random makes it unique
per hello.  A listener calls :func:`check_client_hello` on each datagram from
an unknown source and creates a :class:`~netcore.dtls.connection.DtlsConnection`
only on ACCEPT, keeping no state for (possibly spoofed) sources before that.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from typing import NamedTuple

from .errors import DtlsParseError
from .handshake import HandshakeType, HelloVerifyRequest, _Reader, full_message, iter_fragments, read_hello_prefix
from .record import DTLS_1_0, ContentType, encode_record, iter_records

__all__ = [
    "HelloPrefix",
    "HelloVerdict",
    "make_cookie",
    "hello_verify_request",
    "check_client_hello",
]


class HelloVerdict(enum.Enum):
    ACCEPT = "accept"  # a ClientHello (or its first fragment) with a valid cookie
    CHALLENGE = "challenge"  # send the HelloVerifyRequest returned alongside
    DROP = "drop"  # not the start of a well-formed ClientHello


class HelloPrefix(NamedTuple):
    """The leading ClientHello fields the cookie covers, and the cookie."""

    client_version: int
    random: bytes
    session_id: bytes
    cookie: bytes

    @classmethod
    def decode(cls, body: bytes) -> "HelloPrefix":
        """Read them from the start of a ClientHello body (whole or first fragment)."""
        return cls(*read_hello_prefix(_Reader(body)))


def make_cookie(secret: bytes, client_id: bytes, hello: HelloPrefix) -> bytes:
    material = client_id + hello.client_version.to_bytes(2, "big") + hello.random + hello.session_id
    return hmac.digest(secret, material, hashlib.sha256)


def cookie_valid(secret: bytes, client_id: bytes, hello: HelloPrefix) -> bool:
    return hmac.compare_digest(hello.cookie, make_cookie(secret, client_id, hello))


def hello_verify_request(
    secret: bytes, client_id: bytes, hello: HelloPrefix, message_seq: int, record_seq: int
) -> bytes:
    """The HelloVerifyRequest datagram answering ``hello`` (RFC 6347 section 4.2.1).

    It reuses the ClientHello's message and record sequence numbers so that
    the server keeps no state; the version is DTLS 1.0 as the RFC recommends.
    """
    body = HelloVerifyRequest(DTLS_1_0, make_cookie(secret, client_id, hello)).encode()
    message = full_message(HandshakeType.hello_verify_request, message_seq, body)
    return encode_record(ContentType.HANDSHAKE, DTLS_1_0, 0, record_seq, message)


def check_client_hello(datagram: bytes, secret: bytes, client_id: bytes) -> tuple[HelloVerdict, bytes | None]:
    """Classify a datagram from an unknown source without keeping any state.

    ``client_id`` identifies the source (e.g. its address and port as bytes).
    Returns ``(CHALLENGE, hello_verify_request_datagram)``, ``(ACCEPT, None)``
    or ``(DROP, None)``; never raises.  Later fragments of a large hello
    (offset > 0) are dropped here: once the first fragment is accepted, the
    new connection takes the rest.
    """
    try:
        record = next(iter_records(datagram))
        if record.content_type != ContentType.HANDSHAKE or record.epoch != 0:
            return HelloVerdict.DROP, None
        header, body = next(iter_fragments(record.fragment))
        if header.msg_type != HandshakeType.client_hello or header.fragment_offset != 0:
            return HelloVerdict.DROP, None
        hello = HelloPrefix.decode(body)
    except (DtlsParseError, StopIteration):
        return HelloVerdict.DROP, None
    if cookie_valid(secret, client_id, hello):
        return HelloVerdict.ACCEPT, None
    reply = hello_verify_request(secret, client_id, hello, header.message_seq, record.sequence_number)
    return HelloVerdict.CHALLENGE, reply
