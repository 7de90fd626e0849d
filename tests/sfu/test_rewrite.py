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
