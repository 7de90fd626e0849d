"""SRTP (RFC 3711, RFC 7714) sessions on top of libsrtp."""
