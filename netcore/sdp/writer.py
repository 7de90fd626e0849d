"""Writing our session descriptions: the session level, m-sections of
offers and answers, and refused sections (RFC 8829 sections 5.2 and 5.3).

``SdpWriter`` only writes; what goes in a section (codecs with payload types,
header extensions, direction, rids) is decided by the negotiator and handed
over as a ``SectionPlan``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from .attributes import (
    Connection,
    Extmap,
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
from .codecs import Codec
from .limits import Limits, codec_limit_parameters, write_limits
from .model import RTP_PROTOCOL, SCTP_PROTOCOL, SEND_RECV, LocalTransport, MediaIntent
from .wire import Line, MediaSection, SessionDescription

__all__ = ["SdpWriter", "SectionPlan"]


class SectionPlan(NamedTuple):
    """What one m-section carries: codecs with payload types, header
    extensions with ids, and for an answer the offered section (and whether
    it stated ``a=extmap-allow-mixed`` we answer in the section)."""

    codecs: list[Codec]
    extensions: list[Extmap]
    offered: MediaSection | None = None
    mixed_here: bool = False


@dataclass(eq=False)
class SdpWriter:
    """Writes one side's descriptions: its transport, origin and cname."""

    transport: LocalTransport
    username: str
    session_id: int
    cname: str
    version: int = field(default=0, init=False)  # o= session version, one more per description

    def description(
        self, sections: list[MediaSection], bundle: list[str], mixed: bool
    ) -> SessionDescription:
        """The session level around ``sections``; each call is a new version
        of the session (RFC 8866 section 5.2)."""
        self.version += 1
        desc = SessionDescription()
        desc.lines.append(Line.field("v", 0))
        desc.lines.append(
            Line.field(
                "o",
                Origin(
                    self.username,
                    self.session_id,
                    self.version,
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

    def _transport_lines(
        self, section: MediaSection, setup: str, ice: tuple[str, str]
    ) -> None:
        t = self.transport
        section.add("ice-ufrag", ice[0])
        section.add("ice-pwd", ice[1])
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

    def section(
        self,
        intent: MediaIntent,
        mid: str,
        setup: str,
        plan: SectionPlan,
        ice: tuple[str, str],
        limits: Limits,
        direction: str | None = None,
        recv_rids: tuple[str, ...] = (),
    ) -> MediaSection:
        """Build an m-section for ``intent`` with the codecs and extensions
        of ``plan``; an answer when ``plan.offered`` is the offered section.
        ``limits`` are used unless the intent has its own."""
        limits = intent.limits or limits
        if intent.kind == "application":
            section = MediaSection(
                self._media_line(
                    "application",
                    SCTP_PROTOCOL,
                    ("webrtc-datachannel",),
                    intent.stopped,
                )
            )
            self._transport_lines(section, setup, ice)
            section.add("mid", mid)
            if intent.stopped:
                return section
            section.add("sctp-port", 5000)
            section.add("max-message-size", intent.max_message_size)
            self._candidate_lines(section)
            return section
        codecs, extensions, offered = plan.codecs, plan.extensions, plan.offered
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
            self._transport_lines(section, setup, ice)
            section.add("mid", mid)
            section.add("inactive")
            section.add("rtcp-mux")
            return section
        write_limits(section, limits, intent.kind == "video")
        self._transport_lines(section, setup, ice)
        section.add("mid", mid)
        for extmap in extensions:
            section.add("extmap", extmap)
        if plan.mixed_here:
            section.add("extmap-allow-mixed")
        direction = direction or intent.direction
        section.add(direction)
        send = SEND_RECV[direction][0]
        if send:
            section.add(
                "msid",
                Msid(
                    intent.stream_id or "-", intent.track_id or f"{intent.kind}-{mid}"
                ),
            )
        section.add("rtcp-mux")
        # RFC 5506 section 5: an answer says rtcp-rsize only if offered.
        if offered is None or offered.has("rtcp-rsize"):
            section.add("rtcp-rsize")
        if intent.content:
            section.add("content", (intent.content,))
        for codec in codecs:
            self._codec_lines(section, codec, limits)
        rids = intent.rids() if send else ()
        if offered is None and rids:
            for rid in rids:
                section.add("rid", rid)
            section.add(
                "simulcast", Simulcast(send=tuple((SimulcastRid(r.id),) for r in rids))
            )
        elif offered is not None and (rids or recv_rids):
            self._answer_simulcast(section, offered, rids, recv_rids)
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

    def rejected(
        self,
        kind: str,
        remote: MediaSection,
        mid: str,
        setup: str,
        ice: tuple[str, str],
    ) -> MediaSection:
        """An answer's refusal of ``remote`` (RFC 8829 section 5.3.1): port
        0, the offer's first format, mid kept."""
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
        self._transport_lines(section, setup, ice)
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
