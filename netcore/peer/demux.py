"""Which m-section and stream an incoming RTP packet belongs to (RFC 8843 section 9.2, RFC 4588).

Order of the rules, cheapest first: an SSRC already bound (signalled with
``a=ssrc``/``a=ssrc-group:FID``, or learnt) decides at once; an unknown
SSRC is bound by the MID header extension when negotiated, else by a
payload type only one m-section uses. Within the m-section the payload
type says media or RTX; an RTX SSRC not signalled is paired with the one
media SSRC learnt for that m-section. A packet whose MID names another
m-section than its SSRC's moves the SSRC there (the sender re-used it).
Simulcast without signalled SSRCs (RFC 8853, as browsers send it): an
unknown SSRC that carries the RtpStreamId header extension (RFC 8852
section 3.1) is bound to that RID of its m-section on first sight; an RTX
SSRC carrying RepairedRtpStreamId (section 3.2), or its own RID with the
RTX payload type, repairs the media SSRC of that RID. A RID the
m-section did not negotiate (``a=rid ... send`` of the peer) binds nothing.
At most :data:`MAX_SSRCS` SSRCs are bound; packets nothing binds are
dropped and counted by the caller.
"""

from __future__ import annotations

from netcore.errors import UsageError
from netcore.peer.config import MediaConfig
from netcore.rtp.packet import RtpPacket

__all__ = ["Route", "RtpDemuxer", "MAX_SSRCS"]

MAX_SSRCS = 64


class Route:
    """Where one SSRC's packets go: ``media``'s m-section; ``rtx`` repairs ``media_ssrc``; ``rid``: the
    simulcast stream (RFC 8851) it carries, None without simulcast."""

    __slots__ = ("media", "media_ssrc", "rtx", "rid")

    def __init__(self, media: MediaConfig, media_ssrc: int | None, rtx: bool, rid: str | None = None) -> None:
        self.media = media
        self.media_ssrc = media_ssrc
        self.rtx = rtx
        self.rid = rid

    def __repr__(self) -> str:
        kind = "rtx of " if self.rtx else ""
        rid = f" rid {self.rid}" if self.rid is not None else ""
        return f"Route({self.media.mid}: {kind}{self.media_ssrc}{rid})"


class RtpDemuxer:
    """Binds incoming SSRCs to m-sections and RTX streams to their media streams."""

    def __init__(self, media: tuple[MediaConfig, ...], mid_extension: int | None, *,
                 rid_extension: int | None = None, rrid_extension: int | None = None) -> None:
        self.mid_extension = mid_extension
        self.rid_extension = rid_extension
        self.rrid_extension = rrid_extension
        self._by_mid: dict[str, MediaConfig] = {}
        self._routes: dict[int, Route] = {}
        self._by_pt: dict[int, list[MediaConfig]] = {}
        for m in media:
            self.add_media(m)
        self.unroutable = 0

    def add_media(self, media: MediaConfig) -> None:
        """Route an m-section's packets too (one added by a later offer/answer)."""
        if media.mid in self._by_mid:
            raise UsageError(f"mid {media.mid!r} is routed already")
        self._by_mid[media.mid] = media
        for codec in media.codecs:
            for pt in (codec.payload_type, codec.rtx_payload_type):
                if pt is not None:
                    self._by_pt.setdefault(pt, []).append(media)
        for ssrc in media.remote_ssrcs:
            self._routes[ssrc] = Route(media, ssrc, False)
        for media_ssrc, rtx_ssrc in media.remote_rtx_ssrcs:
            self._routes[media_ssrc] = Route(media, media_ssrc, False)
            self._routes[rtx_ssrc] = Route(media, media_ssrc, True)

    @property
    def routes(self) -> dict[int, Route]:
        return self._routes

    def route(self, packet: RtpPacket) -> Route | None:
        """The route of ``packet`` (binding its SSRC on first sight), or None (drop it)."""
        route = self._routes.get(packet.ssrc)
        mid = self._mid(packet) if route is None or self.mid_extension is not None else None
        if route is not None and (mid is None or mid == route.media.mid):
            if not route.rtx and route.media.codec(packet.payload_type) is None \
                    and route.media.rtx_codec(packet.payload_type) is not None:
                route = self._rebind_as_rtx(packet.ssrc, route.media)
            elif route.rtx and route.media_ssrc is None:
                if route.rid is None:  # bound by an RTX padding packet that named no stream
                    route.rid = _text(packet, self.rrid_extension) or _text(packet, self.rid_extension)
                route.media_ssrc = self._media_ssrc_of(route.media, route.rid)  # it may be known now
            elif route.rid is None and route.media.rids:
                route.rid = _text(packet, self.rid_extension)  # bound before its RID came
            return route
        media = self._by_mid.get(mid) if mid is not None else self._by_payload_type(packet.payload_type)
        if media is None:
            self.unroutable += 1
            return route  # an unknown MID does not unbind a known SSRC
        return self._bind(packet, media)

    def _mid(self, packet: RtpPacket) -> str | None:
        return _text(packet, self.mid_extension)

    def _by_payload_type(self, payload_type: int) -> MediaConfig | None:
        candidates = self._by_pt.get(payload_type)
        if candidates is None or len(candidates) != 1:
            return None  # RFC 8843 section 9.2: only a payload type unique to one m-section binds
        return candidates[0]

    def _bind(self, packet: RtpPacket, media: MediaConfig) -> Route | None:
        if packet.ssrc not in self._routes and len(self._routes) >= MAX_SSRCS:
            self.unroutable += 1
            return None
        rid = _text(packet, self.rid_extension)
        if media.codec(packet.payload_type) is not None:
            route = Route(media, packet.ssrc, False, rid)
        elif media.rtx_codec(packet.payload_type) is not None:
            rid = _text(packet, self.rrid_extension) or rid  # RFC 8852 section 3.2; ours repeat the RID
            route = Route(media, self._media_ssrc_of(media, rid), True, rid)
        else:
            self.unroutable += 1
            return None
        if rid is not None and media.rids and rid not in media.rids:
            self.unroutable += 1  # RFC 8851 section 4: a RID the m-section did not negotiate
            return None
        self._routes[packet.ssrc] = route
        return route

    def _rebind_as_rtx(self, ssrc: int, media: MediaConfig) -> Route:
        """A signalled SSRC that carries the RTX payload type is the RTX stream: an ``a=ssrc`` line
        names it like a media SSRC, and without its ``a=ssrc-group:FID`` it was bound as one."""
        route = self._routes[ssrc] = Route(media, None, True)
        route.media_ssrc = self._media_ssrc_of(media)
        return route

    def _media_ssrc_of(self, media: MediaConfig, rid: str | None = None) -> int | None:
        """The one media SSRC learnt for ``media`` (of simulcast stream ``rid`` when given)."""
        found = {r.media_ssrc for r in self._routes.values()
                 if r.media is media and not r.rtx and (rid is None or r.rid == rid)}
        return found.pop() if len(found) == 1 else None


def _text(packet: RtpPacket, ext: int | None) -> str | None:
    """An SDES-item header extension (MID, RID, repaired RID; RFC 8843, RFC 8852) as text, or None."""
    if ext is None or not packet._ext_offset:
        return None
    raw = packet.extension(ext)  # RtpParseError on a broken extension: the caller counts it
    if raw is None:
        return None
    return raw.decode("ascii", "replace")
