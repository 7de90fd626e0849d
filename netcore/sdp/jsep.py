"""JSEP offer/answer (RFC 8829) with BUNDLE (RFC 9143), sans-IO.

A ``Negotiator`` holds one side of a session: its ICE credentials, the
m-section order, payload types and header extension ids already agreed, and
the DTLS role.  A Python peer connection and the call server drive it the
same way:

    neg = Negotiator(LocalTransport(fingerprints=(fp,)), limits=Limits(...))
    offer = neg.create_offer([MediaIntent.audio(), MediaIntent.video(simulcast=("q", "h", "f"))])
    result = neg.handle_answer(answer_text)            # -> NegotiatedSession

    answer, result = neg.handle_offer(offer_text, [MediaIntent.audio()])

``NegotiatedSession`` is the one plain object the media layers read: per
m-section the codecs to send and receive with their payload types, header
extensions, direction, simulcast rids, the capability minimums, and for the
session the remote ICE/DTLS parameters, our DTLS and ICE roles.

Rules and where they come from:

* answer codecs: ours in our preference order, payload types from the offer
  (RFC 8829 section 5.3.1, RFC 3264 section 6.1); RTX and rtcp-fb
  intersected; header extensions: those we know, with the offer's ids;
* direction (RFC 3264 section 6.1): we send if we want to and the offer
  receives, we receive if we want to and the offer sends; see ``_DIRECTIONS``;
* a section we cannot or will not take is answered with port 0 and left
  out of BUNDLE (RFC 8829 section 5.3.1, RFC 9143 section 7.3.3);
* rtcp-mux is required (RFC 8829 section 5.1.3): an RTP section offered
  without it is rejected;
* DTLS role (RFC 8842 section 5): offers say ``actpass``; the answerer picks
  ``active`` (or ``passive``) and keeps its role in later answers;
* ICE restart (RFC 8839 section 4.4.1.1.1): new ufrag/pwd in an offer; an
  answer to a restarting offer also carries new credentials.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field, replace
from typing import Callable, NamedTuple, Sequence

from netcore.errors import UsageError

from .attributes import (
    Connection,
    Extmap,
    Fingerprint,
    Fmtp,
    Group,
    Media,
    Msid,
    Origin,
    Rid,
    RtcpFb,
    Simulcast,
    SimulcastRid,
    Ssrc,
    SsrcGroup,
    Timing,
)
from .candidate import Candidate
from .checks import check_remote
from .codecs import AUDIO_CODECS, VIDEO_CODECS, Codec, codecs_of, match
from .errors import NegotiationError
from .h264 import ProfileLevelId, level_limits, negotiate_levels
from .limits import Limits, codec_limit_parameters, limits_of, write_limits
from .wire import Line, MediaSection, SessionDescription, parse

__all__ = [
    "LocalTransport",
    "MediaIntent",
    "NegotiatedMedia",
    "NegotiatedSession",
    "NegotiationError",
    "Negotiator",
    "RemoteTransport",
    "answer_direction",
]


# --------------------------------------------------------------- directions

# direction -> (send, recv) from the point of view of the description's writer
_SEND_RECV = {
    "sendrecv": (True, True),
    "sendonly": (True, False),
    "recvonly": (False, True),
    "inactive": (False, False),
}
_DIRECTION_OF = {v: k for k, v in _SEND_RECV.items()}

# RFC 3264 section 6.1: (offered, wanted by answerer) -> answered direction.
_DIRECTIONS = {
    (offer, want): _DIRECTION_OF[
        (
            _SEND_RECV[offer][1] and _SEND_RECV[want][0],
            _SEND_RECV[offer][0] and _SEND_RECV[want][1],
        )
    ]
    for offer in _SEND_RECV
    for want in _SEND_RECV
}


def answer_direction(offered: str, wanted: str) -> str:
    """The answer's direction for an offered one and the answerer's wish."""
    return _DIRECTIONS[(offered, wanted)]


def _reverse(direction: str) -> str:
    send, recv = _SEND_RECV[direction]
    return _DIRECTION_OF[(recv, send)]


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
_RTP_PROTOCOLS = frozenset(("UDP/TLS/RTP/SAVPF", "TCP/TLS/RTP/SAVPF", "RTP/SAVPF"))
_SCTP_PROTOCOLS = frozenset(("UDP/DTLS/SCTP", "TCP/DTLS/SCTP", "DTLS/SCTP"))


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
        if self.direction not in _SEND_RECV:
            raise UsageError(f"bad direction {self.direction!r}")
        if self.kind not in ("audio", "video", "application"):
            raise UsageError(f"bad media kind {self.kind!r}")

    @property
    def send(self) -> bool:
        return _SEND_RECV[self.direction][0] and not self.stopped

    @property
    def recv(self) -> bool:
        return _SEND_RECV[self.direction][1] and not self.stopped

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
        return _SEND_RECV[self.direction][0]

    @property
    def recv(self) -> bool:
        return _SEND_RECV[self.direction][1]

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


# ------------------------------------------------------------ the negotiator


class _Agreed(NamedTuple):
    """What an answer's m-section is built from."""

    codecs: list[Codec]  # ours, with the offer's payload types
    extensions: list[Extmap]  # the offer's ids, our directions
    offered: MediaSection
    mixed_here: bool = False  # answer a=extmap-allow-mixed in this section


