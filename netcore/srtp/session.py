"""An SRTP/SRTCP session for one DTLS-SRTP association, on libsrtp (pylibsrtp).

One libsrtp session protects everything we send (any outbound SSRC) and one
unprotects everything we receive (any inbound SSRC), so one object serves
every stream of a transport.  ``unprotect_*`` never raises: a replayed,
forged or malformed packet (one longer than libsrtp's 1500-byte buffer too)
is counted in :class:`SrtpStats` and ``None`` is returned, so a receive loop
cannot be ended by one bad packet.  ``protect_*`` are libsrtp's own methods,
without a Python frame on the send path: what they raise (a packet of ours
too long to protect) is a bug of the caller, not of the peer.
"""

from __future__ import annotations

import pylibsrtp

from netcore.errors import UsageError

from .profiles import EXPORTER_LABEL, PROFILES, split_keying_material

__all__ = ["SrtpSession", "SrtpStats"]

# What libsrtp raises on a bad packet from the peer: its own error, or
# ValueError for a packet longer than its buffer.
_DROPPED = (pylibsrtp.Error, ValueError)


class SrtpStats:
    """Packets dropped by :class:`SrtpSession`, by cause."""

    __slots__ = ("replayed", "auth_failed", "malformed")

    def __init__(self) -> None:
        self.replayed = 0
        self.auth_failed = 0
        self.malformed = 0

    def __repr__(self) -> str:
        return f"SrtpStats(replayed={self.replayed}, auth_failed={self.auth_failed}, malformed={self.malformed})"


class SrtpSession:
    """Protect outgoing and unprotect incoming RTP and RTCP for one transport."""

    __slots__ = ("profile", "local_master", "remote_master", "stats", "_tx", "_rx", "protect_rtp", "protect_rtcp", "_unprotect", "_unprotect_rtcp")

    def __init__(
        self,
        profile: int,
        local_master: bytes,
        remote_master: bytes,
        *,
        replay_window: int = 1024,
    ) -> None:
        """``local_master``/``remote_master`` are master key||salt for each direction."""
        params = PROFILES.get(profile)
        if params is None:
            raise UsageError(f"unsupported SRTP profile {profile}")
        expected = params.key_length + params.salt_length
        if len(local_master) != expected or len(remote_master) != expected:
            raise UsageError(f"master key||salt must be {expected} bytes for this profile")
        self.profile = profile
        self.local_master = local_master  # a compiled send path keys its own context with it (netcore.sfu.fastpath)
        self.remote_master = remote_master  # and a compiled receive path its own
        self.stats = SrtpStats()
        tx = pylibsrtp.Policy(
            key=local_master,
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=params.libsrtp_profile,
        )
        tx.allow_repeat_tx = True  # NACK retransmissions resend the same packet
        tx.window_size = replay_window
        rx = pylibsrtp.Policy(
            key=remote_master,
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
            srtp_profile=params.libsrtp_profile,
        )
        rx.window_size = replay_window
        self._tx = pylibsrtp.Session(tx)
        self._rx = pylibsrtp.Session(rx)
        # Bound methods straight from libsrtp: no Python frame on the send path.
        self.protect_rtp = self._tx.protect
        self.protect_rtcp = self._tx.protect_rtcp
        self._unprotect = self._rx.unprotect
        self._unprotect_rtcp = self._rx.unprotect_rtcp

    @classmethod
    def from_dtls(cls, connection, **kwargs) -> "SrtpSession":
        """Key a session from a connected DTLS core (RFC 5764 section 4.2)."""
        profile = connection.srtp_profile
        if profile is None:
            raise UsageError("use_srtp was not negotiated")
        material = connection.export_keying_material(
            EXPORTER_LABEL, PROFILES[profile].keying_material_length
        )
        local, remote = split_keying_material(profile, material, connection.is_client)
        return cls(profile, local, remote, **kwargs)

    def unprotect_rtp(self, packet: bytes) -> bytes | None:
        """The RTP packet, or ``None`` (counted) if it is replayed or forged."""
        try:
            return self._unprotect(packet)
        except _DROPPED as exc:
            self._count(exc)
            return None

    def unprotect_rtcp(self, packet: bytes) -> bytes | None:
        """The RTCP compound packet, or ``None`` (counted) if replayed or forged."""
        try:
            return self._unprotect_rtcp(packet)
        except _DROPPED as exc:
            self._count(exc)
            return None

    def _count(self, exc: Exception) -> None:
        message = str(exc)
        if "replay" in message:
            self.stats.replayed += 1
        elif "auth" in message:
            self.stats.auth_failed += 1
        else:
            self.stats.malformed += 1
