"""What the negotiator takes and gives: intents and our transport in, the
negotiated session out, and the RFC 3264 direction rules both sides use.

Plain frozen dataclasses, read by the media layers and the call server; the
negotiator (``jsep.py``) builds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netcore.errors import UsageError

from .attributes import Fingerprint, Msid, Rid
from .candidate import Candidate
from .codecs import AUDIO_CODECS, VIDEO_CODECS, Codec
from .limits import Limits

__all__ = [
    "AUDIO_EXTENSIONS",
    "LocalTransport",
    "MediaIntent",
    "NegotiatedMedia",
    "NegotiatedSession",
    "RID_EXTENSION",
    "RTP_PROTOCOL",
    "RTP_PROTOCOLS",
    "RemoteTransport",
    "SCTP_PROTOCOL",
    "SCTP_PROTOCOLS",
    "SEND_RECV",
    "DIRECTION_OF",
    "VIDEO_EXTENSIONS",
    "answer_direction",
    "reverse_direction",
]


# --------------------------------------------------------------- directions

# direction -> (send, recv) from the point of view of the description's writer
SEND_RECV = {
    "sendrecv": (True, True),
    "sendonly": (True, False),
    "recvonly": (False, True),
    "inactive": (False, False),
}
DIRECTION_OF = {v: k for k, v in SEND_RECV.items()}

# RFC 3264 section 6.1: (offered, wanted by answerer) -> answered direction.
_DIRECTIONS = {
    (offer, want): DIRECTION_OF[
        (
            SEND_RECV[offer][1] and SEND_RECV[want][0],
            SEND_RECV[offer][0] and SEND_RECV[want][1],
        )
    ]
    for offer in SEND_RECV
    for want in SEND_RECV
}


def answer_direction(offered: str, wanted: str) -> str:
    """The answer's direction for an offered one and the answerer's wish."""
    return _DIRECTIONS[(offered, wanted)]


def reverse_direction(direction: str) -> str:
    """The same direction seen from the other side."""
    send, recv = SEND_RECV[direction]
    return DIRECTION_OF[(recv, send)]


# ------------------------------------------------------------------ inputs

AUDIO_EXTENSIONS = (
    "urn:ietf:params:rtp-hdrext:sdes:mid",
    "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
)
VIDEO_EXTENSIONS = (
    "urn:ietf:params:rtp-hdrext:sdes:mid",
    "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
    "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
    "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
)
RID_EXTENSION = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"

RTP_PROTOCOL = "UDP/TLS/RTP/SAVPF"
SCTP_PROTOCOL = "UDP/DTLS/SCTP"
RTP_PROTOCOLS = frozenset(("UDP/TLS/RTP/SAVPF", "TCP/TLS/RTP/SAVPF", "RTP/SAVPF"))
SCTP_PROTOCOLS = frozenset(("UDP/DTLS/SCTP", "TCP/DTLS/SCTP", "DTLS/SCTP"))


@dataclass(frozen=True)
class MediaIntent:
    """What we want to do with one m-section.

    ``codecs`` and ``header_extensions`` default by kind, in preference
    order.  ``simulcast`` lists the rids (or ``Rid`` values with
    restrictions) we send, e.g. ``("q", "h", "f")``.  ``limits`` overrides
    the negotiator's for this section.  ``stopped`` answers or re-offers the
    section with port 0.
    """

    kind: str  # audio, video, application
    direction: str = "sendrecv"
    content: str | None = None  # RFC 4796, "slides" for screen share
    codecs: tuple[Codec, ...] | None = None
    header_extensions: tuple[str, ...] | None = None
    simulcast: tuple[str | Rid, ...] = ()
    stream_id: str | None = None
    track_id: str | None = None
    ssrc: int | None = None
    rtx_ssrc: int | None = None
    limits: Limits | None = None
    stopped: bool = False
    max_message_size: int = 262144

    @classmethod
    def audio(cls, **kw: object) -> MediaIntent:
        return cls("audio", **kw)  # type: ignore[arg-type]

    @classmethod
    def video(cls, **kw: object) -> MediaIntent:
        return cls("video", **kw)  # type: ignore[arg-type]

    @classmethod
    def screen(cls, **kw: object) -> MediaIntent:
        """Screen share: a video section marked ``a=content:slides``."""
        return cls("video", content="slides", **kw)  # type: ignore[arg-type]

    @classmethod
    def data(cls, **kw: object) -> MediaIntent:
        return cls("application", **kw)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        if self.direction not in SEND_RECV:
            raise UsageError(f"bad direction {self.direction!r}")
        if self.kind not in ("audio", "video", "application"):
            raise UsageError(f"bad media kind {self.kind!r}")

    @property
    def send(self) -> bool:
        return SEND_RECV[self.direction][0] and not self.stopped

    @property
    def recv(self) -> bool:
        return SEND_RECV[self.direction][1] and not self.stopped

    def all_codecs(self) -> tuple[Codec, ...]:
        if self.codecs is not None:
            return self.codecs
        return AUDIO_CODECS if self.kind == "audio" else VIDEO_CODECS

    def all_extensions(self) -> tuple[str, ...]:
        if self.header_extensions is not None:
            found = self.header_extensions
        else:
            found = AUDIO_EXTENSIONS if self.kind == "audio" else VIDEO_EXTENSIONS
        if self.simulcast and RID_EXTENSION not in found:
            found = found + (RID_EXTENSION,)
        return found

    def rids(self) -> tuple[Rid, ...]:
        return tuple(
            r if isinstance(r, Rid) else Rid(r, "send") for r in self.simulcast
        )


@dataclass(frozen=True)
class LocalTransport:
    """Our ICE and DTLS parameters, from the ICE and DTLS layers.

    ``ice_ufrag``/``ice_pwd`` None means the negotiator makes them (and new
    ones on ICE restart).  ``answer_setup`` is the DTLS role we take when an
    offer says ``actpass``.
    """

    fingerprints: tuple[Fingerprint, ...]
    candidates: tuple[Candidate, ...] = ()
    end_of_candidates: bool = False
    ice_lite: bool = False
    ice_options: tuple[str, ...] = ("trickle",)
    ice_ufrag: str | None = None
    ice_pwd: str | None = None
    answer_setup: str = "active"

    def __post_init__(self) -> None:
        if not self.fingerprints:
            raise UsageError("DTLS needs at least one fingerprint")
        if self.answer_setup not in ("active", "passive"):
            raise UsageError("answer_setup must be active or passive")


# ------------------------------------------------------------------ outputs


@dataclass(frozen=True)
class RemoteTransport:
    """The peer's ICE and DTLS parameters for one m-section (or the bundle)."""

    ice_ufrag: str | None
    ice_pwd: str | None
    ice_lite: bool
    ice_options: tuple[str, ...]
    candidates: tuple[Candidate, ...]
    end_of_candidates: bool
    fingerprints: tuple[Fingerprint, ...]
    setup: str | None


