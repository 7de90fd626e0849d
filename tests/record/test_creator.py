"""The file creator: packets to files without re-encoding, loss, H.264, the command and its errors."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from netcore.record.creator import create_recording
from netcore.record.journal import JournalParseError
from netcore.record.logger import RoomLogger
from netcore.record.reader import read_room
from netcore.record.synthetic import Publisher, synthesize_room
from netcore.record.writer import DirectoryStorage, segment_paths
from servers.record.main import ProgressBar, main
from tests.record.media import Decoded, ffprobe

ROOT = Path(__file__).resolve().parents[2]


def ffmpeg_decodes(path: str) -> str:
    """What ffmpeg says decoding the whole file (empty when nothing is wrong)."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "null", "-"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0
    return out.stderr


def test_five_percent_loss_plays_and_every_frame_after_a_gap_is_a_key_frame(tmp_path):
    synthesize_room(tmp_path / "j", [Publisher("alice", duration=20, loss=0.05, width=320, height=240, fps=15)],
                    seed=5, keyframe_interval=1.0)
    recording = create_recording(tmp_path / "j", tmp_path / "out")
    (video, audio) = recording.files[0].tracks
    assert video["frames_skipped"] > 0 and video["packets_lost"] > 0  # loss did hit frames
    location = recording.files[0].location
    assert ffmpeg_decodes(location) == ""
    media = Decoded(location)
    numbers = media.numbers
    assert None not in numbers and numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert media.keyframes[0]
    gaps = [i for i in range(1, len(numbers)) if numbers[i] != numbers[i - 1] + 1]
    assert gaps and all(media.keyframes[i] for i in gaps)
    assert len(numbers) > 0.4 * 20 * 15  # the recorder's key frame requests keep gaps short
    assert audio["frames"] > 0.9 * 20 * 50


def test_h264_goes_into_matroska_without_re_encoding(tmp_path):
    synthesize_room(tmp_path / "j", [Publisher("carol", duration=6, video_codec="H264", width=320, height=240)])
    recording = create_recording(tmp_path / "j", tmp_path / "out")
    location = recording.files[0].location
    assert location.endswith(".mkv")
    probe = ffprobe(location)
    assert sorted(s["codec_name"] for s in probe["streams"]) == ["h264", "opus"]
    assert [s["width"] for s in probe["streams"] if s["codec_type"] == "video"] == [320]
    assert ffmpeg_decodes(location) == ""
    numbers = Decoded(location).numbers
    assert numbers == list(range(90))


def test_the_sidecar_lists_participants_files_tracks_and_checksums(tmp_path):
    synthesize_room(tmp_path / "j", [Publisher("alice", duration=4), Publisher("bob", duration=2, video_start=1,
                                                                               audio_start=1, video=False)])
    recording = create_recording(tmp_path / "j", tmp_path / "out")
    sidecar = json.loads(Path(recording.sidecar_location).read_text())
    assert sidecar["room"] == "synthetic" and sidecar["duration"] == pytest.approx(4.0, abs=0.1)
    assert [p["participant"] for p in sidecar["participants"]] == ["alice", "bob"]
    assert sidecar["participants"][1]["joined_at"] == pytest.approx(1.0)
    names = {f["participant"]: f for f in sidecar["files"]}
    assert names["alice"]["name"] == Path(names["alice"]["location"]).name
    assert names["alice"]["name"].startswith("synthetic-20260528T") and names["alice"]["name"].endswith("-alice.webm")
    assert [t["kind"] for t in names["bob"]["tracks"]] == ["audio"]
    assert all(t["timeline"] == "sender-reports" for f in sidecar["files"] for t in f["tracks"])
    for f in sidecar["files"]:
        assert hashlib.sha256(Path(f["location"]).read_bytes()).hexdigest() == f["sha256"]
    assert Path(recording.sidecar_location).name.startswith("synthetic-")


def test_a_track_without_sender_reports_is_placed_by_arrival_times(tmp_path):
    synthesize_room(tmp_path / "j", [Publisher("alice", duration=8, reports=False)])
    journal = read_room(tmp_path / "j")
    assert all(not t.reports for t in journal.tracks.values())
    recording = create_recording(tmp_path / "j", tmp_path / "out")
    assert {t["timeline"] for t in recording.files[0].tracks} == {"arrival"}
    offsets = Decoded(recording.files[0].location).offsets()
    # the fastest packet of each track sets its place; an audio packet leaves 20 ms after its start
    assert len(offsets) >= 7 and np.max(np.abs(offsets)) <= 0.020


