"""TURN (RFC 8656, RFC 6156, RFC 6062): the relay server core and the client."""
