"""DTLS 1.2 handshake message codecs (RFC 6347 section 4.2.2, RFC 5246 section 7.4).

Each message is a dataclass with ``encode() -> bytes`` (the body, without
the 12-byte handshake header) and ``decode(body)``; the header itself is
:class:`HandshakeHeader`.  Extensions are kept as ``(type, data)`` pairs in
wire order so that ``decode(encode(x))`` is byte exact; helpers read and build
the ones we use (RFC 5764 use_srtp, RFC 7627 extended_master_secret,
RFC 8422 supported_groups/ec_point_formats, RFC 5246 signature_algorithms,
RFC 5746 renegotiation_info, RFC 8446 supported_versions).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

from .errors import DtlsParseError

__all__ = [
    "HandshakeType",
    "ExtensionType",
    "HandshakeHeader",
    "ClientHello",
    "ServerHello",
    "HelloVerifyRequest",
    "Certificate",
    "ServerKeyExchange",
    "CertificateRequest",
    "ServerHelloDone",
    "ClientKeyExchange",
    "CertificateVerify",
    "Finished",
    "decode_message",
    "HANDSHAKE_HEADER_SIZE",
]

HANDSHAKE_HEADER_SIZE = 12
_HEADER = struct.Struct("!BHBHHBHB")  # type, len(24 as H+B), seq, off(24), fraglen(24)
_U16 = struct.Struct("!H")


class HandshakeType(enum.IntEnum):
    hello_request = 0
    client_hello = 1
    server_hello = 2
    hello_verify_request = 3
    certificate = 11
    server_key_exchange = 12
    certificate_request = 13
    server_hello_done = 14
    certificate_verify = 15
    client_key_exchange = 16
    finished = 20


class ExtensionType(enum.IntEnum):
    supported_groups = 10
    ec_point_formats = 11
    signature_algorithms = 13
    use_srtp = 14
    extended_master_secret = 23
    supported_versions = 43
    key_share = 51
    renegotiation_info = 0xFF01


class _Reader:
    """Bounds-checked reads; every shortfall is a :class:`DtlsParseError`."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise DtlsParseError("truncated handshake message")
        chunk = self.data[self.pos : end]
        self.pos = end
        return bytes(chunk)

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, length_size: int, minimum: int = 0, maximum: int | None = None) -> bytes:
        n = self.uint(length_size)
        if n < minimum or (maximum is not None and n > maximum):
            raise DtlsParseError("vector length out of range")
        return self.take(n)

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def end(self) -> None:
        if self.pos != len(self.data):
            raise DtlsParseError("trailing bytes in handshake message")


def _vector(data: bytes, length_size: int) -> bytes:
    return len(data).to_bytes(length_size, "big") + data


def _u16_list(values: list[int] | tuple[int, ...]) -> bytes:
    return b"".join(_U16.pack(v) for v in values)


def _parse_u16_list(data: bytes) -> list[int]:
    if len(data) % 2:
        raise DtlsParseError("odd length in a list of uint16")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


@dataclass
class HandshakeHeader:
    """RFC 6347 section 4.2.2: msg_type, length, message_seq, fragment_offset/length."""

    msg_type: int
    length: int
    message_seq: int
    fragment_offset: int
    fragment_length: int

    def encode(self) -> bytes:
        return _HEADER.pack(
            self.msg_type,
            self.length >> 8,
            self.length & 0xFF,
            self.message_seq,
            self.fragment_offset >> 8,
            self.fragment_offset & 0xFF,
            self.fragment_length >> 8,
            self.fragment_length & 0xFF,
        )

    @classmethod
    def decode(cls, data: bytes, offset: int = 0) -> "HandshakeHeader":
        if len(data) - offset < HANDSHAKE_HEADER_SIZE:
            raise DtlsParseError("truncated handshake header")
        t, lh, ll, seq, oh, ol, fh, fl = _HEADER.unpack_from(data, offset)
        header = cls(t, (lh << 8) | ll, seq, (oh << 8) | ol, (fh << 8) | fl)
        if header.fragment_offset + header.fragment_length > header.length:
            raise DtlsParseError("handshake fragment beyond message length")
        return header


def iter_fragments(data: bytes):
    """Yield ``(header, fragment_bytes)`` for each handshake fragment in a record."""
    offset = 0
    while offset < len(data):
        header = HandshakeHeader.decode(data, offset)
        start = offset + HANDSHAKE_HEADER_SIZE
        offset = start + header.fragment_length
        if offset > len(data):
            raise DtlsParseError("truncated handshake fragment")
        yield header, data[start:offset]


def full_message(msg_type: int, message_seq: int, body: bytes) -> bytes:
    """The message as an unfragmented handshake record payload (also its transcript form)."""
    return HandshakeHeader(msg_type, len(body), message_seq, 0, len(body)).encode() + body


