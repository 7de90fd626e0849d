"""RTP and RTCP (RFC 3550, RFC 4585, RFC 5104, RFC 8285) and payload formats."""
