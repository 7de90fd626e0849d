"""Which m-section and stream an incoming RTP packet belongs to (RFC 8843 section 9.2, RFC 4588).

Order of the rules, cheapest first: an SSRC already bound (signalled with
``a=ssrc``/``a=ssrc-group:FID``, or learnt) decides at once; an unknown
SSRC is bound by the MID header extension when negotiated, else by a
payload type only one m-section uses. Within the m-section the payload
type says media or RTX; an RTX SSRC not signalled is paired with the one
media SSRC learnt for that m-section. A packet whose MID names another
m-section than its SSRC's moves the SSRC there (the sender re-used it).
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
    """Where one SSRC's packets go: ``media``'s m-section; ``rtx`` repairs ``media_ssrc``."""

    __slots__ = ("media", "media_ssrc", "rtx")

    def __init__(self, media: MediaConfig, media_ssrc: int | None, rtx: bool) -> None:
        self.media = media
        self.media_ssrc = media_ssrc
        self.rtx = rtx

    def __repr__(self) -> str:
        kind = "rtx of " if self.rtx else ""
        return f"Route({self.media.mid}: {kind}{self.media_ssrc})"


class RtpDemuxer:
    """Binds incoming SSRCs to m-sections and RTX streams to their media streams."""

    def __init__(self, media: tuple[MediaConfig, ...], mid_extension: int | None) -> None:
        self.mid_extension = mid_extension
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
                route.media_ssrc = self._media_ssrc_of(route.media)  # its media stream may be known now
            return route
        media = self._by_mid.get(mid) if mid is not None else self._by_payload_type(packet.payload_type)
        if media is None:
            self.unroutable += 1
            return route  # an unknown MID does not unbind a known SSRC
        return self._bind(packet, media)

    def _mid(self, packet: RtpPacket) -> str | None:
        ext = self.mid_extension
        if ext is None or not packet._ext_offset:
            return None
        raw = packet.extension(ext)  # RtpParseError on a broken extension: the caller counts it
        if raw is None:
            return None
        return raw.decode("ascii", "replace")

    def _by_payload_type(self, payload_type: int) -> MediaConfig | None:
        candidates = self._by_pt.get(payload_type)
        if candidates is None or len(candidates) != 1:
            return None  # RFC 8843 section 9.2: only a payload type unique to one m-section binds
        return candidates[0]

    def _bind(self, packet: RtpPacket, media: MediaConfig) -> Route | None:
        if packet.ssrc not in self._routes and len(self._routes) >= MAX_SSRCS:
            self.unroutable += 1
            return None
        if media.codec(packet.payload_type) is not None:
            route = Route(media, packet.ssrc, False)
        elif media.rtx_codec(packet.payload_type) is not None:
            route = Route(media, self._media_ssrc_of(media), True)
        else:
            self.unroutable += 1
            return None
        self._routes[packet.ssrc] = route
        return route

    def _rebind_as_rtx(self, ssrc: int, media: MediaConfig) -> Route:
        """A signalled SSRC that carries the RTX payload type is the RTX stream: an ``a=ssrc`` line
        names it like a media SSRC, and without its ``a=ssrc-group:FID`` it was bound as one."""
        route = self._routes[ssrc] = Route(media, None, True)
        route.media_ssrc = self._media_ssrc_of(media)
        return route

    def _media_ssrc_of(self, media: MediaConfig) -> int | None:
        found = {r.media_ssrc for r in self._routes.values() if r.media is media and not r.rtx}
        return found.pop() if len(found) == 1 else None
