"""Last-N through the call server core on the simulated network: each subscriber is sent the video of the
N most recent speakers only (audio of everyone), switching as the active speaker changes, the newly
admitted video starting on a key frame and every stream without a sequence number gap."""

from __future__ import annotations

import pytest

from netcore.errors import UsageError
from netcore.rtp.sequence import seq_diff
from netcore.rtp.vp8 import Vp8Descriptor
from netcore.sfu.events import ActiveSpeakerChanged, KeyFrameRequested
from netcore.sfu.speaker import SpeakerDetector
from servers.sfu.metrics import render_metrics
from tests.sfu.harness import Room, frames

LOUD, QUIET = 20, 127  # -dBov: speaking, silence


def is_key(packet) -> bool:
    """The packet starts a VP8 key frame (RFC 7741 section 4.3: the P bit after the descriptor is 0)."""
    _, pos = Vp8Descriptor.parse(packet.payload)
    return bool(packet.payload[0] & 0x10) and not packet.payload[pos] & 0x01


def video_from(room: Room, subscriber: str) -> dict[str, int]:
    """Publisher -> video packets ``subscriber`` received from it so far (by what its slots carry)."""
    client = room.clients[subscriber]
    out = {}
    for slot in room.core.participants[subscriber].slots:
        if slot.kind == "video" and slot.publication is not None:
            out[slot.publication.owner.id] = len(client.received.get(slot.mid, []))
    return out


def forwarded_since(room: Room, before: dict[str, dict[str, int]]) -> dict[str, set[str]]:
    """Subscriber -> publishers whose video it received since ``before``."""
    return {name: {p for p, n in video_from(room, name).items() if n > before[name].get(p, 0)}
            for name in room.clients}


def snapshot(room: Room) -> dict[str, dict[str, int]]:
    return {name: video_from(room, name) for name in room.clients}


def test_only_the_last_n_speakers_video_is_forwarded_and_a_new_speaker_is_admitted_on_a_key_frame():
    room = Room(seed=5)
    for name in ("a", "b", "c", "d"):
        room.join(name, slots=3)
    room.connect()
    core = room.core
    core.set_last_n("r1", 1, room.net.now)
    assert core.last_n("r1") == 1
    room.stream(1.0, levels={"a": QUIET, "b": LOUD, "c": QUIET, "d": QUIET})  # b speaks
    assert core._speakers["r1"].speaker == "b"
    before = snapshot(room)
    room.stream(2.0, levels={"a": QUIET, "b": LOUD, "c": QUIET, "d": QUIET})
    seen = forwarded_since(room, before)
    assert seen["a"] == seen["c"] == seen["d"] == {"b"}
    assert seen["b"] == {"a"}  # b's own last-1: the first to join of those who never spoke
    # audio of everyone, always
    for name, client in room.clients.items():
        audio = [client.received.get(m, []) for m, k in client.slots.items() if k == "audio"]
        assert len(audio) == 3 and all(len(packets) > 50 for packets in audio), name
    # c starts speaking: after the speaker hold, every other subscriber is sent c's video instead of b's
    requests = sum(1 for e in room.events if isinstance(e, KeyFrameRequested))
    admissions = core.stats.last_n_admissions
    room.stream(2.5, levels={"a": QUIET, "b": QUIET, "c": LOUD, "d": QUIET})
    assert [e.participant_id for e in room.events if isinstance(e, ActiveSpeakerChanged)][-1] == "c"
    before = snapshot(room)
    room.stream(2.0, levels={"a": QUIET, "b": QUIET, "c": LOUD, "d": QUIET})
    seen = forwarded_since(room, before)
    assert seen["a"] == seen["d"] == {"c"} and seen["b"] == {"c"} and seen["c"] == {"b"}
    assert core.stats.last_n_admissions > admissions
    assert sum(1 for e in room.events if isinstance(e, KeyFrameRequested)) > requests  # asked at once
    a = room.clients["a"]
    on_c = next(s for s in core.participants["a"].slots if s.kind == "video" and s.publication.owner.id == "c")
    assert is_key(a.received[on_c.mid][0])  # c's video reached a from a key frame
    # b speaks again: a is sent b's video again, its slot resumed after the pause
    room.stream(4.5, levels={"a": QUIET, "b": LOUD, "c": QUIET, "d": QUIET})
    before = snapshot(room)
    room.stream(1.0, levels={"a": QUIET, "b": LOUD, "c": QUIET, "d": QUIET})
    assert forwarded_since(room, before)["a"] == {"b"}
    on_b = next(s for s in core.participants["a"].slots if s.kind == "video" and s.publication.owner.id == "b")
    packets = a.received[on_b.mid]
    # the numbers closed up over the pause: nothing for a to NACK; the frames jump, to a key frame
    assert all(seq_diff(q.sequence_number, p.sequence_number) == 1 for p, q in zip(packets, packets[1:]))
    numbers = frames(packets)
    resumed = next(i for i in range(1, len(numbers)) if numbers[i] - numbers[i - 1] > 1)
    starts = [p for p in packets if p.payload[0] & 0x10]
    assert is_key(starts[resumed])
    assert on_b.downtrack.dropped.get("last_n", 0) > 0
    # the daemon's metrics: 2 paused video slots of each of the 4 subscribers, the admissions, the drops
    text = render_metrics(core)
    assert "sfu_last_n_paused_slots 8\n" in text
    assert f"sfu_last_n_admissions_total {core.stats.last_n_admissions}\n" in text
    assert 'sfu_dropped_total{reason="last_n"}' in text
    # lifting the limit resumes everything
    core.set_last_n("r1", None, room.net.now)
    before = snapshot(room)
    room.stream(1.5, levels={"a": QUIET, "b": QUIET, "c": LOUD, "d": QUIET})
    seen = forwarded_since(room, before)
    assert all(len(publishers) == 3 for publishers in seen.values()), seen
    with pytest.raises(UsageError):
        core.set_last_n("r1", -1, room.net.now)


def test_the_recent_speakers_order_puts_the_latest_first_and_the_silent_in_join_order():
    speakers = SpeakerDetector()
    assert speakers.recent(["a", "b", "c"]) == ["a", "b", "c"]
    t = 0.0
    for who in ("c", "b"):
        for _ in range(150):
            t += 0.02
            for name in ("a", "b", "c"):
                speakers.level(name, LOUD if name == who else QUIET, t)
    assert speakers.recent(["a", "b", "c"]) == ["b", "c", "a"]
    speakers.remove("b", t)
    assert speakers.recent(["a", "c"]) == ["c", "a"]
