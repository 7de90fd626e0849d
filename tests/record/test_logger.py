"""The logger writes journals a reader gets back whole, even after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netcore.errors import UsageError
from netcore.record.journal import JournalParseError, SenderInfo, parse_segment
from netcore.record.logger import RoomLogger
from netcore.record.manifest import Codec, Manifest
from netcore.record.reader import JournalMissingError, read_room
from netcore.record.writer import DirectoryStorage, segment_paths
from netcore.rtp.packet import RtpPacket
from netcore.rtp.vp8 import Vp8Descriptor

VP8 = Codec("VP8", 90000, 96)
OPUS = Codec("opus", 48000, 111, channels=2, parameters={"minptime": "10", "useinbandfec": "1"})


def rtp(seq: int, ts: int, payload: bytes, ssrc: int = 1, pt: int = 96) -> bytes:
    return RtpPacket.build(payload_type=pt, sequence_number=seq & 0xFFFF, timestamp=ts, ssrc=ssrc,
                           payload=payload).serialize()


def vp8_payload(keyframe: bool) -> bytes:
    return Vp8Descriptor(True, 0, picture_id=1).serialize() + (b"\x00" if keyframe else b"\x01") + bytes(50)


def test_tracks_rotate_by_size_and_read_back_in_order(tmp_path):
    logger = RoomLogger("room-a", DirectoryStorage(tmp_path, max_segment_bytes=4096), now=10.0,
                        wallclock_offset=1.7e9)
    logger.add_participant("alice", 10.0)
    logger.add_track("alice-video", "alice", VP8, 10.0)
    logger.add_track("alice-audio", "alice", OPUS, 10.0)
    sent = []
    for i in range(300):
        packet = rtp(65500 + i, 3000 * i, vp8_payload(i % 100 == 0))
        sent.append(packet)
        logger.rtp("alice-video", packet, 10.0 + i / 30)
        logger.rtp("alice-audio", rtp(i, 960 * i, b"\xfc" + bytes(40), ssrc=2, pt=111), 10.0 + i / 50)
        if i % 50 == 0:
            logger.sender_report("alice-video", SenderInfo(1, i << 32, 3000 * i, i, 0), 10.0 + i / 30)
    logger.rtp("bob-video", sent[0], 11.0)
    logger.remove_participant("alice", 25.0)
    logger.close(26.0)
    assert logger.stats.unknown_track == 1
    segments = segment_paths(tmp_path / "alice-video")
    assert len(segments) > 5 and all(p.stat().st_size <= 4096 for p in segments)
    assert [parse_segment(p.read_bytes()).index for p in segments] == list(range(1, len(segments) + 1))
    room = read_room(tmp_path)
    video = room.tracks["alice-video"]
    assert [p for _, p in video.packets] == sent
    assert [a for a, _ in video.packets] == pytest.approx([10.0 + i / 30 for i in range(300)])
    assert [r.rtp_timestamp for _, r in video.reports] == [3000 * i for i in range(0, 300, 50)]
    assert len(room.tracks["alice-audio"].packets) == 300
    manifest = room.manifest
    assert manifest.room == "room-a" and manifest.wallclock_offset == 1.7e9 and manifest.ended_at == 26.0
    assert manifest.participant("alice").joined_at == 10.0 and manifest.participant("alice").left_at == 25.0
    assert manifest.track("alice-audio").codec == OPUS
    assert manifest.track("alice-video").ended_at == 25.0
    assert json.loads((tmp_path / "manifest.json").read_text())["format"] == "netcore-recording/1"


def test_the_manifest_round_trips_and_a_broken_one_is_refused(tmp_path):
    m = Manifest("r", 1.0)
    assert Manifest.from_json(m.to_json()) == m
    for raw in (b"{", b"[]", b'{"format": "other"}', b'{"format": "netcore-recording/1"}'):
        with pytest.raises(Exception) as info:
            Manifest.from_json(raw)
        assert type(info.value).__name__ == "JournalParseError"


def test_a_video_track_asks_for_a_key_frame_at_start_and_after_going_without(tmp_path):
    logger = RoomLogger("r", DirectoryStorage(tmp_path), now=0.0, keyframe_interval=2.0, keyframe_retry=0.5)
    logger.add_participant("p", 0.0)
    logger.add_track("p-audio", "p", OPUS, 0.0)
    logger.add_track("p-video", "p", VP8, 0.0)
    assert logger.next_deadline() == 0.0
    assert logger.poll_keyframe_request(0.0) == "p-video"
    assert logger.poll_keyframe_request(0.0) is None
    logger.rtp("p-video", rtp(1, 0, vp8_payload(True)), 0.1)
    for i in range(2, 40):
        logger.rtp("p-video", rtp(i, 3000 * i, vp8_payload(False)), i / 10)
    assert logger.next_deadline() == pytest.approx(2.1)
    assert logger.poll_keyframe_request(2.0) is None
    assert logger.poll_keyframe_request(2.1) == "p-video"
    assert logger.stats.keyframe_requests == 2


def test_misuse_is_a_usage_error(tmp_path):
    logger = RoomLogger("r", DirectoryStorage(tmp_path), now=0.0)
    with pytest.raises(UsageError):
        logger.add_track("x", "nobody", VP8, 0.0)
    logger.add_participant("p", 0.0)
    with pytest.raises(UsageError):
        logger.add_track("../escape", "p", VP8, 0.0)
    with pytest.raises(UsageError):
        logger.add_participant("p", 0.0)


def test_a_missing_journal_says_so(tmp_path):
    with pytest.raises(JournalMissingError, match="no journal directory"):
        read_room(tmp_path / "nothing")
    with pytest.raises(JournalMissingError, match="manifest.json"):
        read_room(tmp_path)


_WRITER = """
import sys, time
from netcore.record.logger import RoomLogger
from netcore.record.manifest import Codec
from netcore.record.writer import DirectoryStorage
from netcore.rtp.packet import RtpPacket
logger = RoomLogger("k", DirectoryStorage(sys.argv[1], max_segment_bytes=65536), now=0.0)
logger.add_participant("p", 0.0)
logger.add_track("p-audio", "p", Codec("opus", 48000, 111), 0.0)
i = 0
while True:
    packet = RtpPacket.build(payload_type=111, sequence_number=i & 0xFFFF, timestamp=960 * i, ssrc=5,
                             payload=i.to_bytes(4, "big") * 40).serialize()
    logger.rtp("p-audio", packet, i / 50)
    i += 1
    if i == 2000:
        print("ready", flush=True)
