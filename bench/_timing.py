"""Small helpers shared by the benchmarks: interleaved best-of-N rates, ratio lines."""

from __future__ import annotations

import time
from typing import Callable


def _run(fn: Callable[[], object], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return time.perf_counter() - start


def rates(ours: Callable[[], object], theirs: Callable[[], object], *, number: int,
          repeat: int = 7) -> tuple[float, float]:
    """Best calls per second of each, measured in alternating rounds.

    Alternating keeps a load that comes and goes on a shared machine from
    favouring one side; the best round of each is the least disturbed.
    """
    best_ours = best_theirs = float("inf")
    for _ in range(repeat):
        best_ours = min(best_ours, _run(ours, number))
        best_theirs = min(best_theirs, _run(theirs, number))
    return number / best_ours, number / best_theirs


def report(name: str, ours: float, theirs: float, unit: str, reference: str) -> str:
    return (f"{name:<28} ours {ours:>12,.0f} {unit}   {reference} {theirs:>12,.0f} {unit}"
            f"   ratio {ours / theirs:5.2f}x")
