"""Per-subscriber rewriting: continuous sequence numbers, timestamps and VP8 picture ids across switches."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from netcore.rtp.packet import RtpPacket
from netcore.rtp.sequence import seq_diff
from netcore.rtp.vp8 import Vp8Descriptor
from netcore.sfu.keyframes import KEYFRAME_INTERVAL, KeyFrameArbiter
from netcore.sfu.rewrite import DownTrack, ReceivedWindow, Vp8Rewriter
from netcore.sfu.speaker import SWITCH_HOLD, SpeakerDetector


class Source:
    """A VP8 source: one packet per frame, a key frame every ``gop`` frames, its own numbering."""

    def __init__(self, ssrc: int, seq: int, ts: int, pid: int, gop: int) -> None:
        self.ssrc, self.seq, self.ts, self.pid, self.gop, self.frame = ssrc, seq, ts, pid, gop, 0

    def next(self) -> RtpPacket:
        key = self.frame % self.gop == 0
        payload = Vp8Descriptor(True, 0, picture_id=self.pid).serialize() + bytes((0 if key else 1, 7, 7))
        packet = RtpPacket.build(payload_type=96, sequence_number=self.seq, timestamp=self.ts, ssrc=self.ssrc,
                                 payload=payload, marker=True)
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + 3000) & 0xFFFFFFFF
        self.pid = (self.pid + 1) & 0x7FFF
        self.frame += 1
        return packet


steps = st.lists(st.tuples(st.integers(0, 2), st.booleans(), st.booleans()), min_size=1, max_size=300)


@settings(max_examples=150, deadline=None)
@given(steps, st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF), st.integers(2, 12), st.integers(0, 0x7FFF))
def test_forwarded_stream_has_no_gap_but_upstream_loss_and_moves_forward(plan, seq0, ts0, gop, pid0):
    sources = [Source(0x100 + i, (seq0 + 9000 * i) & 0xFFFF, (ts0 + 77777 * i) & 0xFFFFFFFF, (pid0 + 999 * i) & 0x7FFF, gop)
               for i in range(3)]
    down = DownTrack(0xABC, "video", 90000)
    down.attach({96: 100}, {96: "VP8"})
    now = 0.0
    out: list[tuple[RtpPacket, int]] = []  # (forwarded, source packets lost upstream just before it)
    lost_since = 0
    current = None
    for which, switch, lose in plan:
        now += 0.033
        if switch or current is None:
            current = which
            down.want(sources[which].ssrc)
        # every source keeps sending; only the selected one can be forwarded
        for i, source in enumerate(sources):
            packet = source.next()
            if i == current and lose:
                lost_since += 1  # lost upstream: never reaches the server
                continue
            result = down.forward(packet, now)
            if result is not None:
                assert packet.ssrc == down.rewriter.source
                out.append((result, lost_since))
                lost_since = 0
    for (a, _), (b, lost) in zip(out, out[1:]):
        assert b.ssrc == 0xABC and b.payload_type == 100
        gap = seq_diff(b.sequence_number, a.sequence_number)
        assert 1 <= gap <= 1 + lost  # a gap only where a packet was really lost upstream
        assert 0 < (b.timestamp - a.timestamp) & 0xFFFFFFFF < 0x80000000
        pa = Vp8Descriptor.parse(a.payload)[0].picture_id
        pb = Vp8Descriptor.parse(b.payload)[0].picture_id
        assert 1 <= (pb - pa) & 0x7FFF <= 1 + lost
    if out:
        first = Vp8Descriptor.parse(out[0][0].payload)
        assert out[0][0].payload[first[1]] & 1 == 0  # the first forwarded packet is a key frame


def test_a_new_source_waits_for_its_key_frame_and_the_old_one_keeps_flowing():
    old, new = Source(1, 10, 0, 5, 100), Source(2, 60000, 1000, 20000, 4)
    down = DownTrack(9, "video", 90000)
    down.attach({96: 96}, {96: "VP8"})
    down.want(1)
    assert down.forward(old.next(), 0.0) is not None
    new.next()  # its key frame went by before the switch
    down.want(2)
    assert down.needs_keyframe
    forwarded = [down.forward(old.next(), 0.1), down.forward(new.next(), 0.1)]
    assert forwarded[0] is not None and forwarded[1] is None  # old layer until the key frame
    for _ in range(2):
        down.forward(new.next(), 0.2)
        down.forward(old.next(), 0.2)
    key = down.forward(new.next(), 0.3)  # frame 4: a key frame
    assert key is not None and not down.needs_keyframe
    assert down.forward(old.next(), 0.3) is None
    assert down.dropped["waiting_keyframe"] == 3 and down.dropped["wrong_source"] == 1


def test_audio_switches_at_once():
    down = DownTrack(9, "audio", 48000)
    down.attach({111: 109}, {111: "OPUS"})
    a = RtpPacket.build(payload_type=111, sequence_number=1, timestamp=0, ssrc=1, payload=b"x")
    b = RtpPacket.build(payload_type=111, sequence_number=900, timestamp=5, ssrc=2, payload=b"y")
    down.want(1)
    first = down.forward(a, 0.0)
    down.want(2)
    second = down.forward(b, 0.02)
    assert first is not None and second is not None
    assert second.sequence_number == first.sequence_number + 1 and second.timestamp == 960
    assert second.payload_type == 109


def test_vp8_short_picture_ids_come_out_long_and_tl0picidx_continues():
    vp8 = Vp8Rewriter()
    out = vp8.rewrite(Vp8Descriptor(True, 0, picture_id=100, long_picture_id=True, tl0picidx=250).serialize() + b"\x00")
    vp8.switched()
    out2 = vp8.rewrite(Vp8Descriptor(True, 0, picture_id=3, long_picture_id=False, tl0picidx=7).serialize() + b"\x00")
    d1, _ = Vp8Descriptor.parse(out)
    d2, _ = Vp8Descriptor.parse(out2)
    assert (d1.picture_id, d1.tl0picidx) == (100, 250)
    assert (d2.picture_id, d2.tl0picidx, d2.long_picture_id) == (101, 251, True)


def test_the_arbiter_sends_one_request_per_interval_and_holds_one():
    arbiter = KeyFrameArbiter()
    assert arbiter.request(0.0)
    assert not arbiter.request(0.1)  # in flight: served by the same key frame
    arbiter.keyframe_received()
    assert not arbiter.request(0.2)  # within the interval: held
    assert not arbiter.request(0.3)
    assert arbiter.next_deadline() == KEYFRAME_INTERVAL
    assert not arbiter.handle_timeout(0.4)
    assert arbiter.handle_timeout(0.5)
    assert arbiter.requested == 2 and arbiter.coalesced == 3 and arbiter.next_deadline() is None


def test_the_active_speaker_changes_only_after_the_hold():
    speakers = SpeakerDetector()
    t = 0.0
    for _ in range(50):
        t += 0.02
        speakers.level("a", 20, t)
        speakers.level("b", 100, t)
    assert speakers.speaker == "a"
    changed_at = None
    for _ in range(200):
        t += 0.02
        changed = speakers.level("a", 90, t)
        if (speakers.level("b", 10, t) or changed) and changed_at is None:
            changed_at = t
    assert speakers.speaker == "b" and changed_at is not None
    assert changed_at - 1.0 >= SWITCH_HOLD - 0.6  # not on the first louder packet


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF), st.floats(0.0, 0.5), st.floats(0.0, 5.0))
def test_a_layer_switch_keeps_the_timeline_from_both_layers_sender_reports(base_old, base_new, late, sr_gap):
    """Two layers of one sender, each with its own random timestamp base: with both SRs (RFC 3550
    section 6.4.1) the new layer's frame captured at time t gets the timestamp the old layer's frame at t
    got, however late the key frame arrives; without them the wall time is used."""
    from netcore.sfu.core import _timestamp_delta
    from netcore.sfu.participant import Layer

    def ts(base: int, t: float) -> int:
        return (base + round(t * 90000)) & 0xFFFFFFFF

    sr_gap = round(sr_gap * 90000) / 90000  # a sender reports an instant of its RTP clock, a whole tick
    old, new = Layer("h", 1), Layer("f", 2)
    old.sender_report = (1000.0, ts(base_old, 0.0))
    new.sender_report = (1000.0 + sr_gap, ts(base_new, sr_gap))  # sent at another time, same clock
    down = DownTrack(9, "video", 90000)
    down.attach({96: 96}, {96: "VP8"})
    down.want(1)
    payload = Vp8Descriptor(True, 0, picture_id=1).serialize() + bytes((0, 7, 7))

    def packet(ssrc: int, seq: int, base: int, t: float) -> RtpPacket:
        return RtpPacket.build(payload_type=96, sequence_number=seq, timestamp=ts(base, t), ssrc=ssrc,
                               payload=payload, marker=True)

    first = down.forward(packet(1, 100, base_old, 1.0), 1.0)
    down.want(2, _timestamp_delta(old, new, 90000))
    switched = down.forward(packet(2, 7000, base_new, 1.1), 1.1 + late)  # captured 100 ms later
    assert first is not None and switched is not None
    assert switched.sequence_number == (first.sequence_number + 1) & 0xFFFF
    assert (switched.timestamp - first.timestamp) & 0xFFFFFFFF == 9000  # exactly the 100 ms between captures
    assert _timestamp_delta(None, new, 90000) is None and _timestamp_delta(Layer("x"), new, 90000) is None


@given(st.integers(0, 0xFFFF), st.lists(st.integers(-40, 40), min_size=1, max_size=600))
def test_a_sequence_number_is_forwarded_once_however_often_it_comes(first, steps):
    """Browsers probe with RTX copies of packets already received: each number passes the window once
    (a second copy would be an SRTP replay to the subscriber), across the 16-bit wrap."""
    window = ReceivedWindow()
    passed: set[int] = set()
    position, highest = 0, 0
    for step in steps:
        position = max(position + step, highest - ReceivedWindow.WINDOW // 2)  # stay well inside the window
        highest = max(highest, position)
        new = window.arrived(7, (first + position) & 0xFFFF)
        assert new == (position not in passed)
        passed.add(position)


def test_a_new_source_starts_a_new_window_and_old_numbers_are_refused():
    window = ReceivedWindow()
    assert window.arrived(1, 100) and not window.arrived(1, 100)
    assert window.arrived(2, 100)  # a publisher restart: new numbers
    assert window.arrived(2, 100 + ReceivedWindow.WINDOW + 5)
    assert not window.arrived(2, 101)  # older than the window: too late to forward


# -- VP8 temporal layers ---------------------------------------------------------------------------

PATTERN = ((0, False), (2, True), (1, True), (2, False))  # L1T3: (TID, layer sync) of each frame of a period


class LayeredSource:
    """A VP8 L1T3 source as libwebrtc and netcore.media code it: TIDs 0,2,1,2 with TL0PICIDX, the second and
    third frames of each period layer syncs; a frame is ``packets`` packets, a key frame every ``gop``."""

    def __init__(self, ssrc: int, seq: int, pid: int, tl0: int, gop: int) -> None:
        self.ssrc, self.seq, self.pid, self.tl0, self.gop = ssrc, seq, pid, tl0, gop
        self.frame = 0
        self.ts = 0

    def next_frame(self, packets: int) -> tuple[tuple[int, bool, bool], list[RtpPacket]]:
        """((TID, sync, key), packets) of the next frame."""
        key = self.frame % self.gop == 0
        tid, sync = PATTERN[self.frame % 4]
        if tid == 0:
            self.tl0 = (self.tl0 + 1) & 0xFF
        out = []
        for i in range(packets):
            desc = Vp8Descriptor(i == 0, 0, picture_id=self.pid, tl0picidx=self.tl0, tid=tid, layer_sync=sync)
            body = bytes((0 if key else 1, 7, 7)) if i == 0 else b"\x07\x07"
            out.append(RtpPacket.build(payload_type=96, sequence_number=self.seq, timestamp=self.ts, ssrc=self.ssrc,
                                       payload=desc.serialize() + body, marker=i == packets - 1))
            self.seq = (self.seq + 1) & 0xFFFF
        self.pid = (self.pid + 1) & 0x7FFF
        self.ts = (self.ts + 3000) & 0xFFFFFFFF
        self.frame += 1
        return (tid, sync, key), out


def layered_downtrack(max_temporal: int) -> DownTrack:
    """A VP8 slot forwarding LayeredSource 0x55 up to ``max_temporal``."""
    down = DownTrack(0xABC, "video", 90000)
    down.attach({96: 96}, {96: "VP8"})
    down.want(0x55)
    down.max_temporal = max_temporal
    return down


def _references(frame: int, key_frames: set[int]) -> list[int]:
    """The frames ``frame`` references in the L1T3 pattern (TL0: the TL0 before; TL1 and the first TL2:
    the period's TL0; the last TL2: the period's TL1 too); a key frame none."""
    if frame in key_frames:
        return []
    pos, start = frame % 4, frame - frame % 4
    refs = [start - 4] if pos == 0 else [start]
    if pos == 3:
        refs.append(start + 2)
    return [r for r in refs if r >= 0]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 3)), min_size=1, max_size=200),
       st.integers(0, 0xFFFF), st.integers(0, 0x7FFF), st.integers(0, 255), st.integers(5, 40))
def test_temporal_layers_are_dropped_without_a_gap_and_every_forwarded_frame_decodes(plan, seq0, pid0, tl00, gop):
    source = LayeredSource(0x55, seq0, pid0, tl00, gop)
    down = layered_downtrack(3)
    forwarded: dict[int, list[RtpPacket]] = {}
    targets, info, keys = [], [], set()
    for frame, (target, packets) in enumerate(plan):
        down.max_temporal = target
        (tid, sync, key), sent = source.next_frame(packets)
        targets.append(target)
        info.append(tid)
        if key:
            keys.add(frame)
        out = [down.forward(p, frame * 0.033) for p in sent]
        assert all(o is None for o in out) or all(o is not None for o in out)  # whole frames only
        if out[0] is not None:
            forwarded[frame] = out  # type: ignore[assignment]
    packets = [p for frame in sorted(forwarded) for p in forwarded[frame]]
    # no gap in sequence numbers, picture ids one per forwarded frame, TL0PICIDX one per TL0 frame
    for a, b in zip(packets, packets[1:]):
        assert seq_diff(b.sequence_number, a.sequence_number) == 1
    descs = {f: Vp8Descriptor.parse(forwarded[f][0].payload)[0] for f in forwarded}
    frames = sorted(forwarded)
    for a, b in zip(frames, frames[1:]):
        assert (descs[b].picture_id - descs[a].picture_id) & 0x7FFF == 1
        assert (descs[b].tl0picidx - descs[a].tl0picidx) & 0xFF == (1 if info[b] == 0 else 0)
        assert descs[b].tid == info[b]
    for frame in frames:  # decodable: what it references was forwarded
        assert all(r in forwarded for r in _references(frame, keys)), frame
    for frame in range(len(plan)):  # and it follows its target: a period after the target settled, exactly it
        if frame >= 8 and len(set(targets[frame - 7:frame + 1])) == 1 and any(k <= frame - 8 for k in keys):
            assert (frame in forwarded) == (info[frame] <= targets[frame]), (frame, targets[frame])


def test_a_retransmission_keeps_the_number_it_had_before_a_skip_and_a_late_skip_leaves_a_gap():
    source = LayeredSource(0x55, 65530, 10, 0, 1000)
    down = layered_downtrack(0)
    (_, _, _), tl0 = source.next_frame(2)
    first = [down.forward(p, 0.0) for p in tl0]
    assert all(first)
    skipped = [down.forward(p, 0.03) for _, p in [source.next_frame(2) for _ in range(3)] for p in p]
    assert not any(skipped) and down.dropped["temporal_layer"] == 6
    (_, _, _), tl0_next = source.next_frame(1)
    after = down.forward(tl0_next[0], 0.13)
    assert after is not None and seq_diff(after.sequence_number, first[-1].sequence_number) == 1
    again = down.forward(tl0[1], 0.14)  # a retransmission of the packet before the skipped ones
    assert again is not None and again.sequence_number == first[1].sequence_number
    # a TL2 packet older than one already forwarded (reordered) cannot be closed up: its number is a gap
    late = [source.next_frame(1)[1][0] for _ in range(3)]
    (_, _, _), tl0_third = source.next_frame(1)
    assert down.forward(tl0_third[0], 0.26) is not None
    assert down.forward(late[0], 0.27) is None and down.rewriter.gaps == 1


def test_the_forwarded_tid_goes_up_only_at_a_layer_sync_or_key_frame():
    source = LayeredSource(0x55, 0, 0, 0, 1000)
    down = layered_downtrack(0)
    for _ in range(5):
        for p in source.next_frame(1)[1]:
            down.forward(p, 0.0)
    assert down.temporal == 0
    down.max_temporal = 2  # frame 5 is a TL2 sync, 6 a TL1 sync, 7 a TL2 referencing TL1
    results = []
    for _ in range(4):
        (tid, sync, _), packets = source.next_frame(1)
        results.append((tid, down.forward(packets[0], 0.1) is not None))
    assert results == [(2, True), (1, True), (2, True), (0, True)] and down.temporal == 2
    # a non-sync frame of a layer above: not taken up there
    down.max_temporal = 0
    for p in source.next_frame(1)[1]:  # frame 9: TL2 sync, but the target is TL0
        assert down.forward(p, 0.2) is None
    down.max_temporal = 2
    (tid, sync, _), packets = source.next_frame(1)  # frame 10: TL1 sync
    assert (tid, sync) == (1, True) and down.forward(packets[0], 0.3) is not None and down.temporal == 1
    (tid, sync, _), packets = source.next_frame(1)  # frame 11: TL2, not a sync: still TL1 only
    assert (tid, sync) == (2, False) and down.forward(packets[0], 0.3) is None and down.temporal == 1
