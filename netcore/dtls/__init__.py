"""DTLS 1.2 (RFC 6347) with the DTLS-SRTP extension (RFC 5764)."""
