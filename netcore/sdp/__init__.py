"""SDP (RFC 8866) and JSEP offer/answer (RFC 8829)."""
