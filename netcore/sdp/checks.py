"""Rules a remote description must follow before it is negotiated.

``check_remote(desc)`` raises ``NegotiationError`` naming the line that
breaks a rule; the negotiator calls it on every offer and answer.  What an
RFC says to ignore instead (header extension ids outside the usable range,
RFC 8285 section 6) is dropped by the negotiator, not refused here.
"""

from __future__ import annotations

from .attributes import is_uint
from .errors import NegotiationError
from .wire import Line, MediaSection, SessionDescription

__all__ = ["check_remote"]

_DTLS_PROTOCOLS = ("TLS", "DTLS")


def check_remote(desc: SessionDescription) -> None:
    """Refuse a description no answer or result can be built from."""
    mids: dict[str, Line] = {}
    for media in desc.media:
        _check_mid(media, mids)
        _check_payload_types(media)
        _check_extmap_ids(media)
        _check_simulcast(media)
    _check_transports(desc)


def _where(media: MediaSection, index: int) -> str:
    return f"m-section {index} ({media.lines[0].raw})"


def _missing_transport(desc: SessionDescription, media: MediaSection) -> str | None:
    """The transport attribute ``media`` lacks at both levels, if any."""
    # RFC 8839 section 5.4: ICE credentials in the section or the session.
    if not desc.session_or_media(media, "ice-ufrag") or not desc.session_or_media(
        media, "ice-pwd"
    ):
        return "a=ice-ufrag/a=ice-pwd"
    # RFC 8122 section 5, RFC 8842 section 5: DTLS needs a fingerprint.
    dtls = any(p in _DTLS_PROTOCOLS for p in media.protocol.upper().split("/"))
    if dtls and not (media.fingerprints or desc.fingerprints):
        return "a=fingerprint"
    return None


def _check_transports(desc: SessionDescription) -> None:
    # A bundled section may leave its transport to the others of its group
    # (RFC 9143 section 7.1.3: bundle-only sections, and answers that put it
    # in the tagged section only); every other live section needs its own.
    groups = {mid: group for group in desc.bundle_groups() for mid in group}
    for index, media in enumerate(desc.media):
        if media.port == 0:
            continue
        missing = _missing_transport(desc, media)
        if missing is None:
            continue
        group = groups.get(media.mid or "", ())
        if any(
            other is not None
            and other.port != 0
            and _missing_transport(desc, other) is None
            for other in (desc.section(mid) for mid in group)
        ):
            continue
        raise NegotiationError(f"{_where(media, index)} has no {missing}")


def _check_mid(media: MediaSection, mids: dict[str, Line]) -> None:
    # RFC 5888 section 4: a mid identifies one m-section in the session.
    for line in media.lines:
        if line.name == "mid":
            if line.value in mids:
                raise NegotiationError(f"mid used twice: {line.raw}")
            mids[line.value] = line  # type: ignore[index]
            return


def _check_payload_types(media: MediaSection) -> None:
    # RFC 8866 section 5.14: each format once on the m= line.
    if len(set(media.formats)) != len(media.formats):
        raise NegotiationError(f"a format listed twice: {media.lines[0].raw}")
    # RFC 8866 section 6.6: one rtpmap per payload type.
    rtpmaps: dict[int, Line] = {}
    for line in media.lines:
        if line.name == "rtpmap":
            pt = line.value.payload_type
            if pt in rtpmaps and rtpmaps[pt].value != line.value:
                raise NegotiationError(
                    f"payload type {pt} is two codecs: {rtpmaps[pt].raw} and {line.raw}"
                )
            rtpmaps[pt] = line
    # RFC 4588 section 8.6: apt names an original payload type of this section.
    formats = set(media.formats)
    for line in media.lines:
        if line.name != "fmtp" or line.value.format not in formats:
            continue
        rtpmap = (
            rtpmaps.get(int(line.value.format)) if is_uint(line.value.format) else None
        )
        if rtpmap is None or rtpmap.value.encoding_name.lower() != "rtx":
            continue
        apt = line.value.to_dict().get("apt")
        if apt is None:
            continue
        if not is_uint(apt) or apt not in formats or int(apt) not in rtpmaps:
            raise NegotiationError(f"RTX apt names no payload type here: {line.raw}")


def _check_extmap_ids(media: MediaSection) -> None:
    # RFC 8285 section 5: each id names one extension in an m-section.
    seen: dict[int, Line] = {}
    for line in media.lines:
        if line.name == "extmap":
            ext_id = line.value.id
            if ext_id in seen:
                raise NegotiationError(
                    f"extmap id {ext_id} used twice: {seen[ext_id].raw} and {line.raw}"
                )
            seen[ext_id] = line


def _check_simulcast(media: MediaSection) -> None:
    # RFC 8853 section 5.1: every rid in a=simulcast has its a=rid line
    # with the same direction.
    simulcast = media.get("simulcast")
    if simulcast is None:
        return
    rids = {(rid.id, rid.direction) for rid in media.get_all("rid")}
    for direction, streams in (("send", simulcast.send), ("recv", simulcast.recv)):
        for alternatives in streams:
            for alternative in alternatives:
                if (alternative.rid, direction) not in rids:
                    line = next(li for li in media.lines if li.name == "simulcast")
                    raise NegotiationError(
                        f"simulcast names rid {alternative.rid!r} without a=rid: {line.raw}"
                    )