_DYNAMIC_PTS = tuple(range(96, 128)) + tuple(range(35, 64))


class Negotiator:
    """One side of an offer/answer session; see the module docstring."""

    def __init__(
        self,
        transport: LocalTransport,
        limits: Limits | None = None,
        random: Callable[[int], bytes] = os.urandom,
        username: str = "-",
        cname: str | None = None,
        extmap_allow_mixed: bool = False,
    ) -> None:
        self.transport = transport
        # Whether our RTP layer takes one- and two-byte header extensions
        # mixed in one stream (RFC 8285 section 6).
        self.extmap_allow_mixed = extmap_allow_mixed
        self.limits = limits or Limits()
        self._random = random
        self._username = username
        self.session_id = int.from_bytes(random(8), "big") >> 2
        self._version = 0
        self.cname = cname or base64.b32encode(random(10)).decode().lower()
        self.ice_ufrag, self.ice_pwd = self._credentials()
        self._mids: list[str] = []
        self._next_mid = 0
        self._extension_ids: dict[str, int] = {}
        self._agreed: dict[str, list[Codec]] = {}  # mid -> codecs with PTs
        # mid -> the peer's codecs with its payload types, agreed or not
        self._remote_codecs: dict[str, list[Codec]] = {}
        self._answer_setup: str | None = None  # sticky DTLS role as answerer
        self._remote_ice: tuple[str | None, str | None] | None = None
        self._pending: tuple[SessionDescription, list[MediaIntent]] | None = None
        self.local_description: SessionDescription | None = None
        self.remote_description: SessionDescription | None = None
        self.negotiated: NegotiatedSession | None = None

    # --- ICE credentials
    def _credentials(self) -> tuple[str, str]:
        t = self.transport
        if t.ice_ufrag and t.ice_pwd:
            return t.ice_ufrag, t.ice_pwd
        # RFC 8839 section 5.4: ufrag >= 4 and pwd >= 22 ice-chars.
        ufrag = base64.b64encode(self._random(6)).decode()[:8]
        pwd = base64.b64encode(self._random(18)).decode()[:24]
        return ufrag, pwd

    def restart_ice(self) -> None:
        """New ICE credentials for the next description (RFC 8445 9)."""
        if self.transport.ice_ufrag:
            raise UsageError("ICE credentials are fixed by the transport")
        self.ice_ufrag, self.ice_pwd = self._credentials()

    # --- offers
    def create_offer(
        self, intents: Sequence[MediaIntent], ice_restart: bool = False
    ) -> SessionDescription:
        """An offer with one m-section per intent, existing sections first.

        Pass the same intents as before plus any new ones (in order); an
        intent with ``stopped=True`` keeps its place with port 0.
        """
        if len(intents) < len(self._mids):
            raise UsageError("a re-offer keeps every earlier m-section")
        if ice_restart:
            self.restart_ice()
        sections = []
        bundle = []
        for index, intent in enumerate(intents):
            mid = self._mid_at(index)
            section = self._section(intent, mid, setup="actpass", answering=None)
            sections.append(section)
            if not intent.stopped:
                bundle.append(mid)
        desc = self._description(sections, bundle, self.extmap_allow_mixed)
        self._pending = (desc, list(intents))
        self.local_description = desc
        return desc

    def handle_answer(
        self, answer: SessionDescription | str | bytes
    ) -> NegotiatedSession:
        """Apply the peer's answer to our last offer."""
        if self._pending is None:
            raise UsageError("no offer is waiting for an answer")
        if not isinstance(answer, SessionDescription):
            answer = parse(answer)
        check_remote(answer)
        offer, intents = self._pending
        if len(answer.media) != len(offer.media):
            raise NegotiationError("answer has a different number of m-sections")
        media = []
        for index, (ours, theirs) in enumerate(zip(offer.media, answer.media)):
            if theirs.mid != ours.mid or theirs.kind != ours.kind:
                raise NegotiationError(
                    f"answer m-section {index} does not match the offer"
                )
            media.append(
                self._negotiate_answered(index, ours, theirs, answer, intents[index])
            )
        groups = answer.bundle_groups()
        accepted = {m.mid for m in media if not m.rejected}
        # RFC 9143 section 7.3: only mids we offered and the answer accepted.
        bundle = tuple(mid for mid in groups[0] if mid in accepted) if groups else ()
        result = self._session(answer, tuple(media), bundle, offerer=True)
        self._pending = None
        self.remote_description = answer
        return result

    # --- answers
    def handle_offer(
        self,
        offer: SessionDescription | str | bytes,
        intents: Sequence[MediaIntent] = (),
    ) -> tuple[SessionDescription, NegotiatedSession]:
        """Answer the peer's offer with our intents, matched by kind in order.

        An offered section no intent takes is answered ``recvonly`` (we take
        what the peer sends); set a kind's intent ``stopped`` to refuse it.
        An offer of ours still waiting for its answer is dropped (rollback,
        RFC 8829 section 4.1.10): glare is settled by the caller.
        """
        if not isinstance(offer, SessionDescription):
            offer = parse(offer)
        check_remote(offer)
        self._pending = None
        remote_ice = self._remote_credentials(offer)
        restart = self._remote_ice is not None and remote_ice != self._remote_ice
        if restart and not self.transport.ice_ufrag:
            self.ice_ufrag, self.ice_pwd = self._credentials()
        self._remote_ice = remote_ice
        unused = list(intents)
        offered_bundle = offer.bundle_groups()
        sections: list[MediaSection] = []
        media: list[NegotiatedMedia] = []
        for index, remote in enumerate(offer.media):
            intent = self._take_intent(unused, remote)
            section, negotiated = self._answer_section(index, remote, offer, intent)
            sections.append(section)
            media.append(negotiated)
            mid = remote.mid
            if mid is not None and mid not in self._mids:
                self._mids.append(mid)
        bundle: list[str] = []
        if offered_bundle:
            # RFC 9143 section 7.3.1: the first offered mid we accept becomes
            # the offerer- and answerer-tagged section, so it leads the group.
            accepted = {m.mid for m in media if not m.rejected}
            bundle = [mid for mid in offered_bundle[0] if mid in accepted]
        # RFC 8285 section 6: answer it only when offered and supported.
        mixed = self.extmap_allow_mixed and offer.has("extmap-allow-mixed")
        desc = self._description(sections, bundle, mixed)
        self.local_description = desc
        self.remote_description = offer
        result = self._session(offer, tuple(media), tuple(bundle), offerer=False)
        return desc, result

    # ------------------------------------------------------------ internals
    def _mid_at(self, index: int) -> str:
        while index >= len(self._mids):
            while str(self._next_mid) in self._mids:
                self._next_mid += 1
            self._mids.append(str(self._next_mid))
        return self._mids[index]

    def _extension_id(self, uri: str) -> int:
        # One id per URI across the session, as browsers do; 1-14 first
        # (one-byte header, RFC 8285 section 4.2).
        if uri not in self._extension_ids:
            used = set(self._extension_ids.values())
            self._extension_ids[uri] = next(
                i for i in list(range(1, 15)) + list(range(16, 256)) if i not in used
            )
        return self._extension_ids[uri]

    def _description(
        self, sections: list[MediaSection], bundle: list[str], mixed: bool
    ) -> SessionDescription:
        self._version += 1
        desc = SessionDescription()
        desc.lines.append(Line.field("v", 0))
        desc.lines.append(
            Line.field(
                "o",
                Origin(
                    self._username,
                    self.session_id,
                    self._version,
                    "IN",
                    "IP4",
                    "0.0.0.0",
                ),
            )
        )
        desc.lines.append(Line.field("s", "-"))
        desc.lines.append(Line.field("t", Timing()))
        if bundle:
            desc.add("group", Group("BUNDLE", tuple(bundle)))
        if mixed:
            desc.add("extmap-allow-mixed")
        if self.transport.ice_lite:
            desc.add("ice-lite")
        desc.add("msid-semantic", "WMS *")
        desc.media = sections
        return desc

    def _transport_lines(self, section: MediaSection, setup: str) -> None:
        t = self.transport
        section.add("ice-ufrag", self.ice_ufrag)
        section.add("ice-pwd", self.ice_pwd)
        if t.ice_options:
            section.add("ice-options", t.ice_options)
        for fp in t.fingerprints:
            section.add("fingerprint", fp)
        section.add("setup", setup)

    def _candidate_lines(self, section: MediaSection) -> None:
        for cand in self.transport.candidates:
            section.add("candidate", cand)
        if self.transport.end_of_candidates:
            section.add("end-of-candidates")

    def _media_line(
        self, kind: str, protocol: str, formats: tuple[str, ...], rejected: bool
    ) -> list[Line]:
        # RFC 8829 section 5.2.1: port 9 and 0.0.0.0 until a candidate is
        # known; the default candidate otherwise (section 5.3.3 of RFC 8839).
        port, address, addrtype = 9, "0.0.0.0", "IP4"
        for cand in self.transport.candidates:
            if cand.component == 1:
                port, address = cand.port, cand.address
                addrtype = "IP6" if ":" in address else "IP4"
                break
        return [
            Line.field("m", Media(kind, 0 if rejected else port, protocol, formats)),
            Line.field("c", Connection("IN", addrtype, address)),
        ]

    def _section(
        self,
        intent: MediaIntent,
        mid: str,
        setup: str,
        answering: _Agreed | None,
        direction: str | None = None,
        recv_rids: tuple[str, ...] = (),
    ) -> MediaSection:
        """Build an m-section; ``answering`` carries the agreed codecs and
        extensions and the offered section when this is an answer."""
        limits = intent.limits or self.limits
        if intent.kind == "application":
            section = MediaSection(
                self._media_line(
                    "application",
                    SCTP_PROTOCOL,
                    ("webrtc-datachannel",),
                    intent.stopped,
                )
            )
            self._transport_lines(section, setup)
            section.add("mid", mid)
            if intent.stopped:
                return section
            section.add("sctp-port", 5000)
            section.add("max-message-size", intent.max_message_size)
            self._candidate_lines(section)
            return section
        if answering is None:
            codecs = self._offer_codecs(intent, mid)
            extensions = [
                Extmap(self._extension_id(uri), uri) for uri in intent.all_extensions()
            ]
        else:
            codecs, extensions = answering.codecs, answering.extensions
        formats: list[str] = []
        for codec in codecs:
            formats.append(str(codec.payload_type))
            if codec.rtx_payload_type is not None:
                formats.append(str(codec.rtx_payload_type))
        rejected = intent.stopped or not codecs
        if not formats:  # RFC 8866: an m= line has at least one format
            formats = ["0"]
        section = MediaSection(
            self._media_line(intent.kind, RTP_PROTOCOL, tuple(formats), rejected)
        )
        if rejected:
            self._transport_lines(section, setup)
            section.add("mid", mid)
            section.add("inactive")
            section.add("rtcp-mux")
            return section
        write_limits(section, limits, intent.kind == "video")
        self._transport_lines(section, setup)
        section.add("mid", mid)
        for extmap in extensions:
            section.add("extmap", extmap)
        if answering is not None and answering.mixed_here:
            section.add("extmap-allow-mixed")
        direction = direction or intent.direction
        section.add(direction)
        send = _SEND_RECV[direction][0]
        if send:
            section.add(
                "msid",
                Msid(
                    intent.stream_id or "-", intent.track_id or f"{intent.kind}-{mid}"
                ),
            )
        section.add("rtcp-mux")
        # RFC 5506 section 5: an answer says rtcp-rsize only if offered.
        if answering is None or answering.offered.has("rtcp-rsize"):
            section.add("rtcp-rsize")
        if intent.content:
            section.add("content", (intent.content,))
        for codec in codecs:
            self._codec_lines(section, codec, limits)
        rids = intent.rids() if send else ()
        if answering is None and rids:
            for rid in rids:
                section.add("rid", rid)
            section.add(
                "simulcast", Simulcast(send=tuple((SimulcastRid(r.id),) for r in rids))
            )
        elif answering is not None and (rids or recv_rids):
            self._answer_simulcast(section, answering.offered, rids, recv_rids)
        if send and intent.ssrc is not None and not rids:
            self._ssrc_lines(section, intent)
        self._candidate_lines(section)
        return section

    def _codec_lines(self, section: MediaSection, codec: Codec, limits: Limits) -> None:
        pt = codec.payload_type
        assert pt is not None
        section.add("rtpmap", codec.rtpmap(pt))
        for fb_type, fb_param in codec.feedback:
            section.add("rtcp-fb", RtcpFb(str(pt), fb_type, fb_param))
        params = dict(codec.parameters)
        for key, value in codec_limit_parameters(codec.name, limits):
            params.setdefault(key, value)
        if params:
            section.add("fmtp", Fmtp.from_dict(pt, params))
        if codec.rtx_payload_type is not None:
            rtx = codec.rtx_payload_type
            section.add("rtpmap", Codec("rtx", codec.clock_rate).rtpmap(rtx))
            section.add("fmtp", Fmtp.from_dict(rtx, {"apt": str(pt)}))

    def _ssrc_lines(self, section: MediaSection, intent: MediaIntent) -> None:
        ssrcs = [intent.ssrc] + (
            [intent.rtx_ssrc] if intent.rtx_ssrc is not None else []
        )
        if len(ssrcs) == 2:
            section.add("ssrc-group", SsrcGroup("FID", tuple(ssrcs)))  # type: ignore[arg-type]
        for ssrc in ssrcs:
            section.add("ssrc", Ssrc(ssrc, "cname", self.cname))  # type: ignore[arg-type]

    def _offer_codecs(self, intent: MediaIntent, mid: str) -> list[Codec]:
        """Our codecs with payload types: agreed ones kept first, then those
        the peer already mapped (on its payload type), then the preferred
        ones where free, then the first free dynamic ones; RTX for video.

        A payload type the peer mapped to another codec is not reused for
        ours (RFC 3264 section 8.3.2: a number keeps its codec in a session).
        """
        agreed = self._agreed.get(mid, [])
        known = self._remote_codecs.get(mid, [])
        reserved = {
            pt for c in known for pt in (c.payload_type, c.rtx_payload_type) if pt
        }
        used: set[int] = set()
        codecs: list[Codec] = []
        fixed: list[bool] = []
        for codec in intent.all_codecs():
            prior = next((a for a in agreed if match(codec, a)), None) or next(
                (k for k in known if k.payload_type not in used and match(codec, k)),
                None,
            )
            if prior is not None and intent.kind != "video":
                prior = replace(prior, rtx_payload_type=None)
            if prior is not None:
                codec = replace(
                    codec,
                    payload_type=prior.payload_type,
                    rtx_payload_type=prior.rtx_payload_type,
                )
                used.update(
                    pt for pt in (prior.payload_type, prior.rtx_payload_type) if pt
                )
            codecs.append(codec)
            fixed.append(prior is not None)
        for i, codec in enumerate(codecs):
            if fixed[i]:
                continue
            pt, rtx = codec.payload_type, codec.rtx_payload_type
            taken = used | reserved
            pt = pt if pt is not None and pt not in taken else None
            used.update(p for p in (pt,) if p is not None)
            rtx = rtx if rtx is not None and rtx not in taken | {pt} else None
            used.update(p for p in (rtx,) if p is not None)
            codecs[i] = replace(codec, payload_type=pt, rtx_payload_type=rtx)
        # Free numbers the peer never used first, then what is left.
        free = (
            pt
            for pt in sorted(_DYNAMIC_PTS, key=lambda p: p in reserved)
            if pt not in used
        )
        result = []
        for codec in codecs:
            if codec.payload_type is None:
                codec = replace(codec, payload_type=next(free))
            if intent.kind == "video" and codec.rtx_payload_type is None:
                codec = replace(codec, rtx_payload_type=next(free))
            result.append(codec)
        return result

    def _take_intent(
        self, unused: list[MediaIntent], remote: MediaSection
    ) -> MediaIntent | None:
        if remote.rejected:  # stays rejected and leaves the intents for others
            return None
        content = remote.get("content")
        for want_content in (True, False):
            for i, intent in enumerate(unused):
                if intent.kind != remote.kind:
                    continue
                if want_content and (intent.content is None) != (content is None):
                    continue
                return unused.pop(i)
        if remote.kind in ("audio", "video"):
            return MediaIntent(remote.kind, direction="recvonly")
        if remote.kind == "application":
            return MediaIntent("application")
        return None

    def _remote_credentials(
        self, desc: SessionDescription
    ) -> tuple[str | None, str | None]:
        for media in desc.media:
            if not media.rejected:
                return (
                    desc.session_or_media(media, "ice-ufrag"),  # type: ignore[return-value]
                    desc.session_or_media(media, "ice-pwd"),
                )
        return (desc.ice_ufrag, desc.ice_pwd)

    def _answer_setup_for(self, offered: str | None) -> str:
        # RFC 8842 section 5.3
        if offered == "active":
            return "passive"
        if offered == "passive":
            return "active"
        if self._answer_setup is None:
            self._answer_setup = self.transport.answer_setup
        return self._answer_setup

    def _answer_section(
        self,
        index: int,
        remote: MediaSection,
        offer: SessionDescription,
        intent: MediaIntent | None,
    ) -> tuple[MediaSection, NegotiatedMedia]:
        mid = remote.mid or str(index)
        kind = remote.kind
        transport = _remote_transport(offer, remote)
        setup = self._answer_setup_for(transport.setup)
        refused = (
            intent is None
            or intent.stopped
            or remote.rejected
            or (kind in ("audio", "video") and remote.protocol not in _RTP_PROTOCOLS)
            or (kind == "application" and remote.protocol not in _SCTP_PROTOCOLS)
            or (kind in ("audio", "video") and not remote.rtcp_mux)
        )
        if refused or intent is None:
            return self._rejected(kind, remote, mid), NegotiatedMedia(
                index, mid, kind, True
            )
        if kind == "application":
            section = self._section(intent, mid, setup, answering=None)
            return section, _data_channel(index, mid, remote, transport)
        offered = codecs_of(remote)
        self._remote_codecs[mid] = offered
        codecs, send_codecs, levels = self._intersect(
            intent.all_codecs(), offered, intent.kind
        )
        if not codecs:
            return self._rejected(kind, remote, mid), NegotiatedMedia(
                index, mid, kind, True
            )
        direction = answer_direction(remote.direction or "sendrecv", intent.direction)
        # RFC 8285 section 6: at session level, or in this section (Firefox).
        mixed = self.extmap_allow_mixed and (
            offer.has("extmap-allow-mixed") or remote.has("extmap-allow-mixed")
        )
        extmaps = _answer_extmaps(
            remote, set(intent.all_extensions()), *_SEND_RECV[direction], mixed
        )
        extensions = [(e.id, e.uri) for e in extmaps]
        for ext_id, uri in extensions:  # later offers of ours keep these ids
            self._extension_ids.setdefault(uri, ext_id)
        recv_rids: tuple[str, ...] = ()
        simulcast = remote.get("simulcast")
        has_rid_ext = any(uri == RID_EXTENSION for _, uri in extensions)
        if simulcast is not None and _SEND_RECV[direction][1] and has_rid_ext:
            recv_rids = tuple(simulcast.rids("send"))
        send_rids: tuple[str, ...] = ()
        if (
            simulcast is not None
            and _SEND_RECV[direction][0]
            and has_rid_ext
            and intent.simulcast
        ):
            theirs = simulcast.rids("recv")
            send_rids = tuple(r.id for r in intent.rids() if r.id in theirs)
            intent = replace(intent, simulcast=send_rids)
        elif intent.simulcast:
            intent = replace(intent, simulcast=())
        mixed_here = mixed and remote.has("extmap-allow-mixed")
        agreed = _Agreed(codecs, extmaps, remote, mixed_here)
        section = self._section(intent, mid, setup, agreed, direction, recv_rids)
        self._agreed[mid] = codecs
        local_limits = intent.limits or self.limits
        limits = self._limits(local_limits, remote, offer, send_codecs)
        return section, NegotiatedMedia(
            index,
            mid,
            kind,
            False,
            direction,
            send_codecs=tuple(send_codecs),
            recv_codecs=tuple(codecs),
            header_extensions=tuple(extensions),
            rtcp_mux=True,
            rtcp_rsize=remote.has("rtcp-rsize"),
            send_rids=send_rids,
            recv_rids=recv_rids,
            content=tuple(remote.get("content", ()) or ()),  # type: ignore[arg-type]
            limits=limits,
            h264_levels=tuple(levels),
            remote_msid=remote.get("msid"),  # type: ignore[arg-type]
            remote_ssrcs=tuple(dict.fromkeys(s.ssrc for s in remote.get_all("ssrc"))),
            remote=transport,
            extension_directions=tuple(
                (e.id, e.direction or "sendrecv") for e in extmaps
            ),
            extmap_allow_mixed=mixed,
        )

    def _rejected(self, kind: str, remote: MediaSection, mid: str) -> MediaSection:
        # RFC 8829 section 5.3.1: port 0, the offer's first format, mid kept.
        section = MediaSection(
            [
                Line.field(
                    "m", Media(kind, 0, remote.protocol, remote.formats[:1] or ("0",))
                ),
                Line.field("c", Connection("IN", "IP4", "0.0.0.0")),
            ]
        )
        # Transport lines too: some stacks (aiortc) want ICE credentials and
        # a fingerprint in every m-section, rejected or not.
        self._transport_lines(section, self._answer_setup_for(None))
        if remote.mid is not None:
            section.add("mid", remote.mid)
        section.add("inactive")
        if kind in ("audio", "video"):
            section.add("rtcp-mux")
            # The first offered format's rtpmap, for stacks (aiortc) that
            # read codecs even from a rejected section.
            first = remote.formats[0] if remote.formats else None
            for line in remote.lines:
                if line.name == "rtpmap" and str(line.value.payload_type) == first:
                    section.lines.append(line)
        return section

    def _intersect(
        self, local: Sequence[Codec], offered: list[Codec], kind: str
    ) -> tuple[list[Codec], list[Codec], list[tuple[int, int, int]]]:
        """(codecs we answer, codecs to send with, H.264 levels).

        Our preference order, the offer's payload types; each offered
        format is used once.
        """
        answer: list[Codec] = []
        send: list[Codec] = []
        levels: list[tuple[int, int, int]] = []
        taken: set[int] = set()
        for ours in local:
            theirs = next(
                (c for c in offered if c.payload_type not in taken and match(ours, c)),
                None,
            )
            if theirs is None:
                continue
            assert theirs.payload_type is not None
            taken.add(theirs.payload_type)
            ours_fb = set(ours.feedback)
            feedback = tuple(fb for fb in theirs.feedback if fb in ours_fb)
            params = ours.parameters
            if ours.name.lower() == "h264":
                params, level = _h264_answer(ours, theirs)
                levels.append((theirs.payload_type, *level))
            rtx = theirs.rtx_payload_type if kind == "video" else None
            answer.append(
                replace(
                    ours,
                    parameters=params,
                    feedback=feedback,
                    payload_type=theirs.payload_type,
                    rtx_payload_type=rtx,
                )
            )
            send.append(replace(theirs, feedback=feedback, rtx_payload_type=rtx))
        return answer, send, levels

    def _answer_simulcast(
        self,
        section: MediaSection,
        remote: MediaSection,
        send_rids: tuple[Rid, ...],
        recv_rids: tuple[str, ...],
    ) -> None:
        # RFC 8853 section 5.3: the answer mirrors the directions.
        offered = {r.id: r for r in remote.get_all("rid")}
        for rid_id in recv_rids:
            params = offered[rid_id].parameters if rid_id in offered else ()
            section.add("rid", Rid(rid_id, "recv", params))
        for rid in send_rids:
            section.add("rid", rid)
        section.add(
            "simulcast",
            Simulcast(
                send=tuple((SimulcastRid(r.id),) for r in send_rids),
                recv=tuple((SimulcastRid(r),) for r in recv_rids),
            ),
        )

    def _negotiate_answered(
        self,
        index: int,
        ours: MediaSection,
        theirs: MediaSection,
        answer: SessionDescription,
        intent: MediaIntent,
    ) -> NegotiatedMedia:
        mid, kind = ours.mid, ours.kind
        if ours.port == 0 or theirs.rejected:
            return NegotiatedMedia(index, mid, kind, True)
        transport = _remote_transport(answer, theirs)
        if kind == "application":
            return _data_channel(index, mid, theirs, transport)
        offered = {c.payload_type: c for c in codecs_of(ours)}
        self._remote_codecs[mid] = codecs_of(theirs)  # type: ignore[index]
        recv: list[Codec] = []
        send: list[Codec] = []
        levels: list[tuple[int, int, int]] = []
        for codec in codecs_of(theirs):
            mine = offered.get(codec.payload_type)
            if mine is None or not match(mine, codec):
                continue  # RFC 3264 section 6.1: answers use offered PTs
            fb = tuple(f for f in codec.feedback if f in set(mine.feedback))
            rtx = codec.rtx_payload_type if mine.rtx_payload_type is not None else None
            recv.append(replace(mine, feedback=fb, rtx_payload_type=rtx))
            send.append(replace(codec, feedback=fb, rtx_payload_type=rtx))
            if codec.name.lower() == "h264":
                levels.append((codec.payload_type, *_h264_levels(mine, codec)))  # type: ignore[arg-type]
        mixed = (
            self.extmap_allow_mixed
            and (self._offered_mixed() or ours.has("extmap-allow-mixed"))
            and (answer.has("extmap-allow-mixed") or theirs.has("extmap-allow-mixed"))
        )
        agreed_ext = _answered_extmaps(ours, theirs, mixed)
        extensions = tuple((e.id, e.uri) for e in agreed_ext)
        direction = _reverse(theirs.direction or "sendrecv")
        if not recv:
            direction = "inactive"
        self._agreed[mid] = recv  # type: ignore[index]
        simulcast = theirs.get("simulcast")
        send_rids: tuple[str, ...] = ()
        recv_rids: tuple[str, ...] = ()
        if simulcast is not None:
            ours_sent = [r.id for r in intent.rids()]
            send_rids = tuple(r for r in simulcast.rids("recv") if r in ours_sent)
            recv_rids = tuple(simulcast.rids("send"))
        local_limits = intent.limits or self.limits
        return NegotiatedMedia(
            index,
            mid,
            kind,
            False,
            direction,
            send_codecs=tuple(send),
            recv_codecs=tuple(recv),
            header_extensions=extensions,
            rtcp_mux=theirs.rtcp_mux,
            rtcp_rsize=theirs.has("rtcp-rsize"),
            send_rids=send_rids,
            recv_rids=recv_rids,
            content=tuple(ours.get("content", ()) or ()),  # type: ignore[arg-type]
            limits=self._limits(local_limits, theirs, answer, send),
            h264_levels=tuple(levels),
            remote_msid=theirs.get("msid"),  # type: ignore[arg-type]
            remote_ssrcs=tuple(dict.fromkeys(s.ssrc for s in theirs.get_all("ssrc"))),
            remote=transport,
            extension_directions=tuple(
                (e.id, e.direction or "sendrecv") for e in agreed_ext
            ),
            extmap_allow_mixed=mixed,
        )

    def _offered_mixed(self) -> bool:
        pending = self._pending[0] if self._pending else self.local_description
        return pending is not None and pending.has("extmap-allow-mixed")

    def _limits(
        self,
        local: Limits,
        remote: MediaSection,
        desc: SessionDescription,
        send: list[Codec],
    ) -> Limits:
        if remote.kind != "video":  # resolution and frame rate are video's
            local = Limits(max_bitrate=local.max_bitrate)
        first = send[0] if send else None
        params = dict(first.parameters) if first else {}
        theirs = limits_of(remote, desc, first.payload_type if first else None, params)
        if first is not None and first.name.lower() == "h264":
            try:
                level = ProfileLevelId.parse(first.parameter("profile-level-id")).level
                theirs = theirs.minimum(Limits(max_fs=level_limits(level)[1]))
            except ValueError:
                pass
        if remote.kind != "video":
            theirs = Limits(max_bitrate=theirs.max_bitrate)
        return local.minimum(theirs)

    def _session(
        self,
        remote_desc: SessionDescription,
        media: tuple[NegotiatedMedia, ...],
        bundle: tuple[str, ...],
        offerer: bool,
    ) -> NegotiatedSession:
        accepted = [m for m in media if not m.rejected and m.remote is not None]
        tag = next((m for m in accepted if bundle and m.mid == bundle[0]), None)
        chosen = tag or (accepted[0] if accepted else None)
        if chosen is None:  # all rejected: rejected sections carry it too
            first = remote_desc.media[0] if remote_desc.media else None
            remote = _remote_transport(remote_desc, first)
        else:
            remote = chosen.remote  # type: ignore[assignment]
        if offerer:
            # RFC 8842 section 5.2: the answer's role decides ours.
            dtls_role = "server" if remote.setup == "active" else "client"
            self._remote_ice = (remote.ice_ufrag, remote.ice_pwd)
        else:
            dtls_role = (
                "client"
                if self._answer_setup_for(remote.setup) == "active"
                else "server"
            )
        # RFC 8445 section 6.1.1: a full agent facing a lite one controls;
        # otherwise the offerer does.
        if self.transport.ice_lite != remote.ice_lite:
            controlling = not self.transport.ice_lite
        else:
            controlling = offerer
        previous = self.negotiated
        restart = previous is not None and (
            (previous.remote.ice_ufrag, previous.remote.ice_pwd)
            != (remote.ice_ufrag, remote.ice_pwd)
            or previous.local_ice_ufrag != self.ice_ufrag
        )
        # RFC 8285 section 6: agreed at session level, or in every RTP
        # section that was accepted (Firefox states it per section).
        rtp = [m for m in accepted if m.kind in ("audio", "video")]
        mixed = (
            self.extmap_allow_mixed
            and remote_desc.has("extmap-allow-mixed")
            and self.local_description is not None
            and self.local_description.has("extmap-allow-mixed")
        ) or (bool(rtp) and all(m.extmap_allow_mixed for m in rtp))
        result = NegotiatedSession(
            media,
            bundle,
            dtls_role,
            controlling,
            restart,
            self.ice_ufrag,
            self.ice_pwd,
            remote,
            mixed,
        )
        self.negotiated = result
        return result


