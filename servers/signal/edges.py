"""Which edge each watching viewer is on: a broadcast's viewers placed one by one (sans-IO).

A viewer that says its region when it joins a room on the call server
(``room.join`` with ``region``) is placed on the least-loaded live edge of
that region, any region's when its own has none (``choose_edge`` of
netcore.sfu.topology), not on the room's call server: its offers, quality
requests and leave go to that edge. The edges are the broadcast tree's
registry records (docs/broadcast.md, "Topology in Redis"), handed in by
the adapter, which reads them every HEARTBEAT; only edges linked to this
node (``/v1/service?server=NAME``, NAME the edge's registry name) are
candidates, since a viewer's offer goes over that link.

A record's load lags (the edge's heartbeat, then our read), so an edge is
weighed at the larger of its record's load and the viewers this node placed
there, as :class:`~.placement.Placement` weighs rooms: a burst of viewers
spreads over the region's edges rather than all landing on one. Viewers
moved off a dead edge are added on top of the record for ``SETTLE`` seconds
(they reconnect in that time, and the record from before the death counts
none of them), so the survivors share them by the load they will carry.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Collection

from netcore.sfu.topology import ServerRecord, choose_edge

from .placement import Settling

__all__ = ["ViewerEdges"]


class ViewerEdges:
    """The registry's edges as last read, and each placed viewer's region and edge."""

    def __init__(self) -> None:
        self.records: list[ServerRecord] = []
        self._viewers: dict[str, tuple[str, str]] = {}  # session id -> (region, edge name)
        self._settling = Settling()  # viewers moved onto each edge lately

    def update(self, records: list[ServerRecord]) -> None:
        """The registry's live records (an edge whose record expired is no longer among them)."""
        self.records = [r for r in records if r.tier == "edge"]
        self._settling.keep({r.name for r in self.records})

    def place(self, session_id: str, region: str, linked: Collection[str], now: float,
              avoid: frozenset[str] = frozenset(), moved: bool = False) -> ServerRecord | None:
        """Choose the viewer's edge among the live ones in ``linked`` (None: no edge; the viewer then uses
        the room's call server); ``moved``: it comes off a dead edge, so it weighs on its new one on top of
        that one's record for ``SETTLE`` seconds."""
        self._viewers.pop(session_id, None)
        chosen = choose_edge(self.projected(linked, now), region, avoid)
        if chosen is not None:
            self._viewers[session_id] = (region, chosen.name)
            if moved:
                self._settling.add(chosen.name, 1, now)
        return chosen

    def projected(self, linked: Collection[str], now: float) -> list[ServerRecord]:
        """The records of the edges in ``linked``, each with the load it will carry: its record's plus the
        viewers moved onto it in the last ``SETTLE`` seconds, or the viewers placed on it if more."""
        placed = Counter(edge for _, edge in self._viewers.values())
        return [replace(r, load=max(r.load + self._settling.weight(r.name, now), placed[r.name]))
                for r in self.records if r.name in linked]

    def candidates(self, region: str, linked: Collection[str], avoid: frozenset[str] = frozenset()) -> list[str]:
        """The edges :meth:`place` chooses among for a viewer of ``region``: the region's live ones in
        ``linked``, any region's when it has none (``choose_edge``'s rule)."""
        live = [r for r in self.records if r.name in linked and r.name not in avoid]
        return [r.name for r in ([r for r in live if r.region == region] or live)]

    def assign(self, session_id: str, region: str, edge: str) -> None:
        """Record a viewer placed before (a room's snapshot, adopted): it stays on ``edge`` and counts
        against it in :meth:`place`, linked yet or not (after a restart the edges link again a moment later)."""
        self._viewers[session_id] = (region, edge)

    def edge_of(self, session_id: str) -> str | None:
        viewer = self._viewers.get(session_id)
        return viewer[1] if viewer is not None else None

    def region_of(self, session_id: str) -> str | None:
        viewer = self._viewers.get(session_id)
        return viewer[0] if viewer is not None else None

    def on(self, edge: str) -> list[str]:
        """The viewers placed on ``edge``."""
        return sorted(sid for sid, (_, name) in self._viewers.items() if name == edge)

    def leave(self, session_id: str) -> None:
        self._viewers.pop(session_id, None)
