"""STUN (RFC 8489): messages, attributes, integrity, transactions and a Binding server."""