def _data_channel(
    index: int, mid: str | None, remote: MediaSection, transport: RemoteTransport
) -> NegotiatedMedia:
    """An accepted SCTP section; RFC 8841 section 6: 64 KiB when the peer
    states no max-message-size."""
    return NegotiatedMedia(
        index,
        mid,
        "application",
        False,
        "sendrecv",
        remote=transport,
        sctp_port=remote.get("sctp-port", 5000),  # type: ignore[arg-type]
        max_message_size=remote.get("max-message-size", 65536),  # type: ignore[arg-type]
    )


def _remote_transport(
    desc: SessionDescription, media: MediaSection | None
) -> RemoteTransport:
    def get(name: str) -> object:
        return (
            desc.session_or_media(media, name) if media is not None else desc.get(name)
        )

    fingerprints = (
        media.fingerprints if media is not None else []
    ) or desc.fingerprints
    candidates = tuple(media.candidates) if media is not None else ()
    return RemoteTransport(
        ice_ufrag=get("ice-ufrag"),  # type: ignore[arg-type]
        ice_pwd=get("ice-pwd"),  # type: ignore[arg-type]
        ice_lite=desc.has("ice-lite"),
        ice_options=tuple(get("ice-options") or ()),  # type: ignore[arg-type]
        candidates=candidates,
        end_of_candidates=media is not None and media.has("end-of-candidates"),
        fingerprints=tuple(fingerprints),
        setup=get("setup"),  # type: ignore[arg-type]
    )


