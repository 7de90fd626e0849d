"""A count of the changes to what the call server forwards, for the compiled receive path.

The compiled receive path (:mod:`netcore.sfu.fastpath`) takes a publisher's
packet without the core only while nothing that decides where that packet
goes has changed since the core *armed* its source: the core arms a source
with the count it read, and the compiled path compares it on every packet.
Whatever changes a slot's forwarding counts here: a down-track told to
forward another source, to pause or to resume, or attached to another
publication (:meth:`~netcore.sfu.rewrite.DownTrack._release`, which each of
those goes through), a slot added to or taken from a publication, a
subscriber's transport connecting.  Counting too often only sends packets
through the core's Python path until it arms their source again; counting
too seldom would forward a packet the core should have decided about, so the
count is one for the process, shared by every core in it.
"""

from __future__ import annotations

__all__ = ["Changes", "changed"]


class Changes:
    """The number of changes so far (only ever grows)."""

    count = 0


def changed() -> None:
    """Something that decides where a packet goes changed: every armed source is disarmed."""
    Changes.count += 1
