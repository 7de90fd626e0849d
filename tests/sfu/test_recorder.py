"""The call server's recording tap (netcore.sfu.recorder) on the simulated network, in virtual time."""

from __future__ import annotations

from netcore.peer.events import KeyFrameRequested
from netcore.record.reader import read_room
from netcore.record.writer import DirectoryStorage
from netcore.rtp.packet import RtpPacket
from netcore.sfu.events import KeyFrameRequested as KeyFrameEvent
from netcore.sfu.recorder import SfuRecorder
from tests.sfu.harness import Room


def recorded_room(tmp_path, **options) -> tuple[Room, SfuRecorder, list]:
    room = Room()
    opened = []

    def open_storage(room_id: str, now: float) -> DirectoryStorage:
        opened.append(tmp_path / f"{room_id}-{len(opened) + 1}")
        return DirectoryStorage(opened[-1])

    ended = options.pop("ended", None)
    recorder = SfuRecorder(room.core, open_storage, names=lambda pid: "user-" + pid,
                           on_end=None if ended is None else lambda room_id, storage: ended.append(
                               (room_id, storage.directory)), **options)
    room.server.on_event = lambda event: recorder.on_event(event, room.net.now)
    return room, recorder, opened


def keyframe_requests(client) -> int:
    return sum(isinstance(e, KeyFrameRequested) and e.ssrc == client.send["video"] for e in client.node.events)


def test_every_received_packet_and_sender_report_of_a_recorded_room_is_journalled(tmp_path):
    room, recorder, opened = recorded_room(tmp_path)
    for name in ("a", "b"):
        room.join(name)
    room.connect()
    room.stream(0.5)  # before the recording: not journalled
    before = {p.id: dict((m, pub.packets) for m, pub in p.publications.items())
              for p in room.core.participants.values()}
    asked = {name: keyframe_requests(c) for name, c in room.clients.items()}
    start = room.net.now
    assert recorder.start("r1", start)
    room.join("c")  # a late joiner is recorded from its join
    room.connect()
    room.stream(6.0)
    room.core.leave("b", room.net.now)
    room.server.flush()
    room.stream(1.0)
    assert recorder.stop("r1", room.net.now) and not recorder.recording("r1")
    journal = read_room(opened[0])
    manifest = journal.manifest
    assert manifest.ended_at == room.net.now
    assert [(p.participant, p.name) for p in manifest.participants] == [("a", "user-a"), ("b", "user-b"),
                                                                         ("c", "user-c")]
    assert manifest.participant("b").left_at is not None and manifest.participant("a").left_at == manifest.ended_at
    assert sorted((t.participant, t.codec.name.upper()) for t in manifest.tracks) == [
        ("a", "OPUS"), ("a", "VP8"), ("b", "OPUS"), ("b", "VP8"), ("c", "OPUS"), ("c", "VP8")]
    for track in manifest.tracks:
        participant = room.core.participants.get(track.participant)
        records = journal.tracks[track.track_id]
        packets = [RtpPacket.parse(body) for _, body in records.packets]
        # as the publisher sent them: its SSRC and its own sequence numbers, every one after the start
        assert {p.ssrc for p in packets} == {room.clients[track.participant].send[track.kind]}
        seqs = [p.sequence_number for p in packets]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert all(start <= arrival for arrival, _ in records.packets)
        if participant is not None:  # still there: everything it published since the start
            publication = next(p for p in participant.publications.values() if p.kind == track.kind)
            assert len(packets) == publication.packets - before.get(track.participant, {}).get(publication.mid, 0)
        assert records.reports, track.track_id  # the publisher's sender reports
        assert {info.ssrc for _, info in records.reports} == {packets[0].ssrc}
        assert track.codec.clock_rate == (90000 if track.kind == "video" else 48000)
    # a key frame was asked of every publisher when its recording started, said so in the core's events
    for name, client in room.clients.items():
        assert keyframe_requests(client) > asked.get(name, 0), name
    asked_by_recorder = {e.participant_id for e in room.events
                         if isinstance(e, KeyFrameEvent) and e.reason == "recorder"}
    assert asked_by_recorder == {"a", "b", "c"}