def test_a_torn_journal_still_makes_a_file_of_what_was_written(tmp_path):
    synthesize_room(tmp_path / "j", [Publisher("alice", duration=5)])
    last = segment_paths(tmp_path / "j" / "alice-video")[-1]
    data = last.read_bytes()
    last.write_bytes(data[:-7])  # the last record cut short, as a kill mid-write leaves it
    recording = create_recording(tmp_path / "j", tmp_path / "out")
    assert read_room(tmp_path / "j").tracks["alice-video"].torn_tail
    assert ffmpeg_decodes(recording.files[0].location) == ""
    assert Decoded(recording.files[0].location).numbers == list(range(74))


def run_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "servers.record.main", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_the_command_writes_the_files_and_says_where(tmp_path):
    synthesize_room(tmp_path / "j", [Publisher("alice", duration=3)])
    done = run_command(str(tmp_path / "j"), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split()
    assert len(lines) == 2 and lines[0].endswith("-alice.webm") and lines[1].endswith(".json")
    assert "100%" in done.stderr  # the progress bar
    assert ffprobe(lines[0])["format"]["format_name"] == "matroska,webm"


def test_a_missing_or_corrupt_journal_is_one_clear_line_and_a_failure(tmp_path):
    done = run_command(str(tmp_path / "nothing"), "--quiet")
    assert done.returncode == 1
    assert done.stderr == f"netcore-record: no journal directory at {tmp_path / 'nothing'}\n"
    synthesize_room(tmp_path / "j", [Publisher("alice", duration=2)])
    (tmp_path / "j" / "manifest.json").write_text("{not json")
    done = run_command(str(tmp_path / "j"), "--quiet")
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "manifest.json is corrupt" in done.stderr
    synthesize_room(tmp_path / "k", [Publisher("alice", duration=2)])
    first = segment_paths(tmp_path / "k" / "alice-audio")[0]
    first.write_bytes(b"RIFF" + first.read_bytes()[4:])
    done = run_command(str(tmp_path / "k"), "--quiet")
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "000001.ncj is not a readable" in done.stderr
    with pytest.raises(JournalParseError):
        create_recording(tmp_path / "k", tmp_path / "out")


def test_the_progress_bar_reaches_the_end():
    out = io.StringIO()
    bar = ProgressBar(out, width=10)
    bar(0.0, 600.0)
    bar(300.0, 600.0)  # within a tenth of a second of the last: not drawn
    bar(600.0, 600.0)
    assert out.getvalue().endswith("\r[##########] 100%  10:00 / 10:00 of call\n")
    assert bar.drawn == 2
    assert main(["--quiet", "/nonexistent/journal"]) == 1


def test_reordered_and_duplicated_packets_give_every_frame_once_in_order(tmp_path):
    synthesize_room(tmp_path / "j", [Publisher("alice", duration=4, width=320, height=240)])
    room = read_room(tmp_path / "j")
    manifest = room.manifest
    logger = RoomLogger("shuffled", DirectoryStorage(tmp_path / "k"), now=manifest.started_at,
                        wallclock_offset=manifest.wallclock_offset)
    logger.add_participant("alice", manifest.started_at)
    events = []
    for entry in manifest.tracks:
        logger.add_track(entry.track_id, "alice", entry.codec, manifest.started_at)
        records = room.tracks[entry.track_id]
        for i, (arrival, packet) in enumerate(records.packets):
            events.append((arrival + (0.08 if i % 3 == 0 else 0.0), entry.track_id, packet))  # overtaken
            if i % 5 == 0:
                events.append((arrival + 0.3, entry.track_id, packet))  # a second copy, later
        events.extend((arrival, entry.track_id, info) for arrival, info in records.reports)
    for arrival, track_id, item in sorted(events, key=lambda e: e[0]):
        if isinstance(item, bytes):
            logger.rtp(track_id, item, arrival)
        else:
            logger.sender_report(track_id, item, arrival)
    logger.close(manifest.ended_at)
    recording = create_recording(tmp_path / "k", tmp_path / "out")
    video, audio = recording.files[0].tracks
    assert video["packets_duplicate"] > 0 and audio["packets_duplicate"] > 0
    assert video["frames_skipped"] == 0 and audio["frames"] == 200
    assert Decoded(recording.files[0].location).numbers == list(range(60))