def _h264_levels(ours: Codec, theirs: Codec) -> tuple[int, int]:
    """(send level, receive level) for us (RFC 6184 section 8.2.2)."""
    try:
        mine = ProfileLevelId.parse(ours.parameter("profile-level-id"))
        peer = ProfileLevelId.parse(theirs.parameter("profile-level-id"))
    except ValueError:
        return (0, 0)
    asymmetry = (
        ours.parameter("level-asymmetry-allowed") == "1"
        and theirs.parameter("level-asymmetry-allowed") == "1"
    )
    return negotiate_levels(mine, peer, asymmetry)


def _h264_answer(
    ours: Codec, theirs: Codec
) -> tuple[tuple[tuple[str, str | None], ...], tuple[int, int]]:
    """Our answer's fmtp for H.264 and the (send, receive) levels.

    Without level asymmetry both sides use the lower level and the answer
    states it (RFC 6184 section 8.2.2); with it we state our own level.
    """
    send, recv = _h264_levels(ours, theirs)
    params = list(ours.parameters)
    if send and send == recv:
        try:
            plid = ProfileLevelId.parse(ours.parameter("profile-level-id")).with_level(
                recv
            )
        except ValueError:
            return tuple(params), (send, recv)
        params = [
            (k, str(plid)) if k.lower() == "profile-level-id" else (k, v)
            for k, v in params
        ]
    return tuple(params), (send, recv)


