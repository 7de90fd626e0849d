"""Nomination (RFC 8445 section 8.1) and each component's sending path.

:class:`Selection` decides and records; the agent sends the nominating
checks and emits the events. Beyond the RFC, on purpose: each agent picks its
own *sending* pair among the valid ones, moving away from a degraded pair,
from one whose round-trip time or consent-check loss passed a limit, or from
one that lost consent, to the best healthy valid pair; it does not move back
when the first pair recovers (no flapping).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from netcore.ice.pairs import PENDING_STATES, CandidatePair

__all__ = ["Selection"]


@dataclass(slots=True, eq=False, repr=False)
class Selection:
    """Which pair each component nominated, is nominating and sends on."""

    # The agent's policy.
    components: int
    nomination_delay: float
    switch_on_degraded: bool
    max_rtt: float | None
    max_loss: float | None
    # What was decided, per component.
    first_valid_at: dict[int, float] = field(default_factory=dict, init=False)
    nominating: dict[int, CandidatePair] = field(default_factory=dict, init=False)
    nominated: dict[int, CandidatePair] = field(default_factory=dict, init=False)
    sending: dict[int, CandidatePair] = field(default_factory=dict, init=False)
    failed: set[int] = field(default_factory=set, init=False)

    def _all(self) -> range:
        return range(1, self.components + 1)

    # -- nomination -------------------------------------------------------------------

    def is_nominated(self, component: int, generation: int) -> bool:
        pair = self.nominated.get(component)
        return pair is not None and pair.generation == generation

    def all_nominated(self, generation: int) -> bool:
        return all(self.is_nominated(c, generation) for c in self._all())

    def to_nominate(self, valid: list[CandidatePair], checklist: list[CandidatePair], generation: int,
                    now: float) -> list[CandidatePair]:
        """Regular nomination (section 8.1.1): per component, the best valid pair once nothing
        better is pending, or after ``nomination_delay`` from the first valid pair."""
        chosen = []
        for component in self._all():
            if component in self.nominating or self.is_nominated(component, generation):
                continue
            candidates = [p for p in valid if p.component == component and p.generation == generation]
            if not candidates:
                continue
            best = max(candidates, key=lambda p: p.priority)
            better_pending = any(p.component == component and p.state in PENDING_STATES
                                 and p.priority > best.priority for p in checklist)
            if better_pending and now < self.first_valid_at[component] + self.nomination_delay:
                continue
            self.nominating[component] = best
            chosen.append(best)
        return chosen

    def nominate(self, pair: CandidatePair) -> str | None:
        """Record a nomination; the reason to select it ("nominated", or "restart" for a new
        generation), or None when a nominated pair at least as good stays."""
        pair.nominated = True
        component = pair.component
        current = self.nominated.get(component)
        if current is not None and current.generation == pair.generation and current.priority >= pair.priority:
            return None
        self.nominated[component] = pair
        self.nominating.pop(component, None)
        return "restart" if current is not None and current.generation < pair.generation else "nominated"

    def deadline(self, generation: int) -> float | None:
        """When ``nomination_delay`` runs out for a component with a valid pair and no nomination."""
        deadlines = [first + self.nomination_delay for component, first in self.first_valid_at.items()
                     if component not in self.nominating and not self.is_nominated(component, generation)]
        return min(deadlines) if deadlines else None

    def newly_failed(self, pending: Iterable[int], valid: Iterable[int]) -> list[int]:
        """Components without a sending pair, a pending pair or a valid one (section 8.1.2); each once."""
        alive = set(pending) | set(valid)
        failed = [c for c in self._all() if c not in self.failed and c not in self.sending and c not in alive]
        self.failed.update(failed)
        return failed

    def restart(self) -> None:
        self.first_valid_at.clear()
        self.nominating.clear()
        self.failed.clear()

    # -- the sending path ---------------------------------------------------------------

    def select(self, component: int, pair: CandidatePair) -> bool:
        """Send ``component`` on ``pair``; False when it already does."""
        if self.sending.get(component) is pair:
            return False
        self.sending[component] = pair
        return True

    def switch_reason(self, pair: CandidatePair, answered: bool, newly_degraded: bool) -> str | None:
        """After a consent check on the sending ``pair``: why to move off it, if at all."""
        if newly_degraded and self.switch_on_degraded:
            return "degraded"
        if answered and self.max_rtt is not None and pair.rtt is not None and pair.rtt > self.max_rtt:
            return "rtt"
        if self.max_loss is not None and len(pair.consent.outcomes) >= 5 and pair.consent.loss > self.max_loss:
            return "loss"
        return None

    def alternative(self, component: int, reason: str, valid: list[CandidatePair],
                    generation: int) -> CandidatePair | None:
        """The best other healthy valid pair of ``component`` to move to for ``reason``."""
        current = self.sending.get(component)
        max_rtt, max_loss = self.max_rtt, self.max_loss
        options = [p for p in valid if p.component == component and p is not current
                   and p.generation == generation and not p.consent.degraded and not p.consent.lost
                   and (reason != "rtt" or p.rtt is None or max_rtt is None or p.rtt <= max_rtt)
                   and (reason != "loss" or max_loss is None or p.consent.loss <= max_loss)]
        return max(options, key=lambda p: p.priority) if options else None
