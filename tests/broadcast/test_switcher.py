"""The program switcher under a fake clock: cuts wait for the key frame, the program stream runs on
(sequence numbers, timestamps, VP8 picture ids) across cuts, the card, the audio pick."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netcore.broadcast.card import CARD_INTERVAL, CardSource
from netcore.broadcast.switcher import AUDIO_PAYLOAD_TYPE, CARD, VIDEO_PAYLOAD_TYPE, ProgramSwitcher
from netcore.errors import UsageError
from netcore.rtp.packet import RtpPacket
from netcore.rtp.vp8 import Vp8Descriptor, vp8_is_keyframe

A, B, MIC_A, MIC_B = ("a", "cam"), ("b", "cam"), ("a", "mic"), ("b", "mic")
CARD_FRAME = bytes((0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01)) + bytes(200)  # key, 640x360


class Camera:
    """VP8-shaped frames of one source: its own SSRC, sequence numbers, 90 kHz clock and picture ids; the
    source's name and frame number in the payload."""

    def __init__(self, name: str, ssrc: int, payload_type: int = 100, seq: int = 0, pid: int = 0,
                 ts_base: int = 0) -> None:
        self.name, self.ssrc, self.pt = name, ssrc, payload_type
        self.seq, self.pid, self.ts_base, self.frame = seq, pid, ts_base, 0

    def packets(self, now: float, key: bool = False) -> list[RtpPacket]:
        body = bytes((0x00 if key else 0x01,)) + self.name.encode()[:1] + struct.pack("!I", self.frame) + bytes(40)
        out = []
        for i, part in enumerate((body[:20], body[20:])):
            payload = Vp8Descriptor(i == 0, 0, picture_id=self.pid).serialize() + part
            out.append(RtpPacket.build(payload_type=self.pt, sequence_number=self.seq & 0xFFFF,
                                       timestamp=(self.ts_base + round(now * 90000)) & 0xFFFFFFFF, ssrc=self.ssrc,
                                       payload=payload, marker=i == 1))
            self.seq += 1
        self.pid = (self.pid + 1) & 0x7FFF
        self.frame += 1
        return out


def mic_packet(ssrc: int, seq: int, now: float, ts_base: int = 0, pt: int = 109) -> RtpPacket:
    return RtpPacket.build(payload_type=pt, sequence_number=seq & 0xFFFF,
                           timestamp=(ts_base + round(now * 48000)) & 0xFFFFFFFF, ssrc=ssrc, payload=bytes(20))


def source_of(packet: RtpPacket) -> str:
    """Which camera a program packet came from (its first payload byte after the descriptor and P byte),
    'card' for the card."""
    desc, pos = Vp8Descriptor.parse(packet.payload)
    if not desc.start_of_partition:
        return "?"
    body = packet.payload[pos:]
    return "card" if body[:3] == CARD_FRAME[:3] else chr(body[1])


def switcher(card: bool = False) -> ProgramSwitcher:
    s = ProgramSwitcher(0xAAAA, 0xBBBB, CardSource(CARD_FRAME, 0xCCCC) if card else None)
    s.add_source(A, "video", {100: "VP8", 101: "RTX"})
    s.add_source(B, "video", {98: "VP8"})
    s.add_source(MIC_A, "audio", {109: "OPUS"})
    s.add_source(MIC_B, "audio", {111: "OPUS"})
    return s


def run(s: ProgramSwitcher, cams: list[Camera], start: float, seconds: float, fps: int = 30,
        keys: dict[str, set[int]] | None = None) -> list[tuple[float, RtpPacket]]:
    """Both cameras send for ``seconds``; ``keys``: each camera's frames (by index from now) that are key
    frames. Returns the program packets with when they went out."""
    out = []
    for n in range(round(seconds * fps)):
        now = start + n / fps
        for cam in cams:
            key = n in (keys or {}).get(cam.name, set())
            for packet in cam.packets(now, key):
                forwarded = s.packet((cam.name, "cam"), packet, now)
                if forwarded is not None:
                    out.append((now, forwarded))
        out += [(now, p) for p in s.handle_timeout(now)]
    return out