"""


def test_a_logger_killed_mid_write_leaves_every_earlier_record_readable(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    track = read_room(tmp_path).tracks["p-audio"]
    numbers = [int.from_bytes(RtpPacket.parse(p).payload[:4], "big") for _, p in track.packets]
    assert len(numbers) >= 2000 and track.segments > 1
    assert numbers == list(range(len(numbers)))
    assert track.damaged == 0


def _one_segment_track(tmp_path) -> Path:
    logger = RoomLogger("k", DirectoryStorage(tmp_path, max_segment_bytes=65536), now=0.0)
    logger.add_participant("p", 0.0)
    logger.add_track("p-audio", "p", VP8, 0.0)
    for i in range(5):
        logger.rtp("p-audio", RtpPacket.build(payload_type=96, sequence_number=i, timestamp=i, ssrc=5,
                                              payload=b"\x10" + bytes(20)).serialize(), i / 50)
    logger.close(1.0)
    return tmp_path / "p-audio"


@pytest.mark.parametrize("written", [0, 5])
def test_a_last_segment_killed_before_its_header_was_written_is_a_torn_tail(tmp_path, written):
    track_dir = _one_segment_track(tmp_path)
    (last,) = segment_paths(track_dir)
    nxt = track_dir / f"{int(last.stem) + 1:06d}{last.suffix}"
    nxt.write_bytes(last.read_bytes()[:written])  # the same header but for the index: its first bytes
    track = read_room(tmp_path).tracks["p-audio"]
    assert len(track.packets) == 5 and track.torn_tail and track.segments == 1


def test_a_short_segment_before_the_last_is_still_an_error(tmp_path):
    track_dir = _one_segment_track(tmp_path)
    (last,) = segment_paths(track_dir)
    last.rename(track_dir / f"{int(last.stem) + 1:06d}{last.suffix}")
    last.write_bytes(b"")  # an empty segment with a whole one after it: damage, not a writer stopped there
    with pytest.raises(JournalParseError, match="shorter than its header"):
        read_room(tmp_path)


def test_a_recorder_restarted_after_such_a_kill_leaves_no_short_segment_behind(tmp_path):
    track_dir = _one_segment_track(tmp_path)
    (last,) = segment_paths(track_dir)
    (track_dir / f"{int(last.stem) + 1:06d}{last.suffix}").write_bytes(b"")
    logger = RoomLogger("k", DirectoryStorage(tmp_path, max_segment_bytes=65536), now=2.0)
    logger.add_participant("p", 2.0)
    logger.add_track("p-audio", "p", VP8, 2.0)
    logger.rtp("p-audio", RtpPacket.build(payload_type=96, sequence_number=5, timestamp=5, ssrc=5,
                                          payload=b"\x10" + bytes(20)).serialize(), 2.0)
    logger.close(3.0)
    track = read_room(tmp_path).tracks["p-audio"]
    assert len(track.packets) == 6 and track.segments == 2 and not track.torn_tail
