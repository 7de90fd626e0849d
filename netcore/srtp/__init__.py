"""SRTP (RFC 3711, RFC 7714) sessions on top of libsrtp."""

from .profiles import EXPORTER_LABEL, PROFILES, SrtpProfile, split_keying_material
from .session import SrtpSession, SrtpStats

__all__ = ["EXPORTER_LABEL", "PROFILES", "SrtpProfile", "SrtpSession", "SrtpStats", "split_keying_material"]
