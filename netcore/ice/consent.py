"""Consent freshness (RFC 7675): when to check a valid pair, and what an answer means.

:class:`Consent` decides; the agent sends. It never builds a request or
touches the agent's routes: :meth:`Consent.due` says which pairs need a
check now and which lost consent, :meth:`Consent.sent` and
:meth:`Consent.answered` / :meth:`Consent.unanswered` record what happened,
and :meth:`Consent.deadline` says when to look again. Each pair keeps its
own :class:`PairConsent`.

Beyond the RFC, on purpose: one send per check (the agent's consent STUN
client has ``rc=1``), unanswered after ``degraded_after`` it counts as a
loss and marks the pair degraded; while degraded the pair is probed five
times as often, so a recovered path is seen quickly.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import TYPE_CHECKING, Callable, Iterable

if TYPE_CHECKING:
    from netcore.ice.pairs import CandidatePair

__all__ = ["Consent", "PairConsent", "ConsentDue"]


class ConsentDue(enum.Enum):
    """What :meth:`Consent.due` asks of the agent for one pair."""

    CHECK = "check"  # send a consent request now
    EXPIRED = "expired"  # no answer for the consent timeout: stop sending on it (section 5.1)


class PairConsent:
    """The consent state of one valid pair."""

    __slots__ = ("last_granted", "next_check", "in_flight", "degraded", "lost", "outcomes")

    def __init__(self) -> None:
        self.last_granted = 0.0  # when the peer last granted consent on the pair
        self.next_check = 0.0
        self.in_flight = False
        self.degraded = False  # the last consent check went unanswered
        self.lost = False  # no consent for the consent timeout: the pair may not carry traffic
        self.outcomes: deque[bool] = deque(maxlen=10)  # answered or not, of the recent checks

    @property
    def loss(self) -> float:
        """Fraction of the recent consent checks that went unanswered."""
        return self.outcomes.count(False) / len(self.outcomes) if self.outcomes else 0.0


class Consent:
    """Consent timers of every valid pair (RFC 7675 section 5.1)."""

    __slots__ = ("interval", "timeout", "_random")

    def __init__(self, interval: float, timeout: float, random: Callable[[int], bytes]) -> None:
        self.interval = interval
        self.timeout = timeout
        self._random = random

    def _delay(self) -> float:
        # Section 5.1: randomised between 0.8 and 1.2 times the interval.
        fraction = int.from_bytes(self._random(2), "big") / 65535
        return self.interval * (0.8 + 0.4 * fraction)

    def granted(self, pair: CandidatePair, now: float) -> None:
        """``pair`` just became valid: a check succeeded on it, which is consent."""
        state = pair.consent
        state.last_granted = now
        state.next_check = now + self._delay()

    def due(self, pairs: Iterable[CandidatePair], now: float) -> list[tuple[CandidatePair, ConsentDue]]:
        """The pairs (among those still holding consent) that need the agent now, and why."""
        actions = []
        for pair in pairs:
            state = pair.consent
            if state.lost:
                continue
            if now >= state.last_granted + self.timeout:  # the same sum as deadline()
                state.lost = True
                actions.append((pair, ConsentDue.EXPIRED))
            elif not state.in_flight and now >= state.next_check:
                actions.append((pair, ConsentDue.CHECK))
        return actions

    def sent(self, pair: CandidatePair) -> None:
        pair.consent.in_flight = True

    def answered(self, pair: CandidatePair, now: float) -> None:
        """The peer answered the pair's check from the right address: consent granted again."""
        state = pair.consent
        state.in_flight = False
        state.outcomes.append(True)
        state.last_granted = now
        state.degraded = False
        state.next_check = now + self._delay()

    def unanswered(self, pair: CandidatePair, now: float) -> bool:
        """The pair's check got no (usable) answer; True when this newly degrades the pair."""
        state = pair.consent
        state.in_flight = False
        state.outcomes.append(False)
        state.next_check = now + self.interval / 5  # probe faster while it fails
        if state.degraded:
            return False
        state.degraded = True
        return True

    def deadline(self, pairs: Iterable[CandidatePair]) -> float | None:
        """When :meth:`due` next has something to say about ``pairs``."""
        deadlines = []
        for pair in pairs:
            state = pair.consent
            if state.lost:
                continue
            deadlines.append(state.last_granted + self.timeout)
            if not state.in_flight:
                deadlines.append(state.next_check)
        return min(deadlines) if deadlines else None