def assert_continuous(packets: list[RtpPacket]) -> None:
    """One SSRC; sequence numbers +1 each; timestamps never back; picture ids +1 per frame."""
    assert len({p.ssrc for p in packets}) == 1
    for before, after in zip(packets, packets[1:]):
        assert (after.sequence_number - before.sequence_number) & 0xFFFF == 1
        assert (after.timestamp - before.timestamp) & 0xFFFFFFFF < 0x80000000
    pids = []
    for p in packets:
        pid = Vp8Descriptor.parse(p.payload)[0].picture_id
        if not pids or pids[-1] != pid:
            pids.append(pid)
    assert all((b - a) & 0x7FFF == 1 for a, b in zip(pids, pids[1:])), pids


def test_a_cut_keeps_the_old_source_on_air_until_the_new_sources_key_frame():
    s = switcher()
    cams = [Camera("a", 0x1111, 100, seq=500, pid=7000, ts_base=12345), Camera("b", 0x2222, 98, seq=60000,
                                                                             pid=32000, ts_base=4_000_000_000)]
    assert s.cut(A, 0.0)  # nothing on air yet: A's key frame is wanted
    out = run(s, cams, 0.0, 1.0, keys={"a": {3}})
    assert [source_of(p) for _, p in out if source_of(p) != "?"] == ["a"] * 27  # from A's key frame (the 4th)
    assert s.state.video == A and s.cuts == 1
    assert s.cut(B, 1.0)  # B is asked for a key frame; A stays on air meanwhile
    assert s.waiting == B and s.keyframe_source() == B
    out2 = run(s, cams, 1.0, 1.0, keys={"b": {10}})
    names = [source_of(p) for _, p in out2 if source_of(p) != "?"]
    assert names == ["a"] * 11 + ["b"] * 20  # (A's frame of that instant goes out before B's key frame)
    assert s.state.video == B and s.state.next is None and s.waiting is None
    packets = [p for _, p in out + out2]
    assert_continuous(packets)
    assert {p.payload_type for p in packets} == {VIDEO_PAYLOAD_TYPE}
    first_b = next(i for i, p in enumerate(packets) if source_of(p) == "b")
    assert vp8_is_keyframe(packets[first_b].payload)
    # the timestamp moves on by the wall time between A's last packet and B's first (the same instant: one tick)
    assert (packets[first_b].timestamp - packets[first_b - 1].timestamp) & 0xFFFFFFFF == 1
    # and then by B's own clock
    assert (packets[first_b + 2].timestamp - packets[first_b].timestamp) & 0xFFFFFFFF == 3000


def test_cutting_back_to_the_source_on_air_calls_the_cut_off():
    s = switcher()
    cams = [Camera("a", 0x1111), Camera("b", 0x2222, 98)]
    s.cut(A, 0.0)
    run(s, cams, 0.0, 0.2, keys={"a": {0}})
    s.cut(B, 0.2)
    assert not s.cut(A, 0.25)
    out = run(s, cams, 0.3, 0.5, keys={"b": {0, 5}})
    assert {source_of(p) for _, p in out} <= {"a", "?"} and s.state.video == A and s.state.next is None


