"""Active speaker detection from the RFC 6464 audio level header extension.

Each audio packet of a publisher may carry its level in -dBov (0 loudest,
127 silence; RFC 6464 section 3).  :class:`SpeakerDetector` keeps, per
participant, an exponentially smoothed loudness and names the loudest one
above :data:`SPEECH_LEVEL` as the active speaker; a change needs the new
speaker to stay the loudest for :data:`SWITCH_HOLD` seconds, so coughs and
two people answering at once do not make the highlight flicker.

It also keeps who spoke most recently (:meth:`SpeakerDetector.recent`),
each active speaker moved to the front when it becomes one: the order in
which a last-N limit admits participants' video.
"""

from __future__ import annotations

__all__ = ["SpeakerDetector", "SPEECH_LEVEL", "SWITCH_HOLD", "SMOOTHING", "decode_audio_level"]

SPEECH_LEVEL = 30.0  # loudness (127 - dBov) above which a participant is speaking (-97 dBov)
SWITCH_HOLD = 1.0  # seconds a new speaker must stay the loudest before the change
SMOOTHING = 0.1  # weight of each packet's loudness in the running average (20 ms packets: ~200 ms)


def decode_audio_level(value: bytes | None) -> int | None:
    """The level in -dBov (0..127) of an RFC 6464 element, or None (section 3: V bit, 7-bit level)."""
    if not value:
        return None
    return value[0] & 0x7F


class SpeakerDetector:
    """The loudest participant of one room, with hysteresis."""

    __slots__ = ("_loudness", "speaker", "_candidate", "_since", "_recent")

    def __init__(self) -> None:
        self._loudness: dict[str, float] = {}
        self.speaker: str | None = None
        self._candidate: str | None = None
        self._since = 0.0
        self._recent: list[str] = []  # active speakers, the latest first

    def recent(self, participants: list[str]) -> list[str]:
        """``participants`` ordered by when each was last the active speaker, latest first; those never
        one after, in the given order."""
        present = set(participants)
        spoke = [p for p in self._recent if p in present]
        heard = set(spoke)
        return spoke + [p for p in participants if p not in heard]

    def _became(self, participant: str) -> None:
        self.speaker, self._candidate = participant, None
        if participant in self._recent:
            self._recent.remove(participant)
        self._recent.insert(0, participant)

    def level(self, participant: str, level: int, now: float) -> bool:
        """An audio level (-dBov) from ``participant``; True if the active speaker changed."""
        loud = 127.0 - level
        old = self._loudness.get(participant, 0.0)
        self._loudness[participant] = old + SMOOTHING * (loud - old)
        return self._decide(now)

    def remove(self, participant: str, now: float) -> bool:
        self._loudness.pop(participant, None)
        if participant in self._recent:
            self._recent.remove(participant)
        if self.speaker == participant:
            self.speaker = None
            self._candidate = None
            return True
        return self._decide(now)

    def _decide(self, now: float) -> bool:
        if not self._loudness:
            return False
        loudest = max(self._loudness, key=self._loudness.__getitem__)
        if self._loudness[loudest] < SPEECH_LEVEL or loudest == self.speaker:
            self._candidate = None
            return False
        if self.speaker is None or self._loudness.get(self.speaker, 0.0) < SPEECH_LEVEL:
            self._became(loudest)  # nobody else is speaking: at once
            return True
        if loudest != self._candidate:
            self._candidate, self._since = loudest, now
            return False
        if now - self._since >= SWITCH_HOLD:
            self._became(loudest)
            return True
        return False