@dataclass(frozen=True)
class NegotiatedMedia:
    """One m-section as agreed.  Directions are from our side.

    ``send_codecs`` carry the peer's fmtp (what it can decode: send with
    these), ``recv_codecs`` ours; both use the agreed payload types, first
    one preferred.  ``limits`` is the minimum of both sides' statements.
    """

    index: int
    mid: str | None
    kind: str
    rejected: bool
    direction: str = "inactive"
    send_codecs: tuple[Codec, ...] = ()
    recv_codecs: tuple[Codec, ...] = ()
    header_extensions: tuple[tuple[int, str], ...] = ()
    rtcp_mux: bool = False
    rtcp_rsize: bool = False
    send_rids: tuple[str, ...] = ()
    recv_rids: tuple[str, ...] = ()
    content: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    h264_levels: tuple[tuple[int, int, int], ...] = ()  # (pt, send level, recv level)
    remote_msid: Msid | None = None
    remote_ssrcs: tuple[int, ...] = ()
    remote: RemoteTransport | None = None
    sctp_port: int | None = None
    max_message_size: int | None = None
    # (id, our direction) per agreed header extension (RFC 8285 section 7)
    extension_directions: tuple[tuple[int, str], ...] = ()
    extmap_allow_mixed: bool = False  # RFC 8285 section 6, for this section

    @property
    def send(self) -> bool:
        return SEND_RECV[self.direction][0]

    @property
    def recv(self) -> bool:
        return SEND_RECV[self.direction][1]

    @property
    def send_codec(self) -> Codec | None:
        """The codec to send with: the first the peer accepted."""
        return self.send_codecs[0] if self.send_codecs and self.send else None

    def extension_id(self, uri: str) -> int | None:
        for ext_id, ext_uri in self.header_extensions:
            if ext_uri == uri:
                return ext_id
        return None


@dataclass(frozen=True)
class NegotiatedSession:
    """The result of one offer/answer exchange, read by the media layers."""

    media: tuple[NegotiatedMedia, ...]
    bundle: tuple[str, ...]  # bundled mids, BUNDLE tag first; () if none
    dtls_role: str  # "client" (we are active) or "server"
    ice_controlling: bool
    ice_restart: bool
    local_ice_ufrag: str
    local_ice_pwd: str
    remote: RemoteTransport  # the bundle transport, or the first section's
    extmap_allow_mixed: bool = False  # RFC 8285 section 6: two-byte headers agreed

    def section(self, mid: str) -> NegotiatedMedia | None:
        for media in self.media:
            if media.mid == mid:
                return media
        return None
