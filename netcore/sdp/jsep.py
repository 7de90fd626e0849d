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

The records in and out live in ``model.py`` (importable from here too), the
lines are written by ``writer.py``, codecs meet in ``codecs.py``, header
extensions in ``extmaps.py``, and ``checks.py`` refuses what breaks the rules.
"""

from __future__ import annotations

import base64
import os
from dataclasses import replace
from typing import Callable, Sequence

from netcore.errors import UsageError

from .attributes import Extmap
from .checks import check_remote
from .codecs import (
    Codec,
    answered_codecs,
    assign_payload_types,
    codecs_of,
    intersect,
)
from .errors import NegotiationError
from .extmaps import answer_extmaps, answered_extmaps, usable_extmap_id
from .h264 import ProfileLevelId, level_limits
from . import model
from .limits import Limits, limits_of
from .model import (  # the intent and result records, importable from here too
    AUDIO_EXTENSIONS,
    DIRECTION_OF,
    RID_EXTENSION,
    RTP_PROTOCOL,
    RTP_PROTOCOLS,
    SCTP_PROTOCOL,
    SCTP_PROTOCOLS,
    SEND_RECV,
    VIDEO_EXTENSIONS,
    LocalTransport,
    MediaIntent,
    NegotiatedMedia,
    NegotiatedSession,
    RemoteTransport,
    answer_direction,
    reverse_direction,
)
from .wire import MediaSection, SessionDescription, parse
from .writer import SdpWriter, SectionPlan

# The intent and result records of model.py are importable from here too.
__all__ = ["NegotiationError", "Negotiator", *model.__all__]


# ------------------------------------------------------------ the negotiator


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
        self.session_id = int.from_bytes(random(8), "big") >> 2
        self.cname = cname or base64.b32encode(random(10)).decode().lower()
        self._writer = SdpWriter(transport, username, self.session_id, self.cname)
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
            section = self._writer.section(
                intent,
                mid,
                "actpass",
                self._offer_plan(intent, mid),
                self._ice,
                self.limits,
            )
            sections.append(section)
            if not intent.stopped:
                bundle.append(mid)
        desc = self._writer.description(sections, bundle, self.extmap_allow_mixed)
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
        desc = self._writer.description(sections, bundle, mixed)
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

    @property
    def _ice(self) -> tuple[str, str]:
        return self.ice_ufrag, self.ice_pwd

    def _offer_plan(self, intent: MediaIntent, mid: str) -> SectionPlan:
        """Codecs and header extensions of an offered section: agreed
        payload types and ids kept (RFC 8829 section 5.2.2)."""
        if intent.kind == "application":
            return SectionPlan([], [])
        codecs = assign_payload_types(
            intent.all_codecs(),
            video=intent.kind == "video",
            agreed=self._agreed.get(mid, []),
            known=self._remote_codecs.get(mid, []),
        )
        # Ids past 14 only where two-byte headers may be agreed (RFC 8285 6).
        ids = ((self._extension_id(uri), uri) for uri in intent.all_extensions())
        extensions = [
            Extmap(ext_id, uri)
            for ext_id, uri in ids
            if usable_extmap_id(ext_id, self.extmap_allow_mixed)
        ]
        return SectionPlan(codecs, extensions)

    def _reject(self, kind: str, remote: MediaSection, mid: str) -> MediaSection:
        return self._writer.rejected(
            kind, remote, mid, self._answer_setup_for(None), self._ice
        )

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
            or (kind in ("audio", "video") and remote.protocol not in RTP_PROTOCOLS)
            or (kind == "application" and remote.protocol not in SCTP_PROTOCOLS)
            or (kind in ("audio", "video") and not remote.rtcp_mux)
        )
        if refused or intent is None:
            return self._reject(kind, remote, mid), NegotiatedMedia(
                index, mid, kind, True
            )
        if kind == "application":
            section = self._writer.section(
                intent, mid, setup, SectionPlan([], []), self._ice, self.limits
            )
            return section, _data_channel(index, mid, remote, transport)
        offered = codecs_of(remote)
        self._remote_codecs[mid] = offered
        codecs, send_codecs, levels = intersect(
            intent.all_codecs(), offered, intent.kind
        )
        if not codecs:
            return self._reject(kind, remote, mid), NegotiatedMedia(
                index, mid, kind, True
            )
        direction = answer_direction(remote.direction or "sendrecv", intent.direction)
        # RFC 8285 section 6: at session level, or in this section (Firefox).
        mixed = self.extmap_allow_mixed and (
            offer.has("extmap-allow-mixed") or remote.has("extmap-allow-mixed")
        )
        extmaps = answer_extmaps(
            remote, set(intent.all_extensions()), *SEND_RECV[direction], mixed
        )
        extensions = [(e.id, e.uri) for e in extmaps]
        for ext_id, uri in extensions:  # later offers of ours keep these ids
            self._extension_ids.setdefault(uri, ext_id)
        recv_rids: tuple[str, ...] = ()
        simulcast = remote.get("simulcast")
        has_rid_ext = any(uri == RID_EXTENSION for _, uri in extensions)
        if simulcast is not None and SEND_RECV[direction][1] and has_rid_ext:
            recv_rids = tuple(simulcast.rids("send"))
        send_rids: tuple[str, ...] = ()
        if (
            simulcast is not None
            and SEND_RECV[direction][0]
            and has_rid_ext
            and intent.simulcast
        ):
            theirs = simulcast.rids("recv")
            send_rids = tuple(r.id for r in intent.rids() if r.id in theirs)
            intent = replace(intent, simulcast=send_rids)
        elif intent.simulcast:
            intent = replace(intent, simulcast=())
        mixed_here = mixed and remote.has("extmap-allow-mixed")
        plan = SectionPlan(codecs, extmaps, remote, mixed_here)
        section = self._writer.section(
            intent, mid, setup, plan, self._ice, self.limits, direction, recv_rids
        )
        self._agreed[mid] = codecs
        local_limits = intent.limits or self.limits
        limits = self._limits(local_limits, remote, offer, send_codecs)
        return section, _accepted(
            (index, mid, kind), remote, direction, (send_codecs, codecs, levels), extmaps, mixed,
            rids=(send_rids, recv_rids), rtcp_mux=True, content_from=remote,
            limits=limits, transport=transport,
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
        self._remote_codecs[mid] = codecs_of(theirs)  # type: ignore[index]
        recv, send, levels = answered_codecs(codecs_of(ours), codecs_of(theirs))
        mixed = (
            self.extmap_allow_mixed
            and (self._offered_mixed() or ours.has("extmap-allow-mixed"))
            and (answer.has("extmap-allow-mixed") or theirs.has("extmap-allow-mixed"))
        )
        agreed_ext = answered_extmaps(ours, theirs, mixed)
        direction = reverse_direction(theirs.direction or "sendrecv")
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
        return _accepted(
            (index, mid, kind), theirs, direction, (send, recv, levels), agreed_ext, mixed,
            rids=(send_rids, recv_rids), rtcp_mux=theirs.rtcp_mux, content_from=ours,
            limits=self._limits(local_limits, theirs, answer, send), transport=transport,
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


def _accepted(
    slot: tuple[int, str | None, str],
    remote: MediaSection,
    direction: str,
    codecs: tuple[Sequence[Codec], Sequence[Codec], Sequence[int]],
    extmaps: Sequence[Extmap],
    mixed: bool,
    *,
    rids: tuple[tuple[str, ...], tuple[str, ...]],
    rtcp_mux: bool,
    content_from: MediaSection,
    limits: Limits,
    transport: RemoteTransport,
) -> NegotiatedMedia:
    """The result for an accepted m-section, in either role.

    ``slot`` is (index, mid, kind); ``remote`` is the peer's section (its
    msid, ssrcs, rtcp-rsize);
    ``codecs`` is (send, receive, H.264 levels); ``rids`` is (send, receive).
    """
    send, recv, levels = codecs
    index, mid, kind = slot
    return NegotiatedMedia(
        index,
        mid,
        kind,
        False,
        direction,
        send_codecs=tuple(send),
        recv_codecs=tuple(recv),
        header_extensions=tuple((e.id, e.uri) for e in extmaps),
        rtcp_mux=rtcp_mux,
        rtcp_rsize=remote.has("rtcp-rsize"),
        send_rids=rids[0],
        recv_rids=rids[1],
        content=tuple(content_from.get("content", ()) or ()),  # type: ignore[arg-type]
        limits=limits,
        h264_levels=tuple(levels),
        remote_msid=remote.get("msid"),  # type: ignore[arg-type]
        remote_ssrcs=tuple(dict.fromkeys(s.ssrc for s in remote.get_all("ssrc"))),
        remote_rtx_ssrcs=tuple((g.ssrcs[0], g.ssrcs[1]) for g in remote.get_all("ssrc-group")
                               if g.semantics == "FID" and len(g.ssrcs) == 2),
        remote=transport,
        extension_directions=tuple((e.id, e.direction or "sendrecv") for e in extmaps),
        extmap_allow_mixed=mixed,
    )


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