def _usable_extmap_id(ext_id: int, mixed: bool) -> bool:
    # RFC 8285 sections 4.2, 4.3 and 6: 1-14 in one-byte headers; 1-255
    # (15 excluded) only once two-byte headers are agreed.
    return ext_id != 15 and 1 <= ext_id <= (255 if mixed else 14)


def _answer_extmaps(
    remote: MediaSection, ours: set[str], send: bool, recv: bool, mixed: bool
) -> list[Extmap]:
    """The offered header extensions we answer, with the offer's ids.

    RFC 8285 section 7: an extension offered ``sendonly`` is answered
    ``recvonly`` (and ``recvonly`` with ``sendonly``) or left out when we do
    not go that way; ids we cannot use in this session are left out.
    """
    answered = []
    for extmap in remote.get_all("extmap"):
        if extmap.uri not in ours or not _usable_extmap_id(extmap.id, mixed):
            continue
        if extmap.direction in (None, "sendrecv"):
            answered.append(Extmap(extmap.id, extmap.uri, extmap.direction))
            continue
        peer_send, peer_recv = _SEND_RECV[extmap.direction]
        direction = _DIRECTION_OF[(peer_recv and send, peer_send and recv)]
        if direction != "inactive":
            answered.append(Extmap(extmap.id, extmap.uri, direction))
    return answered


def _answered_extmaps(
    offered: MediaSection, answered: MediaSection, mixed: bool
) -> list[Extmap]:
    """Header extensions an answer agreed to, with our direction for each.

    Only offered (id, uri) pairs count (RFC 8285 section 7); the direction
    is what both sides said, from our side.
    """
    ours = {e.id: e for e in offered.get_all("extmap")}
    agreed = []
    for extmap in answered.get_all("extmap"):
        mine = ours.get(extmap.id)
        if mine is None or mine.uri != extmap.uri:
            continue
        if not _usable_extmap_id(extmap.id, mixed):
            continue
        our_send, our_recv = _SEND_RECV[mine.direction or "sendrecv"]
        peer_send, peer_recv = _SEND_RECV[extmap.direction or "sendrecv"]
        direction = _DIRECTION_OF[(our_send and peer_recv, our_recv and peer_send)]
        if direction != "inactive":
            agreed.append(Extmap(extmap.id, extmap.uri, direction))
    return agreed