def test_the_card_is_on_air_at_its_next_frame_and_stays_until_the_cameras_key_frame():
    s = switcher(card=True)
    cams = [Camera("a", 0x1111, seq=40000, pid=500)]
    s.cut(A, 0.0)
    out = run(s, cams, 0.0, 0.5, keys={"a": {0}})
    assert s.state.video == A
    assert not s.cut(CARD, 0.5)  # no key frame to ask anyone for
    out2 = run(s, cams, 0.5, 1.0)
    names = [source_of(p) for _, p in out2 if source_of(p) != "?"]
    # at its first frame (the camera's frame of that same instant went first): every card frame is a key frame
    assert names[0] == "a" and set(names[1:]) == {"card"}
    card_times = sorted({t for t, p in out2 if source_of(p) != "a"})
    assert len(card_times) == round(1.0 / CARD_INTERVAL)
    assert all(vp8_is_keyframe(p.payload) for _, p in out2[2:] if p.payload[0] & 0x10)
    assert s.cut(A, 1.5)
    out3 = run(s, cams, 1.5, 1.0, keys={"a": {15}})
    names = [source_of(p) for _, p in out3 if source_of(p) != "?"]
    assert names[:2] == ["card", "card"] and names[-15:] == ["a"] * 15 and "card" not in names[-15:]
    assert not s.card.running  # the card stops once the camera is on air
    assert_continuous([p for _, p in out + out2 + out3])


def test_the_card_goes_on_air_when_the_camera_on_air_leaves():
    s = switcher(card=True)
    cam = Camera("a", 0x1111)
    s.cut(A, 0.0)
    run(s, [cam], 0.0, 0.3, keys={"a": {0}})
    s.remove_source(A, 0.3)
    assert s.state.next == CARD and A not in s.sources
    out = run(s, [], 0.3, 0.5)
    assert out and {source_of(p) for _, p in out} <= {"card", "?"} and s.state.video == CARD
    with pytest.raises(UsageError):
        s.cut(A, 1.0)


def test_audio_is_picked_at_once_and_runs_on_across_the_pick():
    s = switcher()
    out = []
    s.pick_audio(MIC_A, 0.0)
    for n in range(100):  # 2 s of 20 ms packets from both microphones
        now = n * 0.02
        if n == 50:
            s.pick_audio(MIC_B, now)
        for key, ssrc, pt, base in ((MIC_A, 0x3333, 109, 1000), (MIC_B, 0x4444, 111, 3_000_000_000)):
            p = s.packet(key, mic_packet(ssrc, n + ssrc, now, base, pt), now)
            if p is not None:
                out.append(p)
    assert len(out) == 100 and {p.ssrc for p in out} == {0xBBBB} and {p.payload_type for p in out} == {
        AUDIO_PAYLOAD_TYPE}
    assert all((b.sequence_number - a.sequence_number) & 0xFFFF == 1 for a, b in zip(out, out[1:]))
    assert all((b.timestamp - a.timestamp) & 0xFFFFFFFF == 960 for a, b in zip(out, out[1:]))
    s.pick_audio(None, 2.0)
    assert s.packet(MIC_A, mic_packet(0x3333, 9, 2.0), 2.0) is None
    assert s.state.audio is None
    with pytest.raises(UsageError):
        s.pick_audio(A, 2.0)  # a camera is no audio source


def test_a_source_in_another_codec_is_not_put_on_air():
    s = switcher()
    s.add_source(("c", "cam"), "video", {102: "H264"})
    s.cut(("c", "cam"), 0.0)
    cam = Camera("c", 0x5555, payload_type=102)
    assert all(s.packet(("c", "cam"), p, 0.0) is None for p in cam.packets(0.0, key=True))
    assert s.video.dropped.get("codec")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "card"]), st.integers(1, 40), st.integers(0, 40)),
                min_size=1, max_size=8))
def test_the_program_stream_runs_on_whatever_the_cuts(plan):
    """Cuts to any source at any time, key frames at any distance: the program's numbers never jump."""
    s = switcher(card=True)
    cams = [Camera("a", 0x1111, 100, seq=65500, pid=32760, ts_base=4_294_000_000), Camera("b", 0x2222, 98)]
    packets, now = [], 0.0
    for target, frames, key_at in plan:
        s.cut(CARD if target == "card" else (target, "cam"), now)
        packets += [p for _, p in run(s, cams, now, frames / 30, keys={"a": {key_at}, "b": {key_at}})]
        now += frames / 30
    if packets:
        assert_continuous(packets)
