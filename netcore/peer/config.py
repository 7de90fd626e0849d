"""The configuration of one media transport: plain dataclasses the caller fills from the negotiation.

One :class:`TransportConfig` per BUNDLE group (per participant on the call
server). Every field is something the SDP offer/answer settled
(:class:`netcore.sdp.model.NegotiatedSession`), a local choice (our SSRCs,
certificate, CNAME) or a tuning knob with a default;
:func:`config_from_negotiated` does the mapping docs/peer.md describes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

from netcore.dtls.certificate import DtlsCertificate
from netcore.errors import UsageError
from netcore.ice.gathering import TurnServerConfig
from netcore.net import Address
from netcore.rtp.extensions import URI_MID, URI_TRANSPORT_CC
from netcore.sdp.candidate import Candidate

__all__ = ["CodecConfig", "MediaConfig", "SendLayer", "TransportConfig", "config_from_negotiated"]


@dataclass(frozen=True, slots=True)
class CodecConfig:
    """One agreed payload type (``a=rtpmap``), its RTX payload type (``apt``) and RTCP feedback."""

    payload_type: int
    name: str
    clock_rate: int
    rtx_payload_type: int | None = None
    nack: bool = True  # a=rtcp-fb nack
    pli: bool = True  # a=rtcp-fb nack pli / ccm fir


@dataclass(frozen=True, slots=True)
class SendLayer:
    """One simulcast stream we send (RFC 8853): its RID (RFC 8851), SSRC and RTX SSRC."""

    rid: str
    ssrc: int
    rtx_ssrc: int | None = None


@dataclass(frozen=True, slots=True)
class MediaConfig:
    """One m-section of the bundle, as agreed.

    ``send_ssrc``/``send_rtx_ssrc``: the SSRCs we send with (our choice, in
    our ``a=ssrc`` lines); ``remote_ssrcs``: the peer's signalled media
    SSRCs and ``remote_rtx_ssrcs`` its ``a=ssrc-group:FID`` pairs
    ``(media, rtx)``. Without them the SSRCs are learnt from the MID header
    extension (RFC 8843 section 9.2). With simulcast, ``send_layers`` are
    our streams (``send_ssrc`` is the first's) and ``rids`` the peer's.
    """

    mid: str
    kind: str  # "audio" or "video"
    codecs: tuple[CodecConfig, ...]
    send_ssrc: int | None = None
    send_rtx_ssrc: int | None = None
    remote_ssrcs: tuple[int, ...] = ()
    remote_rtx_ssrcs: tuple[tuple[int, int], ...] = ()
    rids: tuple[str, ...] = ()  # the peer's simulcast streams (RFC 8853), learnt by RID on first sight
    send_layers: tuple[SendLayer, ...] = ()  # our simulcast streams: each its own SSRC, RTX SSRC, RID

    def __post_init__(self) -> None:
        if self.kind not in ("audio", "video"):
            raise UsageError(f"media kind {self.kind!r} is not audio or video")
        if not self.codecs:
            raise UsageError(f"mid {self.mid!r} has no codec")

    def codec(self, payload_type: int) -> CodecConfig | None:
        for codec in self.codecs:
            if codec.payload_type == payload_type:
                return codec
        return None

    def rtx_codec(self, payload_type: int) -> CodecConfig | None:
        """The media codec whose RTX payload type is ``payload_type``."""
        for codec in self.codecs:
            if codec.rtx_payload_type == payload_type:
                return codec
        return None

    @property
    def clock_rate(self) -> int:
        return self.codecs[0].clock_rate


@dataclass(frozen=True)
class TransportConfig:
    """Everything one :class:`~netcore.peer.transport.MediaTransport` needs."""

    certificate: DtlsCertificate
    dtls_role: str  # "client" (a=setup:active) or "server" (a=setup:passive)
    remote_fingerprints: tuple[tuple[str, str], ...]
    media: tuple[MediaConfig, ...]
    ice_controlling: bool = True
    ice_lite: bool = False  # we are an ICE-lite agent (the call server)
    local_ufrag: str | None = None
    local_pwd: str | None = None
    remote_ufrag: str | None = None
    remote_pwd: str | None = None
    remote_candidates: tuple[Candidate, ...] = ()
    remote_end_of_candidates: bool = False
    stun_servers: tuple[Address, ...] = ()
    turn_servers: tuple[TurnServerConfig, ...] = ()
    ice_relay_only: bool = False  # the "relay" ICE transport policy: relayed candidates only
    header_extensions: tuple[tuple[int, str], ...] = ()  # (id, uri), one map for the bundle
    rtcp_rsize: bool = False  # RFC 5506 reduced-size RTCP was agreed
    remb: bool = True  # honour a receiver's REMB as a cap
    cname: str = "netcore"
    rtcp_ssrc: int | None = None  # our SSRC in RR and feedback when we send nothing
    initial_bitrate: float = 300_000
    min_bitrate: float = 30_000
    max_bitrate: float = 2_500_000
    twcc_interval: float = 0.1  # seconds between transport-wide feedback packets
    # Datagrams each NACK goes out in (docs/peer.md): a lost NACK costs a round trip plus the jitter
    # before it is asked again; the sender answers the first copy that comes and ignores the rest
    nack_copies: int = 2
    # Repairs sent twice on a lossy stream (netcore.peer.sender.REPAIR_COPY_LOSS). A call server turns it off:
    # the second copies come out of the same retransmission budget as the next NACK's first repairs, and
    # it pays for every copy in every subscriber's sending
    repair_copies: bool = True
    # The least interval between regular reports (None: RFC 3550 section 6.2's reduced minimum, 360 / session
    # kbit/s, some 30 compounds a second at 10 Mbit/s); a server of many transports sets a floor
    rtcp_min_interval: float | None = None
    wallclock_offset: float = 0.0  # unix time = now + wallclock_offset (RTCP NTP timestamps)
    random: Callable[[int], bytes] = field(default=os.urandom, repr=False)

    def __post_init__(self) -> None:
        if self.dtls_role not in ("client", "server"):
            raise UsageError("dtls_role is 'client' or 'server'")
        mids = [m.mid for m in self.media]
        if len(set(mids)) != len(mids):
            raise UsageError("two m-sections with one mid")

    def extension_id(self, uri: str) -> int | None:
        for ext_id, ext_uri in self.header_extensions:
            if ext_uri == uri:
                return ext_id
        return None

    @property
    def mid_extension(self) -> int | None:
        return self.extension_id(URI_MID)

    @property
    def twcc_extension(self) -> int | None:
        return self.extension_id(URI_TRANSPORT_CC)


def _codec_config(codec) -> CodecConfig:
    feedback = set(codec.feedback)
    return CodecConfig(
        codec.payload_type, codec.name, codec.clock_rate, codec.rtx_payload_type,
        nack=("nack", None) in feedback,
        pli=("nack", "pli") in feedback or ("ccm", "fir") in feedback,
    )


def config_from_negotiated(session, certificate: DtlsCertificate, *,
                           send_ssrcs: dict[str, tuple[int, int | None]] | None = None,
                           send_layers: dict[str, tuple[SendLayer, ...]] | None = None,
                           ice_lite: bool = False, **options) -> TransportConfig:
    """A :class:`TransportConfig` for the bundle of a :class:`netcore.sdp.model.NegotiatedSession`.

    ``send_ssrcs`` maps each mid we send on to ``(ssrc, rtx ssrc or None)``
    (the SSRCs of our own description); ``send_layers`` our simulcast
    streams per mid (those whose RID the answer kept are sent, RFC 8853
    section 5.3); ``options`` are the remaining
    :class:`TransportConfig` fields (servers, bitrates, CNAME ...).
    """
    send_ssrcs = send_ssrcs or {}
    media = []
    extensions: dict[int, str] = {}
    rsize = False
    bundle = set(session.bundle)
    for section in session.media:
        if section.rejected or section.kind not in ("audio", "video") or section.mid is None:
            continue
        if bundle and section.mid not in bundle:
            continue
        codecs = tuple(_codec_config(c) for c in section.recv_codecs if c.payload_type is not None)
        if not codecs:
            continue
        ssrc, rtx_ssrc = send_ssrcs.get(section.mid, (None, None)) if section.send else (None, None)
        layers: tuple[SendLayer, ...] = ()
        if section.send and section.send_rids and send_layers and section.mid in send_layers:
            layers = tuple(la for la in send_layers[section.mid] if la.rid in section.send_rids)
            if layers:
                ssrc, rtx_ssrc = layers[0].ssrc, layers[0].rtx_ssrc
        rtx_pairs = tuple(section.remote_rtx_ssrcs)
        repairs = {rtx for _, rtx in rtx_pairs}
        media.append(MediaConfig(section.mid, section.kind, codecs, ssrc, rtx_ssrc,
                                 tuple(s for s in section.remote_ssrcs if s not in repairs), rtx_pairs,
                                 rids=tuple(section.recv_rids) if section.recv else (), send_layers=layers))
        extensions.update(dict(section.header_extensions))
        rsize = rsize or section.rtcp_rsize
    remote = session.remote
    return TransportConfig(
        certificate=certificate,
        dtls_role=session.dtls_role,
        remote_fingerprints=tuple((f.hash_function, f.value) for f in remote.fingerprints),
        media=tuple(media),
        ice_controlling=session.ice_controlling,
        ice_lite=ice_lite,
        local_ufrag=session.local_ice_ufrag,
        local_pwd=session.local_ice_pwd,
        remote_ufrag=remote.ice_ufrag,
        remote_pwd=remote.ice_pwd,
        remote_candidates=tuple(remote.candidates),
        remote_end_of_candidates=remote.end_of_candidates,
        header_extensions=tuple(sorted(extensions.items())),
        rtcp_rsize=rsize,
        **options,
    )
