"""Parse and serialize a Chrome offer (audio, simulcast video, data channel):
netcore.sdp against aiortc.sdp, in one run.  Prints descriptions/s and ratio.

    python3 bench/sdp.py [seconds-per-case]
"""

from __future__ import annotations

import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiortc import sdp as aiortc_sdp  # noqa: E402

from netcore.sdp import wire  # noqa: E402

CORPUS = ROOT / "tests" / "sdp" / "corpus"
OFFER = (CORPUS / "chrome_offer_simulcast.sdp").read_bytes().decode()


def rate(func, seconds: float) -> float:
    """Calls of ``func`` per second over about ``seconds``."""
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(20):
            func()
        count += 20
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def compare(mine, ref, seconds: float, rounds: int = 12) -> tuple[float, float]:
    """Best rate of each over ``rounds`` interleaved runs, so that load from
    other processes on the machine falls on both alike."""
    best_mine = best_ref = 0.0
    for _ in range(rounds):
        best_mine = max(best_mine, rate(mine, seconds / rounds))
        best_ref = max(best_ref, rate(ref, seconds / rounds))
    return best_mine, best_ref


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    ours = wire.parse(OFFER)
    assert str(ours) == OFFER
    theirs = aiortc_sdp.SessionDescription.parse(OFFER)
    cases = [
        (
            "parse",
            lambda: wire.parse(OFFER),
            lambda: aiortc_sdp.SessionDescription.parse(OFFER),
        ),
        ("serialize", lambda: str(ours), lambda: str(theirs)),
        (
            "parse+serialize",
            lambda: str(wire.parse(OFFER)),
            lambda: str(aiortc_sdp.SessionDescription.parse(OFFER)),
        ),
    ]
    print(f"Chrome offer: {len(OFFER)} bytes, {OFFER.count(chr(10))} lines")
    print(f"{'case':<16} {'netcore/s':>12} {'aiortc/s':>12} {'ratio':>7}")
    for name, mine, ref in cases:
        a, b = compare(mine, ref, seconds)
        print(f"{name:<16} {a:>12,.0f} {b:>12,.0f} {a / b:>6.2f}x")


if __name__ == "__main__":
    main()