def _encode_extensions(extensions: list[tuple[int, bytes]] | None) -> bytes:
    if extensions is None:
        return b""
    body = b"".join(_U16.pack(t) + _vector(d, 2) for t, d in extensions)
    return _vector(body, 2)


def _decode_extensions(r: _Reader) -> list[tuple[int, bytes]] | None:
    if r.remaining() == 0:
        return None
    er = _Reader(r.vector(2))
    out: list[tuple[int, bytes]] = []
    seen = set()
    while er.remaining():
        t = er.uint(2)
        if t in seen:  # RFC 5246 section 7.4.1.4
            raise DtlsParseError("duplicate extension")
        seen.add(t)
        out.append((t, er.vector(2)))
    return out


class _WithExtensions:
    extensions: list[tuple[int, bytes]] | None

    def extension(self, ext_type: int) -> bytes | None:
        for t, d in self.extensions or ():
            if t == ext_type:
                return d
        return None


# ---- extension bodies --------------------------------------------------------


def encode_use_srtp(profiles: list[int], mki: bytes = b"") -> bytes:
    # RFC 5764 section 4.1.1
    return _vector(_u16_list(profiles), 2) + _vector(mki, 1)


def decode_use_srtp(data: bytes) -> tuple[list[int], bytes]:
    r = _Reader(data)
    profiles = _parse_u16_list(r.vector(2, minimum=2))
    mki = r.vector(1)
    r.end()
    return profiles, mki


def encode_u16_list_ext(values: list[int]) -> bytes:
    return _vector(_u16_list(values), 2)


def decode_u16_list_ext(data: bytes) -> list[int]:
    r = _Reader(data)
    values = _parse_u16_list(r.vector(2))
    r.end()
    return values


def decode_u8_list_ext(data: bytes) -> list[int]:
    r = _Reader(data)
    values = list(r.vector(1))
    r.end()
    return values


def decode_supported_versions(data: bytes) -> list[int]:
    # RFC 8446 section 4.2.1 (ClientHello form)
    r = _Reader(data)
    values = _parse_u16_list(r.vector(1, minimum=2))
    r.end()
    return values


# ---- messages ----------------------------------------------------------------


def read_hello_prefix(r: _Reader) -> tuple[int, bytes, bytes, bytes]:
    """client_version, random, session_id and cookie: a ClientHello's first
    fields, all inside its first fragment (the stateless cookie check reads them)."""
    version = r.uint(2)
    random = r.take(32)
    session_id = r.vector(1, maximum=32)
    cookie = r.vector(1)
    return version, random, session_id, cookie


@dataclass
class ClientHello(_WithExtensions):
    client_version: int
    random: bytes
    session_id: bytes
    cookie: bytes
    cipher_suites: list[int]
    compression_methods: bytes = b"\x00"
    extensions: list[tuple[int, bytes]] | None = field(default_factory=list)

    msg_type = HandshakeType.client_hello

    def encode(self) -> bytes:
        return (
            _U16.pack(self.client_version)
            + self.random
            + _vector(self.session_id, 1)
            + _vector(self.cookie, 1)
            + _vector(_u16_list(self.cipher_suites), 2)
            + _vector(self.compression_methods, 1)
            + _encode_extensions(self.extensions)
        )

    @classmethod
    def decode(cls, body: bytes) -> "ClientHello":
        r = _Reader(body)
        version, random, session_id, cookie = read_hello_prefix(r)
        suites = _parse_u16_list(r.vector(2, minimum=2))
        compression = r.vector(1, minimum=1)
        extensions = _decode_extensions(r)
        r.end()
        return cls(version, random, session_id, cookie, suites, compression, extensions)


@dataclass
class ServerHello(_WithExtensions):
    server_version: int
    random: bytes
    session_id: bytes
    cipher_suite: int
    compression_method: int = 0
    extensions: list[tuple[int, bytes]] | None = field(default_factory=list)

    msg_type = HandshakeType.server_hello

    def encode(self) -> bytes:
        return (
            _U16.pack(self.server_version)
            + self.random
            + _vector(self.session_id, 1)
            + _U16.pack(self.cipher_suite)
            + bytes((self.compression_method,))
            + _encode_extensions(self.extensions)
        )

    @classmethod
    def decode(cls, body: bytes) -> "ServerHello":
        r = _Reader(body)
        version = r.uint(2)
        random = r.take(32)
        session_id = r.vector(1, maximum=32)
        suite = r.uint(2)
        compression = r.uint(1)
        extensions = _decode_extensions(r)
        r.end()
        return cls(version, random, session_id, suite, compression, extensions)