def test_a_video_track_without_key_frames_is_asked_again_and_an_empty_room_ends_its_recording(tmp_path):
    ended = []
    room, recorder, opened = recorded_room(tmp_path, keyframe_interval=1.0, keyframe_retry=0.5, ended=ended)
    publisher = room.join("a")
    room.join("b", publish=())
    room.connect()
    recorder.start("r1", room.net.now)
    room.stream(0.3)
    first = keyframe_requests(publisher)
    publisher.deaf = 1000  # it ignores every request from now on
    room.stream(4.0)
    # once per retry interval (the arbiter lets them through), not once per packet
    assert 4 <= keyframe_requests(publisher) - first <= 10
    room.core.leave("a", room.net.now)
    room.core.leave("b", room.net.now)
    room.server.flush()
    assert not recorder.recording("r1")
    assert ended == [("r1", opened[0])]  # announced once (to the workers, through Redis when configured)
    manifest = read_room(opened[0]).manifest
    assert manifest.ended_at is not None and all(p.left_at is not None for p in manifest.participants)


def test_a_participant_that_offers_again_is_recorded_as_a_new_participant_and_other_rooms_are_not(tmp_path):
    room, recorder, opened = recorded_room(tmp_path)
    room.join("a")
    room.join("x", room="other")
    room.connect()
    recorder.start("r1", room.net.now)
    room.stream(0.5)
    room.join("a")  # a reload: the same session offers again
    room.connect()
    room.stream(0.5)
    recorder.stop("r1", room.net.now)
    manifest = read_room(opened[0]).manifest
    assert [p.participant for p in manifest.participants] == ["a", "a.2"]
    assert {t.participant for t in manifest.tracks} == {"a", "a.2"}
    assert len(opened) == 1


class _FullDisk:
    """A storage whose track files fail after ``room`` bytes (ENOSPC)."""

    def __init__(self, directory, room: int) -> None:
        self.inner = DirectoryStorage(directory)
        self.directory = self.inner.directory
        self.room = room

    def open_track(self, track_id: str):
        sink = self.inner.open_track(track_id)
        storage = self

        class Sink:
            def append(self, record: bytes) -> None:
                storage.room -= len(record)
                if storage.room < 0:
                    raise OSError(28, "No space left on device")
                sink.append(record)

            def close(self) -> None:
                sink.close()

        return Sink()

    def write_manifest(self, data: bytes) -> None:
        self.inner.write_manifest(data)


def test_a_failing_disk_ends_that_recording_and_forwarding_goes_on(tmp_path):
    room = Room()
    ended = []
    recorder = SfuRecorder(room.core, lambda room_id, now: _FullDisk(tmp_path / room_id, 20_000),
                           on_end=lambda room_id, storage: ended.append(room_id))
    room.server.on_event = lambda event: recorder.on_event(event, room.net.now)
    room.join("a")
    room.join("b")
    room.connect()
    recorder.start("r1", room.net.now)
    room.stream(1.0)
    assert recorder.errors == 1 and not recorder.recording("r1") and ended == ["r1"]
    forwarded = room.core.stats.forwarded_packets
    room.stream(1.0)
    assert room.core.stats.forwarded_packets > forwarded + 100
    assert read_room(tmp_path / "r1").manifest.ended_at is not None  # what was written stays readable


def test_stopping_and_starting_again_gives_a_second_journal(tmp_path):
    room, recorder, opened = recorded_room(tmp_path)
    room.join("a")
    room.join("b")
    room.connect()
    assert recorder.start("r1", room.net.now) and not recorder.start("r1", room.net.now)
    room.stream(0.5)
    assert recorder.stop("r1", room.net.now) and not recorder.stop("r1", room.net.now)
    room.stream(0.5)  # not recorded
    recorder.start("r1", room.net.now)
    room.stream(0.5)
    recorder.close(room.net.now)
    assert len(opened) == 2
    first, second = (read_room(path) for path in opened)
    assert first.manifest.ended_at < second.manifest.started_at
    for journal in (first, second):
        assert [p.participant for p in journal.manifest.participants] == ["a", "b"]
        assert all(len(journal.tracks[t.track_id].packets) > 10 for t in journal.manifest.tracks)
