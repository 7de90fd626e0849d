"""AEAD record protection for one direction of one epoch.

AES-GCM follows RFC 5288 section 3 (4-byte implicit salt from the key block,
8-byte explicit nonce carried in each record: we send epoch||sequence, as
OpenSSL does); ChaCha20-Poly1305 follows RFC 7905 section 2 (12-byte IV
XORed with the padded epoch||sequence, no explicit nonce).  The additional
data is seq_num(8, epoch||sequence) + type + version + length (RFC 6347
section 4.1.2.1, RFC 5246 section 6.2.3.3).
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from netcore.errors import UsageError

from .errors import DtlsParseError

__all__ = ["RecordProtection"]

_AAD = struct.Struct("!HHIBHH")  # epoch, seq_hi, seq_lo, type, version, length
_SEQ = struct.Struct("!HHI")  # epoch, seq_hi, seq_lo
_TAG = 16


class RecordProtection:
    """Seals and opens record fragments with one key and IV."""

    __slots__ = ("_aead", "_iv", "_explicit", "_iv_int")

    def __init__(self, aead_name: str, key: bytes, iv: bytes) -> None:
        if aead_name == "aes_gcm":
            self._aead = AESGCM(key)
            self._explicit = True
        elif aead_name == "chacha20_poly1305":
            self._aead = ChaCha20Poly1305(key)
            self._explicit = False
        else:
            raise UsageError(f"unknown AEAD {aead_name}")
        self._iv = iv
        self._iv_int = int.from_bytes(iv, "big")

    @classmethod
    def from_key_block(
        cls, aead_name: str, key_length: int, iv_length: int, block: bytes
    ) -> tuple["RecordProtection", "RecordProtection"]:
        """The client's and the server's write protection from the key block.

        RFC 5246 section 6.3: client_write_key, server_write_key,
        client_write_IV, server_write_IV, in that order.
        """
        k, i = key_length, iv_length
        client = cls(aead_name, block[:k], block[2 * k : 2 * k + i])
        server = cls(aead_name, block[k : 2 * k], block[2 * k + i : 2 * k + 2 * i])
        return client, server

    @property
    def overhead(self) -> int:
        return _TAG + (8 if self._explicit else 0)

    def seal(self, content_type: int, version: int, epoch: int, seq: int, plaintext: bytes) -> bytes:
        seq_bytes = _SEQ.pack(epoch, seq >> 32, seq & 0xFFFFFFFF)
        aad = _AAD.pack(epoch, seq >> 32, seq & 0xFFFFFFFF, content_type, version, len(plaintext))
        if self._explicit:
            return seq_bytes + self._aead.encrypt(self._iv + seq_bytes, plaintext, aad)
        nonce = (self._iv_int ^ int.from_bytes(seq_bytes, "big")).to_bytes(12, "big")
        return self._aead.encrypt(nonce, plaintext, aad)

    def open(self, content_type: int, version: int, epoch: int, seq: int, fragment: bytes) -> bytes:
        """Return the plaintext; :class:`DtlsParseError` if it does not authenticate."""
        if self._explicit:
            if len(fragment) < 8 + _TAG:
                raise DtlsParseError("record shorter than the AEAD overhead")
            nonce = self._iv + fragment[:8]
            ciphertext = fragment[8:]
        else:
            if len(fragment) < _TAG:
                raise DtlsParseError("record shorter than the AEAD overhead")
            seq_int = (epoch << 48) | seq
            nonce = (self._iv_int ^ seq_int).to_bytes(12, "big")
            ciphertext = fragment
        aad = _AAD.pack(
            epoch, seq >> 32, seq & 0xFFFFFFFF, content_type, version, len(ciphertext) - _TAG
        )
        try:
            return self._aead.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise DtlsParseError("bad record MAC") from None
