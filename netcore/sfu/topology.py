"""The broadcast tree's topology: which server a viewer or a server below should use (sans-IO).

Every call server of a tree registers itself (the daemon writes the record
to Redis every :data:`HEARTBEAT` with a time to live of :data:`RECORD_TTL`,
so a dead server's record is gone within that): its name, tier, region,
load and the address its links (and viewers) use. The choices are
functions of the live records:

* a viewer goes to the least-loaded edge of its region (any region's when
  its own has none);
* an edge pulls from the least-loaded tier-2 server of its region (any
  region's when its own has none, the origin when there is no tier 2); a
  tier-2 server pulls from the origin;
* a server that just failed the asker (its link broke, or it refused) is
  left out for :data:`AVOID_FOR`, before its record expires.

So when an edge dies its viewers come back through another edge, and when a
tier-2 server dies its edges' links break and are opened again to another
one: the link's retry (0.5 s) plus the WebSocket's connect, well within 5 s.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

__all__ = ["ServerRecord", "TIERS", "HEARTBEAT", "RECORD_TTL", "AVOID_FOR", "choose_edge", "choose_upstream"]

TIERS = ("origin", "tier2", "edge")
HEARTBEAT = 0.5  # seconds between a server's registrations
RECORD_TTL = 2.0  # seconds a registration lives without being renewed
AVOID_FOR = 5.0  # seconds a server that failed the asker is not chosen again by it


@dataclass(frozen=True)
class ServerRecord:
    """One server as registered: ``cascade`` is the URL its links connect to (ws://HOST:PORT/), ``load``
    what it serves now (participants plus links below), ``capacity`` what it is sized for."""

    name: str
    tier: str
    region: str
    cascade: str
    load: int = 0
    capacity: int = 1000

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> ServerRecord | None:
        """The record, or None for one that is malformed (a record is never trusted to be well formed)."""
        try:
            data = json.loads(text)
            record = cls(str(data["name"]), str(data["tier"]), str(data["region"]), str(data["cascade"]),
                         int(data.get("load", 0)), int(data.get("capacity", 1000)))
        except (ValueError, KeyError, TypeError):
            return None
        return record if record.tier in TIERS else None

    @property
    def share(self) -> float:
        return self.load / max(1, self.capacity)


def _least_loaded(records: list[ServerRecord], region: str) -> ServerRecord | None:
    if not records:
        return None
    local = [r for r in records if r.region == region] or records
    return min(local, key=lambda r: (r.share, r.load, r.name))


def choose_edge(records: list[ServerRecord], region: str, avoid: frozenset[str] = frozenset()) -> ServerRecord | None:
    """The edge a viewer of ``region`` goes to (None: no edge is registered)."""
    return _least_loaded([r for r in records if r.tier == "edge" and r.name not in avoid], region)


def choose_upstream(records: list[ServerRecord], tier: str, region: str,
                    avoid: frozenset[str] = frozenset()) -> ServerRecord | None:
    """The server a ``tier`` server of ``region`` pulls its rooms from (None: none fits; an origin pulls
    from nobody)."""
    live = [r for r in records if r.name not in avoid]
    if tier == "edge":
        return (_least_loaded([r for r in live if r.tier == "tier2"], region)
                or _least_loaded([r for r in live if r.tier == "origin"], region))
    if tier == "tier2":
        return _least_loaded([r for r in live if r.tier == "origin"], region)
    return None