@dataclass
class HelloVerifyRequest:
    server_version: int
    cookie: bytes

    msg_type = HandshakeType.hello_verify_request

    def encode(self) -> bytes:
        return _U16.pack(self.server_version) + _vector(self.cookie, 1)

    @classmethod
    def decode(cls, body: bytes) -> "HelloVerifyRequest":
        r = _Reader(body)
        version = r.uint(2)
        cookie = r.vector(1)
        r.end()
        return cls(version, cookie)


@dataclass
class Certificate:
    certificate_list: list[bytes]  # DER, sender's first

    msg_type = HandshakeType.certificate

    def encode(self) -> bytes:
        return _vector(b"".join(_vector(c, 3) for c in self.certificate_list), 3)

    @classmethod
    def decode(cls, body: bytes) -> "Certificate":
        r = _Reader(body)
        lr = _Reader(r.vector(3))
        r.end()
        certs = []
        while lr.remaining():
            certs.append(lr.vector(3, minimum=1))
        return cls(certs)


@dataclass
class ServerKeyExchange:
    """ECDHE parameters signed by the server (RFC 8422 section 5.4)."""

    named_curve: int
    public: bytes
    signature_scheme: int
    signature: bytes

    msg_type = HandshakeType.server_key_exchange

    def params(self) -> bytes:
        # ECParameters: curve_type named_curve(3), then the curve id; ECPoint.
        return b"\x03" + _U16.pack(self.named_curve) + _vector(self.public, 1)

    def encode(self) -> bytes:
        return self.params() + _U16.pack(self.signature_scheme) + _vector(self.signature, 2)

    @classmethod
    def decode(cls, body: bytes) -> "ServerKeyExchange":
        r = _Reader(body)
        if r.uint(1) != 3:
            raise DtlsParseError("only named_curve ECParameters are supported")
        curve = r.uint(2)
        public = r.vector(1, minimum=1)
        scheme = r.uint(2)
        signature = r.vector(2, minimum=1)
        r.end()
        return cls(curve, public, scheme, signature)


@dataclass
class CertificateRequest:
    certificate_types: bytes
    signature_schemes: list[int]
    certificate_authorities: bytes = b""

    msg_type = HandshakeType.certificate_request

    def encode(self) -> bytes:
        return (
            _vector(self.certificate_types, 1)
            + _vector(_u16_list(self.signature_schemes), 2)
            + _vector(self.certificate_authorities, 2)
        )

    @classmethod
    def decode(cls, body: bytes) -> "CertificateRequest":
        r = _Reader(body)
        types = r.vector(1, minimum=1)
        schemes = _parse_u16_list(r.vector(2, minimum=2))
        authorities = r.vector(2)
        r.end()
        return cls(types, schemes, authorities)


@dataclass
class ServerHelloDone:
    msg_type = HandshakeType.server_hello_done

    def encode(self) -> bytes:
        return b""

    @classmethod
    def decode(cls, body: bytes) -> "ServerHelloDone":
        if body:
            raise DtlsParseError("ServerHelloDone has no body")
        return cls()


@dataclass
class ClientKeyExchange:
    public: bytes  # ECDH point (RFC 8422 section 5.7)

    msg_type = HandshakeType.client_key_exchange

    def encode(self) -> bytes:
        return _vector(self.public, 1)

    @classmethod
    def decode(cls, body: bytes) -> "ClientKeyExchange":
        r = _Reader(body)
        public = r.vector(1, minimum=1)
        r.end()
        return cls(public)


@dataclass
class CertificateVerify:
    signature_scheme: int
    signature: bytes

    msg_type = HandshakeType.certificate_verify

    def encode(self) -> bytes:
        return _U16.pack(self.signature_scheme) + _vector(self.signature, 2)

    @classmethod
    def decode(cls, body: bytes) -> "CertificateVerify":
        r = _Reader(body)
        scheme = r.uint(2)
        signature = r.vector(2, minimum=1)
        r.end()
        return cls(scheme, signature)


@dataclass
class Finished:
    verify_data: bytes

    msg_type = HandshakeType.finished

    def encode(self) -> bytes:
        return self.verify_data

    @classmethod
    def decode(cls, body: bytes) -> "Finished":
        if len(body) != 12:  # RFC 5246 section 7.4.9: verify_data_length 12
            raise DtlsParseError("Finished verify_data must be 12 bytes")
        return cls(bytes(body))


_DECODERS = {
    m.msg_type: m
    for m in (
        ClientHello,
        ServerHello,
        HelloVerifyRequest,
        Certificate,
        ServerKeyExchange,
        CertificateRequest,
        ServerHelloDone,
        ClientKeyExchange,
        CertificateVerify,
        Finished,
    )
}


def decode_message(msg_type: int, body: bytes):
    """Decode a reassembled handshake body by its type."""
    decoder = _DECODERS.get(msg_type)
    if decoder is None:
        raise DtlsParseError(f"unknown handshake type {msg_type}")
    return decoder.decode(body)
