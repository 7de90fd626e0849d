"""ICE (RFC 8445, RFC 8838, RFC 7675): the full agent and ICE-lite."""
