"""``netcore-record worker``: finished and abandoned rooms into files, once; a signed webhook with retries."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from netcore.record.manifest import MANIFEST_NAME
from netcore.record.synthetic import Publisher, synthesize_room
from servers.record.worker import DONE, FAILED, Worker, WorkerSettings, ready_details, room_state, sign
from tests.record.media import ffprobe
from tests.signal.test_multinode import redis_url  # noqa: F401  (the fixture: a redis-server of the test's own)


def journal(root: Path, name: str, seconds: float = 2.0) -> Path:
    room = root / name
    synthesize_room(room, [Publisher("alice", duration=seconds), Publisher("bob", duration=seconds)], room=name)
    manifest = json.loads((room / MANIFEST_NAME).read_text())
    for p in manifest["participants"]:
        p["name"] = "user-" + p["participant"]
    (room / MANIFEST_NAME).write_text(json.dumps(manifest))
    return room


def unfinished(room: Path, age: float) -> None:
    """As a call server killed mid-recording leaves it: no ended_at, nothing written for ``age`` seconds."""
    manifest = json.loads((room / MANIFEST_NAME).read_text())
    manifest["ended_at"] = None
    (room / MANIFEST_NAME).write_text(json.dumps(manifest))
    past = os.stat(room / MANIFEST_NAME).st_mtime - age
    for dirpath, _, filenames in os.walk(room):
        for name in filenames:
            os.utime(os.path.join(dirpath, name), (past, past))


def test_a_finished_room_is_made_into_files_once_and_an_abandoned_one_after_it_goes_stale(tmp_path):
    root, out = tmp_path / "root", tmp_path / "out"
    finished = journal(root, "done-room")
    abandoned = journal(root, "killed-room")
    unfinished(abandoned, age=5.0)
    live = journal(root, "live-room")
    unfinished(live, age=0.0)
    worker = Worker(WorkerSettings(root, out, stale=3.0))
    assert [p.name for p in worker.scan()] == ["done-room", "killed-room"]
    assert room_state(live, 3.0, worker.clock()) == "recording"
    asyncio.run(worker.run(once=True))
    assert sorted(d["room_id"] for d in worker.processed) == ["done-room", "killed-room"]
    for room in (finished, abandoned):
        done = json.loads((room / DONE).read_text())
        assert done["users"] == ["user-alice", "user-bob"] and done["notified"]
        assert done["ended"] is (room is finished)
        assert sorted(f["participant"] for f in done["files"]) == ["alice", "bob"]
        for f in done["files"]:
            probe = ffprobe(f["location"])
            assert abs(float(probe["format"]["duration"]) - 2.0) <= 0.5, probe
        assert json.loads(Path(done["location"]).read_text())["room"] == room.name
    files = sorted(out.iterdir())
    # idempotent: a second worker (a restart) finds nothing to do
    again = Worker(WorkerSettings(root, out, stale=3.0))
    asyncio.run(again.run(once=True))
    assert again.processed == [] and sorted(out.iterdir()) == files
    assert not (live / DONE).exists()


def test_the_notification_tells_whose_each_file_is_and_its_span(tmp_path):
    root, out = tmp_path / "root", tmp_path / "out"
    room = journal(root, "told-room")
    done = Worker(WorkerSettings(root, out, stale=3.0)).process(room)
    details = ready_details(done["sidecar"])
    assert (details["started"], details["duration"]) == (done["sidecar"]["started"], done["duration"])
    assert details["composite"] is None
    assert [(f["participant"], f["user"]) for f in details["files"]] == [("alice", "user-alice"), ("bob", "user-bob")]
    assert [f["location"] for f in details["files"]] == [f["location"] for f in done["files"]]
    for f in details["files"]:
        assert 0 <= f["start"] < f["end"] <= details["duration"] + 1e-6, f
        assert sorted(t["kind"] for t in f["tracks"]) == ["audio", "video"], f
    assert ready_details(None) == {}  # a .done of an older worker: the files alone


def test_a_corrupt_journal_is_marked_failed_and_left_alone(tmp_path):
    root = tmp_path / "root"
    room = journal(root, "bad-room")
    (room / MANIFEST_NAME).write_text("{not json")
    unfinished_age = os.stat(room / MANIFEST_NAME).st_mtime - 60
    os.utime(room / MANIFEST_NAME, (unfinished_age, unfinished_age))
    for track in room.iterdir():
        if track.is_dir():
            for segment in track.iterdir():
                os.utime(segment, (unfinished_age, unfinished_age))
    worker = Worker(WorkerSettings(root, tmp_path / "out", stale=10.0))
    asyncio.run(worker.run(once=True))
    assert worker.processed == []
    assert "manifest" in json.loads((room / FAILED).read_text())["error"]
    assert worker.scan() == []


class _Hook(BaseHTTPRequestHandler):
    answers: list[int] = []
    seen: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.headers.get("X-Netcore-Signature", ""), body))
        self.send_response(self.answers.pop(0) if self.answers else 200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_the_webhook_is_signed_and_retried_with_back_off_until_it_is_taken(tmp_path):
    root = tmp_path / "root"
    journal(root, "hooked", seconds=1.0)
    _Hook.answers[:] = [503, 500]  # two failures, then 200
    _Hook.seen[:] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = WorkerSettings(root, tmp_path / "out", poll=0.1, webhook=f"http://127.0.0.1:{server.server_port}/",
                                  webhook_secret="hook-secret")
        worker = Worker(settings)
        asyncio.run(worker.run(once=True, once_timeout=30))
    finally:
        server.shutdown()
    assert len(_Hook.seen) == 3  # 1 s, then 2 s of back-off between them
    for signature, body in _Hook.seen:
        assert signature == sign("hook-secret", body)
        assert json.loads(body)["room"] == "hooked"
    done = json.loads((root / "hooked" / DONE).read_text())
    assert done["webhook"] is True and done["webhook_attempts"] == 2


def test_a_room_announced_on_redis_is_taken_at_once_wherever_it_is(tmp_path, redis_url):
    import redis

    root = tmp_path / "root"
    root.mkdir()
    elsewhere = journal(tmp_path / "shared", "announced")  # not under the watched root
    worker = Worker(WorkerSettings(root, tmp_path / "out", poll=0.2, redis=redis_url))

    async def run() -> None:
        task = asyncio.ensure_future(worker.run())
        try:
            client = redis.Redis.from_url(redis_url)
            client.lpush("nc:recordings", "not json")  # skipped
            client.lpush("nc:recordings", json.dumps({"room_id": "announced", "directory": str(elsewhere)}))
            client.close()
            for _ in range(300):
                if worker.processed:
                    break
                await asyncio.sleep(0.1)
        finally:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    asyncio.run(run())
    assert [d["room_id"] for d in worker.processed] == ["announced"]
    assert json.loads((elsewhere / DONE).read_text())["notified"]
